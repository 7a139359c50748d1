package httpcache

import (
	"net/http"
	"testing"
	"time"
)

func TestParseHTTPDate(t *testing.T) {
	want := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)
	tests := []struct {
		in string
		ok bool
	}{
		// RFC 9110 §5.6.7: the three formats a recipient accepts.
		{"Sun, 06 Nov 1994 08:49:37 GMT", true},
		{"Sunday, 06-Nov-94 08:49:37 GMT", true},
		{"Sun Nov  6 08:49:37 1994", true},
		{" Sun, 06 Nov 1994 08:49:37 GMT ", true},
		{"Sun, 06 Nov 1994 08:49:37 UTC", false},
		{"Sun, 31 Feb 1994 08:49:37 GMT", false},
		{"Sun, 06 Nov 1994 24:49:37 GMT", false},
		{"Xyz, 06 Nov 1994 08:49:37 GMT", false},
		{"Sun, 06 Foo 1994 08:49:37 GMT", false},
		{"Sun, 0x Nov 1994 08:49:37 GMT", false},
		{"0", false},
		{"", false},
	}
	for _, tt := range tests {
		got, ok := parseHTTPDate(tt.in)
		if ok != tt.ok || (ok && !got.Equal(want)) {
			t.Errorf("parseHTTPDate(%q) = %v, %v; want %v", tt.in, got, ok, tt.ok)
		}
	}
}

func TestParseHTTPDateAgreesWithNetHTTP(t *testing.T) {
	// Every second of a few days spread over the years, in IMF-fixdate.
	for _, start := range []time.Time{
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2000, 2, 28, 12, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC),
	} {
		for i := 0; i < 86400*2; i += 7 {
			s := start.Add(time.Duration(i) * time.Second).Format(http.TimeFormat)
			want, err := http.ParseTime(s)
			got, ok := parseHTTPDate(s)
			if err != nil || !ok || !got.Equal(want) {
				t.Fatalf("%q: got %v %v, net/http %v %v", s, got, ok, want, err)
			}
		}
	}
}
