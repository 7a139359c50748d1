package httpcache

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestVaryKey(t *testing.T) {
	tests := []struct {
		name   string
		vary   []string
		h      http.Header
		want   string
		wantOK bool
	}{
		{"no vary", nil, http.Header{"Accept": {"x"}}, "", true},
		{"empty vary", []string{" , "}, http.Header{}, "", true},
		// §4.1: Vary: * never matches.
		{"star", []string{"Accept, *"}, http.Header{}, "", false},
		{"one", []string{"Accept-Language"}, http.Header{"Accept-Language": {"fr"}}, "accept-language:fr", true},
		// §4.1: an absent field matches only an absent field.
		{"absent", []string{"Accept-Language"}, http.Header{}, "accept-language", true},
		{"present empty", []string{"Accept-Language"}, http.Header{"Accept-Language": {""}}, "accept-language:", true},
		// names lowercased, sorted, deduplicated across lines.
		{"sorted", []string{"X-B, x-a", "X-A"}, http.Header{"X-A": {"1"}, "X-B": {"2"}}, "x-a:1\nx-b:2", true},
		{"lowercase vary", []string{"user-agent"}, http.Header{"User-Agent": {"curl"}}, "user-agent:curl", true},
		// §4.1: normalized by trimming and combining field lines.
		{"trim join", []string{"X-A"}, http.Header{"X-A": {"  a ", "b"}}, "x-a:a, b", true},
		{"control bytes", []string{"X-A"}, http.Header{"X-A": {"a\nx-b:2"}}, "x-a:a?x-b:2", true},
		{"bad name skipped", []string{"X-A, a:b, c d"}, http.Header{"X-A": {"1"}}, "x-a:1", true},
		// Accept-Encoding is reduced to the accepted set.
		{"ae", []string{"Accept-Encoding"}, http.Header{"Accept-Encoding": {"gzip, deflate, br"}}, "accept-encoding:br,deflate,gzip", true},
		{"ae weights", []string{"Accept-Encoding"}, http.Header{"Accept-Encoding": {"br;q=1.0, GZIP;q=0.8", "deflate"}}, "accept-encoding:br,deflate,gzip", true},
		{"ae refused", []string{"Accept-Encoding"}, http.Header{"Accept-Encoding": {"gzip;q=0, identity;q=0.000, br; q=0.001"}}, "accept-encoding:br,-gzip,-identity", true},
		{"ae x-gzip dup", []string{"Accept-Encoding"}, http.Header{"Accept-Encoding": {"x-gzip, gzip;q=0"}}, "accept-encoding:gzip", true},
		{"ae empty", []string{"Accept-Encoding"}, http.Header{"Accept-Encoding": {""}}, "accept-encoding:", true},
		{"ae absent", []string{"Accept-Encoding"}, http.Header{}, "accept-encoding", true},
		{"ae star", []string{"Accept-Encoding"}, http.Header{"Accept-Encoding": {"*;q=0.5, zstd"}}, "accept-encoding:*,zstd", true},
		{"ae and more", []string{"Accept-Encoding, Accept"}, http.Header{"Accept-Encoding": {"gzip"}, "Accept": {"image/webp"}}, "accept:image/webp\naccept-encoding:gzip", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := VaryKey(tt.vary, tt.h)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("VaryKey(%q) = %q, %v; want %q, %v", tt.vary, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestVaryKeyEquivalence(t *testing.T) {
	// Requests the key must not tell apart, and ones it must.
	vary := []string{"Accept-Encoding, Accept-Language"}
	same := []http.Header{
		{"Accept-Encoding": {"gzip, deflate, br, zstd"}, "Accept-Language": {"en"}},
		{"Accept-Encoding": {"zstd;q=1, br;q=0.9", "deflate, gzip"}, "Accept-Language": {" en "}},
		{"Accept-Encoding": {"Br, GZip, deflate, zstd, gzip"}, "Accept-Language": {"en"}},
	}
	first, _ := VaryKey(vary, same[0])
	for _, h := range same[1:] {
		if k, _ := VaryKey(vary, h); k != first {
			t.Errorf("key %q differs from %q", k, first)
		}
	}
	differ := []http.Header{
		{"Accept-Encoding": {"gzip, deflate, br"}, "Accept-Language": {"en"}},
		{"Accept-Encoding": {"gzip, deflate, br, zstd"}, "Accept-Language": {"fr"}},
		{"Accept-Encoding": {"gzip, deflate, br, zstd"}},
		{"Accept-Encoding": {"gzip, deflate, br, zstd;q=0"}, "Accept-Language": {"en"}},
	}
	for _, h := range differ {
		if k, _ := VaryKey(vary, h); k == first {
			t.Errorf("%v: key %q must differ", h, k)
		}
	}
}

func TestAppendVaryKeyNoAlloc(t *testing.T) {
	vary := []string{"Accept-Encoding, accept-language, Origin"}
	h := http.Header{
		"Accept-Encoding": {"gzip, deflate, br, zstd"},
		"Accept-Language": {"en-GB,en;q=0.9"},
		"User-Agent":      {"x"},
	}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() {
		var ok bool
		buf, ok = AppendVaryKey(buf[:0], vary, h)
		if !ok {
			t.Fatal("not ok")
		}
	}); n != 0 {
		t.Errorf("AppendVaryKey allocates %v times", n)
	}
}

func FuzzVaryKey(f *testing.F) {
	f.Add("Accept-Encoding, Cookie", "gzip;q=0, br", "a=b")
	f.Add("*", "", "")
	f.Add("x-a,X-A, , accept-encoding", "x-gzip;q=0.000, GZIP", "\n")
	f.Fuzz(func(t *testing.T, vary, ae, cookie string) {
		h := http.Header{"Accept-Encoding": {ae}, "Cookie": {cookie}}
		k1, ok1 := VaryKey([]string{vary}, h)
		// Splitting the Vary list over lines, in reverse order, gives the
		// same key (§4.1: names are a set).
		parts := strings.Split(vary, ",")
		slices.Reverse(parts)
		k2, ok2 := VaryKey(parts, h)
		if k1 != k2 || ok1 != ok2 {
			t.Fatalf("order changes the key: %q vs %q", k1, k2)
		}
		if !ok1 && k1 != "" {
			t.Fatalf("key %q with ok=false", k1)
		}
		if strings.Count(k1, "\n") > strings.Count(vary, ",") {
			t.Fatalf("key %q has more fields than Vary %q names", k1, vary)
		}
	})
}
