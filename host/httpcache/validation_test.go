package httpcache

import (
	"net/http"
	"reflect"
	"testing"
)

func TestStripUnstorable(t *testing.T) {
	h := http.Header{
		"Connection":         {"close, X-Hop"},
		"X-Hop":              {"1"},
		"Keep-Alive":         {"timeout=5"},
		"Transfer-Encoding":  {"chunked"},
		"Proxy-Authenticate": {"Basic"},
		"Set-Cookie":         {"a=b"},
		"Content-Type":       {"text/html"},
		"X-Custom":           {"kept"},
	}
	// §3.1: hop-by-hop, Connection-listed, proxy fields; §5.2.2.4 qualified no-cache.
	StripUnstorable(h, ParseCacheControl([]string{`no-cache="Set-Cookie"`}))
	want := http.Header{"Content-Type": {"text/html"}, "X-Custom": {"kept"}}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("got %v, want %v", h, want)
	}
}

func TestAddValidators(t *testing.T) {
	req := http.Header{}
	stored := http.Header{"Etag": {`"v1"`}, "Last-Modified": {"Sun, 22 Nov 2026 09:00:00 GMT"}}
	// §4.3.1
	if !AddValidators(req, stored) || req.Get("If-None-Match") != `"v1"` || req.Get("If-Modified-Since") != "Sun, 22 Nov 2026 09:00:00 GMT" {
		t.Errorf("got %v", req)
	}
	if AddValidators(http.Header{}, http.Header{"Content-Type": {"x"}}) {
		t.Error("validators added from a response without any")
	}
}

func TestNotModifiedSelects(t *testing.T) {
	lm := "Sun, 22 Nov 2026 09:00:00 GMT"
	stored := http.Header{"Etag": {`"v1"`}, "Last-Modified": {lm}}
	tests := []struct {
		name string
		nm   http.Header
		want bool
	}{
		// §4.3.4
		{"same etag", http.Header{"Etag": {`"v1"`}}, true},
		{"weak etag", http.Header{"Etag": {`W/"v1"`}}, true},
		{"other etag", http.Header{"Etag": {`"v2"`}, "Last-Modified": {lm}}, false},
		{"same lm", http.Header{"Last-Modified": {lm}}, true},
		{"other lm", http.Header{"Last-Modified": {"Sun, 22 Nov 2026 09:00:01 GMT"}}, false},
		{"no validator", http.Header{"Date": {lm}}, true},
	}
	for _, tt := range tests {
		if got := NotModifiedSelects(stored, tt.nm); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	if NotModifiedSelects(http.Header{}, http.Header{"Etag": {`"v1"`}}) {
		t.Error("an etag selected a stored response without one")
	}
}

func TestUpdateStored(t *testing.T) {
	stored := http.Header{
		"Cache-Control":    {"max-age=10"},
		"Content-Length":   {"1234"},
		"Content-Encoding": {"gzip"},
		"Etag":             {`"v1"`},
		"X-Old":            {"kept"},
	}
	fresh := http.Header{
		"Cache-Control":    {"max-age=600"},
		"Content-Length":   {"0"},
		"Content-Encoding": {"br"},
		"Date":             {"Sun, 22 Nov 2026 10:00:00 GMT"},
		"Connection":       {"X-Hop"},
		"X-Hop":            {"1"},
		"Keep-Alive":       {"5"},
	}
	// §3.2
	UpdateStored(stored, fresh)
	want := http.Header{
		"Cache-Control":    {"max-age=600"},
		"Content-Length":   {"1234"},
		"Content-Encoding": {"gzip"},
		"Etag":             {`"v1"`},
		"X-Old":            {"kept"},
		"Date":             {"Sun, 22 Nov 2026 10:00:00 GMT"},
	}
	if !reflect.DeepEqual(stored, want) {
		t.Errorf("got %v\nwant %v", stored, want)
	}
	fresh["Cache-Control"][0] = "changed"
	if stored.Get("Cache-Control") != "max-age=600" {
		t.Error("stored header shares its values with the 304")
	}
}
