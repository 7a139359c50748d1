package httpcache

import (
	"net/http"
	"testing"
	"time"
)

// RFC 9110 §5.6.7: HTTP-date, strictly.
func TestParseHTTPDate(t *testing.T) {
	want := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)
	tests := []struct {
		in string
		ok bool
	}{
		// The three formats a recipient accepts.
		{"Sun, 06 Nov 1994 08:49:37 GMT", true},
		{"Sunday, 06-Nov-94 08:49:37 GMT", true},
		{"Sun Nov  6 08:49:37 1994", true},
		{" Sun, 06 Nov 1994 08:49:37 GMT ", true}, // OWS around a field value (§5.5)
		{"Sun, 06 Nov 1994 08:49:37 UTC", false},
		{"Sun, 31 Feb 1994 08:49:37 GMT", false},
		{"Sun, 06 Nov 1994 24:49:37 GMT", false},
		{"Xyz, 06 Nov 1994 08:49:37 GMT", false},
		{"Sun, 06 Foo 1994 08:49:37 GMT", false},
		{"Sun, 0x Nov 1994 08:49:37 GMT", false},
		// What net/http.ParseTime accepted and the grammar does not.
		{"Sun, 06 Nov 1994  08:49:37 GMT", false}, // two spaces
		{"Sun,  06 Nov 1994 08:49:37 GMT", false},
		{"Sun, 06 Nov 1994 8:49:37 GMT", false}, // one-digit hour
		{"Sun, 6 Nov 1994 08:49:37 GMT", false}, // one-digit day
		{"Sunday, 06-Nov-94 8:49:37 GMT", false},
		{"Sunday, 06-Nov-94  08:49:37 GMT", false},
		{"Sun Nov 6 08:49:37 1994", false},   // asctime pads the day with a space
		{"Sun Nov  6 8:49:37 1994", false},   // one-digit hour
		{"Sun Nov  6 08:49:37  1994", false}, // two spaces before the year
		{"sun, 06 nov 1994 08:49:37 gmt", false},
		{"Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT", false},
		{"Sun, 06 Nov 94 08:49:37 GMT", false},
		{"Sun, 06 Nov 1994 08:49 GMT", false},
		{"Sun, 06 Nov 1994 08:49:37 +0000", false},
		{"1994-11-06T08:49:37Z", false},
		{"0", false},
		{"-1", false},
		{"", false},
	}
	for _, tt := range tests {
		got, ok := parseHTTPDate(tt.in)
		if ok != tt.ok || (ok && !got.Equal(want)) {
			t.Errorf("parseHTTPDate(%q) = %v, %v; want %v", tt.in, got, ok, tt.ok)
		}
	}
}

// RFC 9110 §5.6.7: a two-digit year more than 50 years in the future is the
// most recent past year with those digits.
func TestParseRFC850Year(t *testing.T) {
	tests := []struct {
		in       string
		thisYear int
		want     int
	}{
		{"Sunday, 06-Nov-94 08:49:37 GMT", 2026, 1994},
		{"Sunday, 06-Nov-26 08:49:37 GMT", 2026, 2026},
		{"Sunday, 06-Nov-76 08:49:37 GMT", 2026, 2076},
		{"Sunday, 06-Nov-77 08:49:37 GMT", 2026, 1977},
		{"Sunday, 06-Nov-10 08:49:37 GMT", 2090, 2110},
		{"Sunday, 06-Nov-40 08:49:37 GMT", 2090, 2140},
		{"Sunday, 06-Nov-41 08:49:37 GMT", 2090, 2041},
	}
	for _, tt := range tests {
		got, ok := parseRFC850(tt.in, tt.thisYear)
		if !ok || got.Year() != tt.want {
			t.Errorf("parseRFC850(%q, %d) = %v, %v; want year %d", tt.in, tt.thisYear, got, ok, tt.want)
		}
	}
}

func TestParseHTTPDateAgreesWithNetHTTP(t *testing.T) {
	// Every 7th second of a few days spread over the years, in all three
	// formats (net/http agrees on well-formed input).
	const rfc850 = "Monday, 02-Jan-06 15:04:05 GMT"
	for _, start := range []time.Time{
		time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2000, 2, 28, 12, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC),
	} {
		for i := 0; i < 86400*2; i += 7 {
			tm := start.Add(time.Duration(i) * time.Second)
			for _, s := range []string{tm.Format(http.TimeFormat), tm.Format(time.ANSIC), tm.Format(rfc850)} {
				want, err := http.ParseTime(s)
				got, ok := parseHTTPDate(s)
				if err != nil || !ok || !got.Equal(want) {
					t.Fatalf("%q: got %v %v, net/http %v %v", s, got, ok, want, err)
				}
			}
		}
	}
}
