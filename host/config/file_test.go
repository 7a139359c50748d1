package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
)

// TestFileAcceptanceConfig loads the core acceptance config with the
// issue's file blocks appended, exactly as the issue writes them.
func TestFileAcceptanceConfig(t *testing.T) {
	c, diags := Load("testdata/acceptance_file.hcl")
	if len(diags) > 0 {
		t.Fatalf("diagnostics: %s", diags.Error())
	}
	logo := c.Files["logo"]
	if logo == nil || !logo.SHA256 || logo.TTL != time.Second || logo.ContentType != "image/svg+xml" || logo.Plugin != "file" {
		t.Fatalf("file logo = %+v", logo)
	}
	if !filepath.IsAbs(logo.Path) || !strings.HasSuffix(logo.Path, "testdata/www/logo.svg") {
		t.Errorf("logo path = %q, want an absolute path ending in testdata/www/logo.svg", logo.Path)
	}
	if ep := c.Files["error_page"]; ep == nil || ep.SHA256 || ep.MaxSize != DefaultFileMaxSize || !strings.HasPrefix(ep.ContentType, "text/html") {
		t.Errorf("file error_page = %+v", ep)
	}
	var logoRoute *Route
	for _, r := range c.Routes {
		if r.Prefix == "/logo.svg" {
			logoRoute = r
		}
	}
	if logoRoute == nil || logoRoute.Respond == nil || logoRoute.Respond.File != "logo" || logoRoute.Respond.Status != 200 {
		t.Fatalf("route /logo.svg = %+v", logoRoute)
	}
	if len(c.ErrorPages) != 1 || c.ErrorPages[0].File != "error_page" {
		t.Fatalf("error pages = %+v", c.ErrorPages)
	}
	for status, want := range map[int]bool{500: true, 503: true, 599: true, 404: false, 200: false} {
		if got := c.ErrorPages[0].Matches(status); got != want {
			t.Errorf("5xx matches %d = %v, want %v", status, got, want)
		}
	}
	// The readers reach the plugin as reader blocks merged into its body.
	v := decodeReaders(t, c.Plugins[0].Body)
	readers := v.GetAttr("reader")
	if got := readers.LengthInt(); got != 2 {
		t.Fatalf("plugin body has %d reader blocks, want 2", got)
	}
	lg := readers.Index(cty.StringVal("logo"))
	if got := lg.GetAttr("path").AsString(); got != logo.Path {
		t.Errorf("reader logo path = %q, want %q", got, logo.Path)
	}
	if got := lg.GetAttr("ttl").AsString(); got != "1s" {
		t.Errorf("reader logo ttl = %q", got)
	}
	if !lg.GetAttr("sha256").True() {
		t.Errorf("reader logo sha256 = false")
	}
}

// decodeReaders decodes a plugin body the way the plugin manager does,
// with the schema that the file plugin declares.
func decodeReaders(t *testing.T, body hcl.Body) cty.Value {
	t.Helper()
	attrs := hcldec.ObjectSpec{
		"ttl":      &hcldec.AttrSpec{Name: "ttl", Type: cty.String},
		"sha256":   &hcldec.AttrSpec{Name: "sha256", Type: cty.Bool},
		"max_size": &hcldec.AttrSpec{Name: "max_size", Type: cty.Number},
	}
	with := func(k string) hcldec.ObjectSpec {
		o := hcldec.ObjectSpec{k: &hcldec.AttrSpec{Name: k, Type: cty.String, Required: true}}
		for n, s := range attrs {
			o[n] = s
		}
		return o
	}
	spec := hcldec.ObjectSpec{
		"reader": &hcldec.BlockMapSpec{TypeName: "reader", LabelNames: []string{"name"}, Nested: with("path")},
		"static": &hcldec.BlockMapSpec{TypeName: "static", LabelNames: []string{"name"}, Nested: with("root")},
	}
	v, diags := hcldec.Decode(body, spec, EvalContext())
	if diags.HasErrors() {
		t.Fatalf("decoding the plugin body: %s", diags.Error())
	}
	return v
}

