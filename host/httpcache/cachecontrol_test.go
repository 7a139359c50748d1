package httpcache

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// cc builds an expected CacheControl from the absent defaults.
func ccWith(f func(*CacheControl)) CacheControl {
	c := CacheControl{
		MaxAge: Absent, SMaxAge: Absent, StaleWhileRevalidate: Absent,
		StaleIfError: Absent, MaxStale: Absent, MinFresh: Absent,
	}
	if f != nil {
		f(&c)
	}
	return c
}

func TestParseCacheControl(t *testing.T) {
	s := time.Second
	tests := []struct {
		name string
		in   []string
		want CacheControl
	}{
		{"empty", nil, ccWith(nil)},
		{"blank line", []string{" , ,"}, ccWith(nil)},
		{"max-age", []string{"max-age=60"}, ccWith(func(c *CacheControl) { c.MaxAge = 60 * s })},
		// §5.2: directive names are case-insensitive.
		{"case", []string{"Max-Age=60, PUBLIC"}, ccWith(func(c *CacheControl) { c.MaxAge = 60 * s; c.Public = true })},
		// §5.2: recipients accept the quoted-string form of arguments.
		{"quoted delta", []string{`max-age="60"`}, ccWith(func(c *CacheControl) { c.MaxAge = 60 * s })},
		{"spaces", []string{"  max-age = 60 ,  s-maxage=10  "}, ccWith(func(c *CacheControl) { c.MaxAge = 60 * s; c.SMaxAge = 10 * s })},
		// §4.2.1: invalid freshness information → treat as stale.
		{"bad max-age", []string{"max-age=abc"}, ccWith(func(c *CacheControl) { c.MaxAge = 0 })},
		{"negative max-age", []string{"max-age=-1"}, ccWith(func(c *CacheControl) { c.MaxAge = 0 })},
		{"max-age no arg", []string{"max-age"}, ccWith(func(c *CacheControl) { c.MaxAge = 0 })},
		{"bad s-maxage", []string{"s-maxage=1.5"}, ccWith(func(c *CacheControl) { c.SMaxAge = 0 })},
		// §1.2.2: delta-seconds is 1*DIGIT; anything else is invalid, and
		// invalid is stale (§4.2.1).
		{"decimal max-age", []string{"max-age=3600.0"}, ccWith(func(c *CacheControl) { c.MaxAge = 0 })},
		{"unit max-age", []string{"max-age=1h"}, ccWith(func(c *CacheControl) { c.MaxAge = 0 })},
		{"plus max-age", []string{"max-age=+60"}, ccWith(func(c *CacheControl) { c.MaxAge = 0 })},
		{"hex max-age", []string{"max-age=0x10"}, ccWith(func(c *CacheControl) { c.MaxAge = 0 })},
		{"empty max-age", []string{"max-age="}, ccWith(func(c *CacheControl) { c.MaxAge = 0 })},
		{"inner space max-age", []string{"max-age=36 00"}, ccWith(func(c *CacheControl) { c.MaxAge = 0 })},
		// §4.2.1: first occurrence wins, across field lines too.
		{"duplicate", []string{"max-age=10", "max-age=20"}, ccWith(func(c *CacheControl) { c.MaxAge = 10 * s })},
		{"duplicate bad first", []string{"max-age=x, max-age=20"}, ccWith(func(c *CacheControl) { c.MaxAge = 0 })},
		// §1.2.2: delta-seconds overflow saturates at 2^31.
		{"overflow", []string{"max-age=99999999999999999999999"}, ccWith(func(c *CacheControl) { c.MaxAge = MaxDelta })},
		{"2^31", []string{"max-age=2147483648"}, ccWith(func(c *CacheControl) { c.MaxAge = MaxDelta })},
		{"2^31-1", []string{"max-age=2147483647"}, ccWith(func(c *CacheControl) { c.MaxAge = 2147483647 * s })},
		// RFC 5861: bad stale windows are ignored (not serving stale is safe).
		{"swr sie", []string{"stale-while-revalidate=30, stale-if-error=600"}, ccWith(func(c *CacheControl) {
			c.StaleWhileRevalidate = 30 * s
			c.StaleIfError = 600 * s
		})},
		{"bad swr", []string{"stale-while-revalidate=x, stale-if-error"}, ccWith(nil)},
		// §5.2.1.2: bare max-stale accepts any staleness.
		{"max-stale bare", []string{"max-stale"}, ccWith(func(c *CacheControl) { c.MaxStale = Unlimited })},
		{"max-stale n", []string{"max-stale=5, min-fresh=3"}, ccWith(func(c *CacheControl) { c.MaxStale = 5 * s; c.MinFresh = 3 * s })},
		{"max-stale bad", []string{"max-stale=x, min-fresh=y"}, ccWith(nil)},
		{"booleans", []string{"no-store, no-cache, private, public, must-revalidate, proxy-revalidate, no-transform, immutable, only-if-cached, must-understand"},
			ccWith(func(c *CacheControl) {
				c.NoStore, c.NoCache, c.Private, c.Public = true, true, true, true
				c.MustRevalidate, c.ProxyRevalidate, c.NoTransform = true, true, true
				c.Immutable, c.OnlyIfCached, c.MustUnderstand = true, true, true
			})},
		// §5.2.2.4 / §5.2.2.7: qualified forms list field names, the
		// unqualified flag stays false.
		{"qualified no-cache", []string{`no-cache="Set-Cookie, x-foo", max-age=5`}, ccWith(func(c *CacheControl) {
			c.NoCacheFields = []string{"Set-Cookie", "X-Foo"}
			c.MaxAge = 5 * s
		})},
		{"qualified private token", []string{`private=x-secret`}, ccWith(func(c *CacheControl) { c.PrivateFields = []string{"X-Secret"} })},
		{"qualified both", []string{`no-cache="a"`, `no-cache="b", private`}, ccWith(func(c *CacheControl) {
			c.NoCacheFields = []string{"A", "B"}
			c.Private = true
		})},
		{"empty qualified", []string{`no-cache=""`}, ccWith(func(c *CacheControl) { c.NoCache = true })},
		// A comma inside a quoted string does not split directives.
		{"comma in quotes", []string{`foo="a,max-age=5", max-age=7`}, ccWith(func(c *CacheControl) { c.MaxAge = 7 * s })},
		{"escaped quote", []string{`private="x\"y, a", max-age=7`}, ccWith(func(c *CacheControl) {
			c.PrivateFields = []string{"A"}
			c.MaxAge = 7 * s
		})},
		{"unterminated quote", []string{`max-age="5, public`}, ccWith(func(c *CacheControl) { c.MaxAge = 0 })},
		{"junk after quote", []string{`max-age="5"x, public`}, ccWith(func(c *CacheControl) { c.MaxAge = 5 * s; c.Public = true })},
		// Unknown directives and extensions are ignored (§5.2.3).
		{"extensions", []string{"community=\"UCI\", foo, bar=1, max-age=3"}, ccWith(func(c *CacheControl) { c.MaxAge = 3 * s })},
		{"no name", []string{"=5, public"}, ccWith(func(c *CacheControl) { c.Public = true })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseCacheControl(tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseCacheControl(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{
		"max-age=60", `no-cache="Set-Cookie", private=x`, `max-age="5, public`,
		"s-maxage=99999999999999999, stale-while-revalidate=1", `a="\"`, "max-stale",
	} {
		f.Add(s, "public")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		cc := ParseCacheControl([]string{a, b})
		for _, d := range []time.Duration{cc.MaxAge, cc.SMaxAge, cc.StaleWhileRevalidate, cc.StaleIfError, cc.MinFresh} {
			if d != Absent && (d < 0 || d > MaxDelta) {
				t.Fatalf("duration %v out of range for %q %q", d, a, b)
			}
		}
		if cc.MaxStale != Absent && cc.MaxStale != Unlimited && (cc.MaxStale < 0 || cc.MaxStale > MaxDelta) {
			t.Fatalf("max-stale %v out of range", cc.MaxStale)
		}
		for _, f := range append(cc.NoCacheFields, cc.PrivateFields...) {
			if !validToken(f) {
				t.Fatalf("field name %q is not a token", f)
			}
		}
		// Parsing the two lines as one line joined by a comma is the same
		// (RFC 9110 §5.3) unless a quote in the first could swallow the
		// comma.
		if !strings.Contains(a, `"`) {
			if got, want := ParseCacheControl([]string{a + "," + b}), cc; !reflect.DeepEqual(got, want) {
				t.Fatalf("joined lines differ:\n%+v\n%+v", got, want)
			}
		}
	})
}
