package processors

import (
	"strings"
	"testing"

	"github.com/edgehost/edgehost/host/config"
)

func loadConfig(t *testing.T, procs string) *config.Config {
	t.Helper()
	cfg, diags := config.Parse("p.hcl", []byte(`
backend "o" { url = "http://127.0.0.1:1" }
route "/" {
  backend = backend.o
  processors {
`+procs+`
  }
}
`))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return cfg
}

func TestExplain(t *testing.T) {
	cfg := loadConfig(t, `fetch = ["regex"]
deliver = ["esi"]
regex {
  pattern = "a"
  replace = "b"
}`)
	var b strings.Builder
	if err := Explain(&b, cfg, "http://example.com/page", ExplainOptions{Encoding: "gzip"}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		`route "/" (p.hcl:3,1-10)`,
		"fetch:   beresp(gzip) > gunzip > buffer > regex > gzip",
		"gzip            text → gzip  (built-in: gunzip queues gzip at storage: stored in the encoding it came in)",
		`deliver to Accept-Encoding "" (takes identity):   stored(gzip) > gunzip > esi`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
}

func TestDiagnose(t *testing.T) {
	// A second esi on the fetch side after the first could be placed
	// for no origin answer: esitext converts to nothing.
	cfg := loadConfig(t, `fetch = ["esi", "gunzip"]
store = "chain"
deliver = ["gzip@storage"]`)
	if d := Diagnose(cfg); len(d) != 0 {
		t.Errorf("unexpected warnings: %v", d)
	}
	cfg = loadConfig(t, `fetch = ["esi", "buffer"]
store = "chain"`)
	d := Diagnose(cfg)
	if len(d) != 1 || !strings.Contains(d[0].Detail, "buffer is placed for no origin answer") || d[0].Subject.Start.Line != 6 {
		t.Fatalf("got %v", d)
	}
}
