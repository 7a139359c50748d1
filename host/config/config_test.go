package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAcceptanceConfig(t *testing.T) {
	c, diags := Load("testdata/acceptance.hcl")
	if diags.HasErrors() {
		t.Fatalf("acceptance config: %s", diags.Error())
	}
	if got, want := c.Listen.HTTP, "127.0.0.1:18080"; got != want {
		t.Errorf("listen.http = %q, want %q", got, want)
	}
	if got, want := c.Listen.Self, "./var/self.sock"; got != want {
		t.Errorf("listen.self = %q, want %q", got, want)
	}
	if got, want := c.Admin.Token, "s3cret"; got != want {
		t.Errorf("token = %q, want %q", got, want)
	}
	if got, want := c.Storage.Memory, int64(64<<20); got != want {
		t.Errorf("memory = %d, want %d", got, want)
	}
	if got, want := c.Storage.Disk, int64(1<<30); got != want {
		t.Errorf("disk = %d, want %d", got, want)
	}
	if len(c.Routes) != 1 {
		t.Fatalf("routes = %d, want 1", len(c.Routes))
	}
	r := c.Routes[0]
	if r.Backend != "origin" || r.DefaultTTL != 2*time.Minute || r.Grace != time.Hour {
		t.Errorf("route = %+v", r)
	}
	if got, want := c.Backends["origin"].URL, "http://127.0.0.1:18081"; got != want {
		t.Errorf("backend url = %q, want %q", got, want)
	}
}

// TestDiagnostics checks the golden file: every error is reported with its
// file:line:col, not just the first.
func TestDiagnostics(t *testing.T) {
	_, diags := Load("testdata/bad.hcl")
	var lines []string
	for _, d := range diags {
		r := d.Subject
		lines = append(lines, filepath.Base(r.Filename)+":"+r.String()[strings.Index(r.String(), ":")+1:]+": "+d.Summary+"; "+d.Detail)
	}
	got := strings.Join(lines, "\n") + "\n"
	want, err := os.ReadFile("testdata/bad.golden")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", got, want)
	}
}

func TestSemanticDiagnostics(t *testing.T) {
	src := `
backend "origin" { url = "http://127.0.0.1:1" }
route "/api" {
  backend = backend.nope
}
route "/q" {
  backend = backend.origin
  when    = request.methd == "GET"
}
route "/r" {
  backend = backend.origin
  when    = other.thing
}
route "nope" {
  respond { status = 1000 }
}
`
	c, diags := Parse("t.hcl", []byte(src))
	var buf bytes.Buffer
	c.WriteDiagnostics(&buf, diags)
	out := buf.String()
	for _, want := range []string{
		`no backend "nope" is declared; declared: origin`,
		`request has no field "methd"`,
		`"other" is not available in a request condition`,
		`a prefix is a path starting with "/"`,
		`status 1000 is not an HTTP status code`,
		"t.hcl:4:13: error: Unknown backend",
		"t.hcl:8:13: error: Unknown request field",
		"    8 |   when    = request.methd == \"GET\"\n      |             ^^^^^^^^^^^^^\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("diagnostics lack %q:\n%s", want, out)
		}
	}
}

