package httpcache

import (
	"net/http"
	"reflect"
	"testing"
)

func TestStoredHeader(t *testing.T) {
	base := func() http.Header {
		return http.Header{
			"Connection":         {"close, X-Hop"},
			"X-Hop":              {"1"},
			"Keep-Alive":         {"timeout=5"},
			"Transfer-Encoding":  {"chunked"},
			"Proxy-Authenticate": {"Basic"},
			"Age":                {"30"},
			"Cache-Status":       {"upstream; hit"},
			"Set-Cookie":         {"a=b"},
			"X-Secret":           {"token"},
			"Content-Type":       {"text/html"},
			"X-Custom":           {"kept"},
		}
	}
	targeted := []string{"Edgehost-Cache-Control", CDNCacheControl}
	tests := []struct {
		name  string
		extra http.Header
		want  []string // the fields kept besides Content-Type and X-Custom
	}{
		// §3.1: hop-by-hop, Connection-listed and proxy fields; Age and
		// Cache-Status are per delivery.
		{"plain", http.Header{"Cache-Control": {"max-age=60"}}, []string{"Cache-Control", "Set-Cookie", "X-Secret"}},
		// §5.2.2.7: a qualified private field is never stored.
		{"private field", http.Header{"Cache-Control": {`max-age=60, private="X-Secret"`}}, []string{"Cache-Control", "Set-Cookie"}},
		// §5.2.2.4: nor is a qualified no-cache field (never sent without
		// revalidation).
		{"no-cache field", http.Header{"Cache-Control": {`max-age=60, no-cache="Set-Cookie"`}}, []string{"Cache-Control", "X-Secret"}},
		{"both", http.Header{"Cache-Control": {`no-cache="set-cookie", private="x-secret"`}}, []string{"Cache-Control"}},
		// RFC 9213: the targeted field decides and is not stored; the
		// qualified fields of both go.
		{"targeted", http.Header{"Cache-Control": {`private="X-Secret"`}, "Cdn-Cache-Control": {`max-age=60, no-cache="set-cookie"`}}, []string{"Cache-Control"}},
		{"both targeted", http.Header{"Edgehost-Cache-Control": {"max-age=5"}, "Cdn-Cache-Control": {"max-age=60"}}, []string{"Set-Cookie", "X-Secret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := base()
			for k, v := range tt.extra {
				h[k] = v
			}
			before := h.Clone()
			got := StoredHeader(h, ResponseDirectives(h, targeted), targeted)
			want := http.Header{"Content-Type": {"text/html"}, "X-Custom": {"kept"}}
			for _, k := range tt.want {
				want[k] = h[k]
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %v\nwant %v", got, want)
			}
			if !reflect.DeepEqual(h, before) {
				t.Error("StoredHeader changed its argument (the response in flight to the client)")
			}
		})
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

// RFC 9111 §4.3.4: a 304 updates only the stored response it selects.
func TestNotModifiedSelects(t *testing.T) {
	lm := "Sun, 22 Nov 2026 09:00:00 GMT"
	strong := http.Header{"Etag": {`"v1"`}, "Last-Modified": {lm}}
	weak := http.Header{"Etag": {`W/"v1"`}, "Last-Modified": {lm}}
	lmOnly := http.Header{"Last-Modified": {lm}}
	none := http.Header{}
	tests := []struct {
		name   string
		stored http.Header
		nm     http.Header
		want   bool
	}{
		{"same strong etag", strong, http.Header{"Etag": {`"v1"`}}, true},
		{"strong etag, stored weak", weak, http.Header{"Etag": {`"v1"`}}, false},
		{"weak etag, stored strong", strong, http.Header{"Etag": {`W/"v1"`}}, true},
		{"weak etag, stored weak", weak, http.Header{"Etag": {`W/"v1"`}}, true},
		{"other strong etag", strong, http.Header{"Etag": {`"v2"`}}, false},
		// The entity tag decides over an equal Last-Modified.
		{"other etag same lm", strong, http.Header{"Etag": {`"v2"`}, "Last-Modified": {lm}}, false},
		{"other weak etag", weak, http.Header{"Etag": {`W/"v2"`}}, false},
		{"etag, stored none", lmOnly, http.Header{"Etag": {`"v1"`}}, false},
		{"same lm", lmOnly, http.Header{"Last-Modified": {lm}}, true},
		{"same lm, stored etag", strong, http.Header{"Last-Modified": {lm}}, true},
		{"other lm", strong, http.Header{"Last-Modified": {"Sun, 22 Nov 2026 09:00:01 GMT"}}, false},
		{"lm, stored none", none, http.Header{"Last-Modified": {lm}}, false},
		{"bad lm", lmOnly, http.Header{"Last-Modified": {"yesterday"}}, false},
		// No validator: the answer to edgehost's own conditional request.
		{"no validator", strong, http.Header{"Date": {lm}}, true},
		{"no validator, stored none", none, http.Header{}, true},
	}
	for _, tt := range tests {
		if got := NotModifiedSelects(tt.stored, tt.nm); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
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
