package httpcache

import (
	"net/http"
	"testing"
	"time"
)

func TestEvaluatePreconditions(t *testing.T) {
	lm := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	before := lm.Add(-time.Hour).Format(http.TimeFormat)
	at := lm.Format(http.TimeFormat)
	after := lm.Add(time.Hour).Format(http.TimeFormat)
	const etag = `"v1"`
	tests := []struct {
		name   string
		method string
		h      http.Header
		etag   string
		lm     time.Time
		want   int
	}{
		{"none", "GET", http.Header{}, etag, lm, 0},
		// §13.1.1: If-Match uses strong comparison; "*" matches.
		{"if-match ok", "GET", http.Header{"If-Match": {`"x", "v1"`}}, etag, lm, 0},
		{"if-match fail", "GET", http.Header{"If-Match": {`"x"`}}, etag, lm, 412},
		{"if-match weak", "GET", http.Header{"If-Match": {`W/"v1"`}}, etag, lm, 412},
		{"if-match weak stored", "GET", http.Header{"If-Match": {`"v1"`}}, `W/"v1"`, lm, 412},
		{"if-match star", "GET", http.Header{"If-Match": {`*`}}, etag, lm, 0},
		{"if-match no etag", "GET", http.Header{"If-Match": {`"v1"`}}, "", lm, 412},
		{"if-match lines", "GET", http.Header{"If-Match": {`"a"`, `"v1"`}}, etag, lm, 0},
		// §13.1.4: If-Unmodified-Since.
		{"ius ok", "GET", http.Header{"If-Unmodified-Since": {at}}, etag, lm, 0},
		{"ius fail", "GET", http.Header{"If-Unmodified-Since": {before}}, etag, lm, 412},
		{"ius invalid", "GET", http.Header{"If-Unmodified-Since": {"garbage"}}, etag, lm, 0},
		{"ius no lm", "GET", http.Header{"If-Unmodified-Since": {before}}, etag, time.Time{}, 0},
		// §13.2.2 step 2: If-Unmodified-Since ignored when If-Match present.
		{"ius under if-match", "GET", http.Header{"If-Match": {etag}, "If-Unmodified-Since": {before}}, etag, lm, 0},
		// §13.1.2: If-None-Match, weak comparison → 304 for GET/HEAD.
		{"inm match", "GET", http.Header{"If-None-Match": {etag}}, etag, lm, 304},
		{"inm weak match", "HEAD", http.Header{"If-None-Match": {`W/"v1"`}}, etag, lm, 304},
		{"inm weak stored", "GET", http.Header{"If-None-Match": {`"v1"`}}, `W/"v1"`, lm, 304},
		{"inm list", "GET", http.Header{"If-None-Match": {`"a", W/"b",  "v1"`}}, etag, lm, 304},
		{"inm no match", "GET", http.Header{"If-None-Match": {`"a"`}}, etag, lm, 0},
		{"inm star", "GET", http.Header{"If-None-Match": {`*`}}, etag, lm, 304},
		{"inm POST", "POST", http.Header{"If-None-Match": {etag}}, etag, lm, 412},
		{"inm garbage member", "GET", http.Header{"If-None-Match": {`v1, "v1"`}}, etag, lm, 304},
		{"inm no etag", "GET", http.Header{"If-None-Match": {`"v1"`}}, "", lm, 0},
		// §13.2.2 step 4: If-Modified-Since only without If-None-Match.
		{"ims not modified", "GET", http.Header{"If-Modified-Since": {at}}, etag, lm, 304},
		{"ims later", "GET", http.Header{"If-Modified-Since": {after}}, etag, lm, 304},
		{"ims modified", "GET", http.Header{"If-Modified-Since": {before}}, etag, lm, 0},
		{"ims under inm", "GET", http.Header{"If-None-Match": {`"a"`}, "If-Modified-Since": {after}}, etag, lm, 0},
		{"ims POST", "POST", http.Header{"If-Modified-Since": {after}}, etag, lm, 0},
		{"ims invalid", "GET", http.Header{"If-Modified-Since": {"nope"}}, etag, lm, 0},
		{"ims two members", "GET", http.Header{"If-Modified-Since": {at, at}}, etag, lm, 0},
		{"ims no lm", "GET", http.Header{"If-Modified-Since": {after}}, etag, time.Time{}, 0},
		// Sub-second Last-Modified compares at HTTP-date precision.
		{"ims subsecond", "GET", http.Header{"If-Modified-Since": {at}}, etag, lm.Add(500 * time.Millisecond), 304},
		// §13.2.2: If-Match is evaluated before If-None-Match.
		{"order", "GET", http.Header{"If-Match": {`"x"`}, "If-None-Match": {etag}}, etag, lm, 412},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EvaluatePreconditions(tt.method, tt.h, tt.etag, tt.lm); got != tt.want {
				t.Errorf("EvaluatePreconditions = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestIfRangeMatches(t *testing.T) {
	lm := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		h    http.Header
		etag string
		lm   time.Time
		want bool
	}{
		{"absent", http.Header{}, `"v1"`, lm, true},
		// §13.1.5: strong comparison for entity tags.
		{"etag", http.Header{"If-Range": {`"v1"`}}, `"v1"`, lm, true},
		{"etag differs", http.Header{"If-Range": {`"v2"`}}, `"v1"`, lm, false},
		{"weak client", http.Header{"If-Range": {`W/"v1"`}}, `"v1"`, lm, false},
		{"weak stored", http.Header{"If-Range": {`"v1"`}}, `W/"v1"`, lm, false},
		{"no stored etag", http.Header{"If-Range": {`"v1"`}}, "", lm, false},
		// §13.1.5: an HTTP-date must match exactly.
		{"date", http.Header{"If-Range": {lm.Format(http.TimeFormat)}}, `"v1"`, lm, true},
		{"date differs", http.Header{"If-Range": {lm.Add(time.Second).Format(http.TimeFormat)}}, `"v1"`, lm, false},
		{"date no lm", http.Header{"If-Range": {lm.Format(http.TimeFormat)}}, `"v1"`, time.Time{}, false},
		{"garbage", http.Header{"If-Range": {"xyz"}}, `"v1"`, lm, false},
		{"empty", http.Header{"If-Range": {""}}, `"v1"`, lm, false},
		{"two lines", http.Header{"If-Range": {`"v1"`, `"v1"`}}, `"v1"`, lm, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IfRangeMatches(tt.h, tt.etag, tt.lm); got != tt.want {
				t.Errorf("IfRangeMatches = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPreconditionsNoAlloc(t *testing.T) {
	h := http.Header{"If-None-Match": {`"a", "b", W/"v1"`}}
	lm := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	if n := testing.AllocsPerRun(100, func() {
		if EvaluatePreconditions("GET", h, `"v1"`, lm) != 304 {
			t.Fatal("want 304")
		}
	}); n != 0 {
		t.Errorf("EvaluatePreconditions allocates %v times", n)
	}
}

func FuzzEvaluatePreconditions(f *testing.F) {
	f.Add(`"a", W/"b"`, `"b"`, "Sun, 22 Nov 2026 09:00:00 GMT", `W/"b"`)
	f.Add(`*`, `x`, "garbage", `"x`)
	lm := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, ifMatch, ifNoneMatch, date, etag string) {
		h := http.Header{"If-Match": {ifMatch}, "If-None-Match": {ifNoneMatch}, "If-Modified-Since": {date}, "If-Unmodified-Since": {date}, "If-Range": {ifNoneMatch}}
		switch got := EvaluatePreconditions("GET", h, etag, lm); got {
		case 0, 304, 412:
		default:
			t.Fatalf("status %d", got)
		}
		// §13.1.2: a matching If-None-Match never lets a GET through,
		// whatever If-Modified-Since says.
		delete(h, "If-Match")
		delete(h, "If-Unmodified-Since")
		if matchList(h["If-None-Match"], etag, false) && EvaluatePreconditions("GET", h, etag, lm) != 304 {
			t.Fatalf("If-None-Match %q matches %q but no 304", ifNoneMatch, etag)
		}
		IfRangeMatches(h, etag, lm)
	})
}

func TestNoneMatch(t *testing.T) {
	for _, tc := range []struct {
		value, etag string
		want        bool
	}{
		{`"a"`, `"a"`, true},
		{`W/"a"`, `"a"`, true},
		{`"b", W/"a"`, `"a"`, true},
		{`*`, `"a"`, true},
		{`"b"`, `"a"`, false},
		{`"a"`, ``, false},
		{`garbage, "a"`, `"a"`, true},
	} {
		if got := NoneMatch([]byte(tc.value), tc.etag); got != tc.want {
			t.Errorf("NoneMatch(%q, %q) = %v, want %v", tc.value, tc.etag, got, tc.want)
		}
	}
}