func TestConditions(t *testing.T) {
	src := `
backend "origin" { url = "http://127.0.0.1:1" }
route "/" {
  backend = backend.origin
  when = request.method == "GET" && lookup(request.headers, "x-beta", "") == "1" && startswith(request.path, "/b")
}
`
	c, diags := Parse("t.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, tc := range []struct {
		req  Request
		want bool
	}{
		{Request{Method: "GET", Path: "/beta", Headers: map[string]string{"x-beta": "1"}}, true},
		{Request{Method: "POST", Path: "/beta", Headers: map[string]string{"x-beta": "1"}}, false},
		{Request{Method: "GET", Path: "/beta"}, false},
		{Request{Method: "GET", Path: "/alpha", Headers: map[string]string{"x-beta": "1"}}, false},
	} {
		got, err := EvalCondition(c.Routes[0].When, &tc.req)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%+v: got %v want %v", tc.req, got, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"64MiB", 64 << 20, true}, {"1GiB", 1 << 30, true}, {"512k", 512 << 10, true},
		{"1.5KB", 1500, true}, {"4096", 4096, true}, {"", 0, false}, {"MiB", 0, false}, {"3 furlongs", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2m", 2 * time.Minute, true}, {"1h", time.Hour, true}, {"7d", 7 * 24 * time.Hour, true},
		{"1w", 7 * 24 * time.Hour, true}, {"-1s", 0, false}, {"soon", 0, false},
	} {
		got, err := ParseDuration(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/acceptance.hcl", "testdata/bad.hcl"} {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		c, diags := Parse("fuzz.hcl", src)
		var buf bytes.Buffer
		c.WriteDiagnostics(&buf, diags)
	})
}

// Issue 14: an unconfigured route invents no freshness (default_ttl is 0,
// RFC 9111 decides); the cache block sets the targeted fields (RFC 9213)
// and the heuristic cap (RFC 9111 §4.2.2), carried to each route's Policy.
func TestCachePolicy(t *testing.T) {
	src := `
backend "origin" { url = "http://127.0.0.1:1" }
route "/" { backend = backend.origin }
route "/ttl" {
  backend       = backend.origin
  default_ttl   = "2m"
  grace         = "1h"
  cache_cookies = true
}
`
	c, diags := Parse("t.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	byPrefix := map[string]*Route{}
	for _, r := range c.Routes {
		byPrefix[r.Prefix] = r
	}
	if p := byPrefix["/"].Policy; p.DefaultTTL != 0 || p.HeuristicMax != 24*time.Hour || len(p.Targeted) != 1 || p.Targeted[0] != "Cdn-Cache-Control" {
		t.Errorf("default policy = %+v", p)
	}
	if p := byPrefix["/ttl"].Policy; p.DefaultTTL != 2*time.Minute || p.Grace != time.Hour || !p.AllowCookies {
		t.Errorf("route policy = %+v", p)
	}

	c, diags = Parse("t.hcl", []byte(src+`
cache {
  targeted_fields = ["Edgehost-Cache-Control", "CDN-Cache-Control"]
  heuristic_max   = "1h"
}
`))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if p := c.Routes[0].Policy; p.HeuristicMax != time.Hour || strings.Join(p.Targeted, ",") != "Edgehost-Cache-Control,Cdn-Cache-Control" {
		t.Errorf("policy = %+v", p)
	}

	for _, bad := range []struct{ block, summary string }{
		{`cache { targeted_fields = ["Cache-Control"] }`, "Invalid targeted field"},
		{`cache { targeted_fields = ["CDN-Cache-Control", "cdn-cache-control"] }`, "Duplicate targeted field"},
		{`cache { targeted_fields = ["a b"] }`, "Invalid field name"},
		{`cache { heuristic_max = "soon" }`, ""},
	} {
		_, diags := Parse("t.hcl", []byte(src+bad.block))
		if !diags.HasErrors() {
			t.Errorf("%s: no error", bad.block)
			continue
		}
		if bad.summary != "" && diags[0].Summary != bad.summary {
			t.Errorf("%s: %s, want %s", bad.block, diags[0].Summary, bad.summary)
		}
		if diags[0].Subject == nil || diags[0].Subject.Start.Line != 10 {
			t.Errorf("%s: subject %v, want line 10", bad.block, diags[0].Subject)
		}
	}
}

// TestMaxConnections: limits.max_connections is taken as given, defaults
// to half the descriptor limit, and a negative one is an error at its value.
func TestMaxConnections(t *testing.T) {
	c, diags := Parse("t.hcl", []byte("limits {\n  max_connections = 500\n}\n"))
	if diags.HasErrors() || c.Limits.MaxConnections != 500 {
		t.Errorf("given 500: %d %v", c.Limits.MaxConnections, diags)
	}
	c, diags = Parse("t.hcl", []byte(""))
	if diags.HasErrors() || c.Limits.MaxConnections != DefaultMaxConnections() || c.Limits.MaxConnections < 16 {
		t.Errorf("default: %d %v", c.Limits.MaxConnections, diags)
	}
	c, diags = Parse("t.hcl", []byte("limits {\n  max_connections = -1\n}\n"))
	var buf bytes.Buffer
	c.WriteDiagnostics(&buf, diags)
	if !strings.Contains(buf.String(), "t.hcl:2:21: error: Invalid max_connections") {
		t.Errorf("negative: %s", buf.String())
	}
}