func TestFileDiagnostics(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "big.txt"), make([]byte, 2048), 0o644)
	os.WriteFile(filepath.Join(dir, "ok.txt"), []byte("ok"), 0o644)
	os.Mkdir(filepath.Join(dir, "adir"), 0o755)
	tests := []struct {
		name, src string
		want      []string // substrings of the diagnostics, in order
		errors    bool
	}{
		{"missing file is a warning", `plugin "file" {}
file "a" { path = "nope.html" }`, []string{"cfg.hcl:2:19: warning: File reader will report an error"}, false},
		{"directory is a warning", `plugin "file" {}
file "a" { path = "adir" }`, []string{"is a directory"}, false},
		{"too large is a warning", `plugin "file" {}
file "a" {
  path = "big.txt"
  max_size = "1KiB"
}`, []string{"big.txt is 2048 bytes, more than max_size (1024 bytes)"}, false},
		{"no plugin", `file "a" { path = "ok.txt" }`, []string{`cfg.hcl:1:1: error: No file plugin`, `plugin "file" {}`}, true},
		{"unknown file in respond", `plugin "file" {}
route "/x" {
  respond { file = file.nope }
}`, []string{`cfg.hcl:3:20: error: Unknown file`, `no file "nope" is declared; declared: none`}, true},
		{"bad reference", `plugin "file" {}
file "a" { path = "ok.txt" }
route "/x" {
  respond { file = "a" }
}`, []string{"cfg.hcl:4:20: error: Invalid file reference"}, true},
		{"bad status", `plugin "file" {}
file "a" { path = "ok.txt" }
error_page {
  status = "2xx"
  file   = file.a
}`, []string{`cfg.hcl:4:12: error: Invalid status`}, true},
		{"status list", `plugin "file" {}
file "a" { path = "ok.txt" }
error_page {
  status = [502, "503", "4xx"]
  file   = file.a
}`, nil, false},
		{"body and file", `plugin "file" {}
file "a" { path = "ok.txt" }
route "/x" {
  respond {
    body = "x"
    file = file.a
  }
}`, []string{"error: Conflicting respond"}, true},
		{"bad ttl", `plugin "file" {}
file "a" {
  path = "ok.txt"
  ttl = "soon"
}`, []string{"cfg.hcl:4:9: error: Invalid duration"}, true},
		{"bad name", `plugin "file" {}
file "a b" { path = "ok.txt" }`, []string{"error: Invalid file name"}, true},
		{"static root missing", `plugin "file" {}
route "/s/" {
  static { root = "./nothere" }
}`, []string{"cfg.hcl:3:19: error: Invalid static root"}, true},
		{"static with backend", `plugin "file" {}
backend "o" { url = "http://127.0.0.1:1" }
route "/s/" {
  backend = backend.o
  static { root = "./adir" }
}`, []string{"error: Conflicting route"}, true},
		{"condition on file state", `plugin "file" {}
file "a" { path = "ok.txt" }
route "/x" {
  when = !file.a.error && file.a.size > 0
  respond { file = file.a }
}`, nil, false},
		{"condition on unknown file field", `plugin "file" {}
file "a" { path = "ok.txt" }
route "/x" {
  when = file.a.colour == "red"
  respond { file = file.a }
}`, []string{`cfg.hcl:4:10: error: Unknown file field`}, true},
		{"condition on unknown file", `plugin "file" {}
route "/x" {
  when = file.b.error
  respond { body = "x" }
}`, []string{`cfg.hcl:3:10: error: Unknown file`}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "cfg.hcl")
			c, diags := Parse(path, []byte(tt.src))
			var sb strings.Builder
			c.WriteDiagnostics(&sb, diags)
			out := strings.ReplaceAll(sb.String(), dir+string(filepath.Separator), "")
			if got := diags.HasErrors(); got != tt.errors {
				t.Fatalf("errors = %v, want %v:\n%s", got, tt.errors, out)
			}
			if len(tt.want) == 0 && len(diags) > 0 {
				t.Fatalf("unexpected diagnostics:\n%s", out)
			}
			rest := out
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("diagnostics lack %q:\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestStaticRoute(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "www"), 0o755)
	src := `plugin "file" {}
route "/assets/" {
  static {
    root = "./www"
    ttl  = "2s"
  }
}`
	c, diags := Parse(filepath.Join(dir, "cfg.hcl"), []byte(src))
	if len(diags) > 0 {
		t.Fatal(diags.Error())
	}
	st := c.Routes[0].Static
	if st == nil || st.Root != filepath.Join(dir, "www") || st.TTL != 2*time.Second || st.Index != "index.html" || st.Name != "route0" {
		t.Fatalf("static = %+v", st)
	}
	v := decodeReaders(t, c.Plugins[0].Body)
	if got := v.GetAttr("static").Index(cty.StringVal("route0")).GetAttr("root").AsString(); got != st.Root {
		t.Errorf("plugin static root = %q, want %q", got, st.Root)
	}
}

func TestFileCondition(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ok.txt"), []byte("ok"), 0o644)
	src := `plugin "file" {}
file "a" { path = "ok.txt" }
route "/x" {
  when = !file.a.error && file.a.size > 1
  respond { file = file.a }
}`
	c, diags := Parse(filepath.Join(dir, "cfg.hcl"), []byte(src))
	if len(diags) > 0 {
		t.Fatal(diags.Error())
	}
	state := func(size int64, failed bool) cty.Value {
		return cty.ObjectVal(map[string]cty.Value{"a": cty.ObjectVal(map[string]cty.Value{
			"size": cty.NumberIntVal(size), "error": cty.BoolVal(failed),
		})})
	}
	for _, tt := range []struct {
		files cty.Value
		want  bool
	}{{state(2, false), true}, {state(1, false), false}, {state(2, true), false}} {
		got, err := EvalCondition(c.Routes[0].When, &Request{Files: tt.files})
		if err != nil || got != tt.want {
			t.Errorf("condition with %#v = %v, %v; want %v", tt.files, got, err, tt.want)
		}
	}
}

// TestFileDiagnosticsGolden checks testdata/file_bad.golden: every problem
// of the file blocks, with its position.
func TestFileDiagnosticsGolden(t *testing.T) {
	_, diags := Load("testdata/file_bad.hcl")
	var lines []string
	for _, d := range diags {
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		r := d.Subject
		detail := d.Detail
		if i := strings.Index(detail, "testdata/"); i > 0 {
			// Absolute paths differ between checkouts.
			j := strings.LastIndex(detail[:i], " ")
			detail = detail[:j+1] + detail[i:]
		}
		lines = append(lines, fmt.Sprintf("%s:%d,%d: %s: %s; %s", filepath.Base(r.Filename), r.Start.Line, r.Start.Column, sev, d.Summary, detail))
	}
	got := strings.Join(lines, "\n") + "\n"
	if *updateFileGolden {
		os.WriteFile("testdata/file_bad.golden", []byte(got), 0o644)
	}
	want, err := os.ReadFile("testdata/file_bad.golden")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", got, want)
	}
}

var updateFileGolden = flag.Bool("update-file-golden", false, "rewrite golden files")

// FuzzStatusRange: parseStatusRange accepts only error statuses and
// classes, and a range it returns lies within 400..599.
func FuzzStatusRange(f *testing.F) {
	for _, s := range []string{"5xx", "503", "4XX", " 404 ", "2xx", "600", "5x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, ok := parseStatusRange(s)
		if ok && (r.Lo < 400 || r.Hi > 599 || r.Lo > r.Hi) {
			t.Fatalf("parseStatusRange(%q) = %+v", s, r)
		}
	})
}
