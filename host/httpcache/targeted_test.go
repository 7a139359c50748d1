package httpcache

import (
	"net/http"
	"reflect"
	"testing"
	"time"
)

// RFC 9213 §2.1 and RFC 8941 §4.2.2: a targeted field is a Dictionary; one
// that does not parse is ignored as a whole.
func TestResponseDirectivesTargeted(t *testing.T) {
	s := time.Second
	targeted := []string{"Edgehost-Cache-Control", CDNCacheControl}
	fromCC := ccWith(func(c *CacheControl) { c.MaxAge = 7 * s }) // Cache-Control: max-age=7
	cdn := func(f func(*CacheControl)) CacheControl {
		return ccWith(func(c *CacheControl) { c.Targeted = CDNCacheControl; f(c) })
	}
	tests := []struct {
		name string
		cdn  []string
		want CacheControl
	}{
		{"max-age", []string{"max-age=60"}, cdn(func(c *CacheControl) { c.MaxAge = 60 * s })},
		{"booleans", []string{"no-store, private, must-revalidate, public, no-cache, proxy-revalidate"}, cdn(func(c *CacheControl) {
			c.NoStore, c.Private, c.MustRevalidate, c.Public, c.NoCache, c.ProxyRevalidate = true, true, true, true, true, true
		})},
		{"true is bare", []string{"no-store=?1"}, cdn(func(c *CacheControl) { c.NoStore = true })},
		{"false is absent", []string{"no-store=?0, max-age=5"}, cdn(func(c *CacheControl) { c.MaxAge = 5 * s })},
		{"stale", []string{"s-maxage=10, stale-while-revalidate=20, stale-if-error=30"}, cdn(func(c *CacheControl) {
			c.SMaxAge, c.StaleWhileRevalidate, c.StaleIfError = 10*s, 20*s, 30*s
		})},
		{"lines combine", []string{"max-age=60", "no-store"}, cdn(func(c *CacheControl) { c.MaxAge, c.NoStore = 60*s, true })},
		{"params ignored", []string{"max-age=60;foo=bar;baz, private;x"}, cdn(func(c *CacheControl) { c.MaxAge, c.Private = 60*s, true })},
		{"qualified private", []string{`max-age=60, private="X-Secret, set-cookie"`}, cdn(func(c *CacheControl) {
			c.MaxAge, c.PrivateFields = 60*s, []string{"X-Secret", "Set-Cookie"}
		})},
		{"qualified no-cache", []string{`no-cache="x-a"`}, cdn(func(c *CacheControl) { c.NoCacheFields = []string{"X-A"} })},
		// RFC 8941 §4.2.2: a repeated key takes the last value.
		{"last wins", []string{"max-age=60, max-age=5"}, cdn(func(c *CacheControl) { c.MaxAge = 5 * s })},
		// Values of the wrong type are invalid: max-age is then 0 (stale,
		// RFC 9111 §4.2.1), stale-* are ignored.
		{"decimal max-age", []string{"max-age=3600.0"}, cdn(func(c *CacheControl) { c.MaxAge = 0 })},
		{"string max-age", []string{`max-age="60"`}, cdn(func(c *CacheControl) { c.MaxAge = 0 })},
		{"negative max-age", []string{"max-age=-60"}, cdn(func(c *CacheControl) { c.MaxAge = 0 })},
		{"list max-age", []string{"max-age=(1 2)"}, cdn(func(c *CacheControl) { c.MaxAge = 0 })},
		{"bytes swr", []string{"stale-while-revalidate=:AQID:"}, cdn(func(c *CacheControl) {})},
		{"unknown", []string{"foo=bar, max-age=3"}, cdn(func(c *CacheControl) { c.MaxAge = 3 * s })},
		{"ows", []string{"max-age=60 ,\tno-store  "}, cdn(func(c *CacheControl) { c.MaxAge, c.NoStore = 60*s, true })},
		// Not a Dictionary: Cache-Control decides.
		{"uppercase key", []string{"Max-Age=60"}, fromCC},
		{"trailing comma", []string{"max-age=60,"}, fromCC},
		{"empty", []string{""}, fromCC},
		{"spaces only", []string{"  "}, fromCC},
		{"space before =", []string{"max-age =60"}, fromCC},
		{"bad string", []string{`private="a`}, fromCC},
		{"bad escape", []string{`private="\a"`}, fromCC},
		{"long integer", []string{"max-age=1234567890123456"}, fromCC},
		{"bad decimal", []string{"max-age=1.2345"}, fromCC},
		{"two dots", []string{"max-age=1.2.3"}, fromCC},
		{"semicolon", []string{"max-age=60;"}, fromCC},
		{"cache-control syntax", []string{"max-age=60, private=\"a\", no-cache=b c"}, fromCC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Cache-Control": {"max-age=7"}, "Cdn-Cache-Control": tt.cdn}
			got := ResponseDirectives(h, targeted)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ResponseDirectives(%q)\n got %+v\nwant %+v", tt.cdn, got, tt.want)
			}
		})
	}
}

func TestResponseDirectivesOrder(t *testing.T) {
	h := http.Header{"Cache-Control": {"max-age=1"}, "Cdn-Cache-Control": {"max-age=2"}, "Edgehost-Cache-Control": {"max-age=3"}}
	for _, tt := range []struct {
		targeted []string
		want     time.Duration
		field    string
	}{
		{nil, 1 * time.Second, ""},
		{[]string{CDNCacheControl}, 2 * time.Second, CDNCacheControl},
		{[]string{"Edgehost-Cache-Control", CDNCacheControl}, 3 * time.Second, "Edgehost-Cache-Control"},
		{[]string{CDNCacheControl, "Edgehost-Cache-Control"}, 2 * time.Second, CDNCacheControl},
		{[]string{"Other-Cache-Control"}, 1 * time.Second, ""},
	} {
		cc := ResponseDirectives(h, tt.targeted)
		if cc.MaxAge != tt.want || cc.Targeted != tt.field {
			t.Errorf("targeted %q: max-age %v from %q, want %v from %q", tt.targeted, cc.MaxAge, cc.Targeted, tt.want, tt.field)
		}
	}
}

func FuzzResponseDirectives(f *testing.F) {
	for _, s := range []string{"max-age=60", `private="a, b";x=1`, "a=(1 2);p, b=:AQ==:, c=?0", "max-age=1.5,", `x="\"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		cc := ResponseDirectives(http.Header{CDNCacheControl: {v}}, []string{CDNCacheControl})
		for _, d := range []time.Duration{cc.MaxAge, cc.SMaxAge, cc.StaleWhileRevalidate, cc.StaleIfError} {
			if d != Absent && (d < 0 || d > MaxDelta) {
				t.Fatalf("duration %v out of range for %q", d, v)
			}
		}
		for _, f := range append(cc.NoCacheFields, cc.PrivateFields...) {
			if !validToken(f) {
				t.Fatalf("field name %q is not a token", f)
			}
		}
	})
}
