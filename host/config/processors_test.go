package config

import (
	"strconv"
	"strings"
	"testing"
)

func TestProcessorsBlock(t *testing.T) {
	base := `
backend "o" { url = "http://127.0.0.1:1" }
route "/" {
  backend = backend.o
  processors {
%s
  }
}
`
	cfg, diags := Parse("p.hcl", []byte(strings.Replace(base, "%s", `    fetch      = ["gzip", "esi@front"]
    deliver    = ["regex"]
    buffer_max = "1MiB"
    store      = "chain"
    regex {
      pattern = "a(b)"
      replace = "$1"
    }`, 1)))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	p := cfg.Routes[0].Processors
	if len(p.Fetch) != 2 || p.Fetch[1].Name != "esi" || p.Fetch[1].Position != "front" || p.BufferMax != 1<<20 || p.KeepEncoding || len(p.Regex) != 1 {
		t.Fatalf("got %+v", p)
	}
	for _, tc := range []struct{ body, want string }{
		{`fetch = ["gzip", "zstd"]`, `p.hcl:6:22: Unknown processor`},
		{`deliver = ["esi@middle"]`, `p.hcl:6:16: Unknown position`},
		{`fetch = ["gzip", "gzip"]`, `p.hcl:6:22: Processor listed twice`},
		{`fetch = [1]`, `p.hcl:6:14: Invalid processor`},
		{`store = "maybe"`, `p.hcl:6:13: Invalid store`},
		{"regex {\n pattern = \"(\"\n replace = \"\"\n}", `p.hcl:7:12: Invalid regular expression`},
	} {
		_, diags := Parse("p.hcl", []byte(strings.Replace(base, "%s", "    "+tc.body, 1)))
		var got []string
		for _, d := range diags {
			got = append(got, d.Subject.Filename+":"+strconv.Itoa(d.Subject.Start.Line)+":"+strconv.Itoa(d.Subject.Start.Column)+": "+d.Summary)
		}
		if !strings.Contains(strings.Join(got, "\n"), tc.want) {
			t.Errorf("%s: got %q, want %q", tc.body, got, tc.want)
		}
	}
}
