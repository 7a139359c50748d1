package httpcache

import (
	"net/http"
	"testing"
	"time"
)

func TestStorable(t *testing.T) {
	none := http.Header{}
	tests := []struct {
		name         string
		method       string
		status       int
		req, resp    http.Header
		allowCookies bool
		want         string // "" = storable
	}{
		{"plain 200", "GET", 200, none, none, false, ""},
		{"HEAD", "HEAD", 200, none, none, false, ""},
		// §3: only methods the cache understands (edgehost: GET, HEAD).
		{"POST", "POST", 200, none, http.Header{"Cache-Control": {"max-age=60"}}, false, ReasonMethod},
		{"PUT", "PUT", 200, none, none, false, ReasonMethod},
		// §3: final status; 206 and 304 are not stored as such.
		{"100", "GET", 100, none, none, false, ReasonStatus},
		{"206", "GET", 206, none, http.Header{"Cache-Control": {"max-age=60"}}, false, ReasonStatus},
		{"304", "GET", 304, none, http.Header{"Cache-Control": {"max-age=60"}}, false, ReasonStatus},
		{"600", "GET", 600, none, http.Header{"Cache-Control": {"max-age=60"}}, false, ReasonStatus},
		// §4.2.2 + RFC 9110 §15.1: heuristically cacheable statuses.
		{"404 heuristic", "GET", 404, none, none, false, ""},
		{"301 heuristic", "GET", 301, none, none, false, ""},
		{"410 heuristic", "GET", 410, none, none, false, ""},
		{"302 no freshness", "GET", 302, none, none, false, ReasonStatus},
		{"500 no freshness", "GET", 500, none, none, false, ReasonStatus},
		// §3: explicit freshness makes other statuses storable.
		{"302 max-age", "GET", 302, none, http.Header{"Cache-Control": {"max-age=60"}}, false, ""},
		{"500 s-maxage", "GET", 500, none, http.Header{"Cache-Control": {"s-maxage=5"}}, false, ""},
		{"307 expires", "GET", 307, none, http.Header{"Expires": {"Thu, 01 Jan 2099 00:00:00 GMT"}}, false, ""},
		{"303 public", "GET", 303, none, http.Header{"Cache-Control": {"public"}}, false, ""},
		// §5.2.2.5, §5.2.1.5: no-store in response or request.
		{"no-store resp", "GET", 200, none, http.Header{"Cache-Control": {"max-age=60, no-store"}}, false, ReasonNoStore},
		{"no-store req", "GET", 200, http.Header{"Cache-Control": {"no-store"}}, none, false, ReasonNoStore},
		// §5.2.2.3: must-understand with a known status overrides no-store.
		{"must-understand known", "GET", 200, none, http.Header{"Cache-Control": {"no-store, must-understand, max-age=5"}}, false, ""},
		{"must-understand unknown", "GET", 299, none, http.Header{"Cache-Control": {"no-store, must-understand, max-age=5"}}, false, ReasonMustUnderstand},
		// §5.2.2.7: unqualified private; the qualified form is storable.
		{"private", "GET", 200, none, http.Header{"Cache-Control": {"private, max-age=60"}}, false, ReasonPrivate},
		{"private qualified", "GET", 200, none, http.Header{"Cache-Control": {`private="X-User", max-age=60`}}, false, ""},
		// §5.2.2.4: no-cache responses may be stored (validated on use).
		{"no-cache", "GET", 200, none, http.Header{"Cache-Control": {"no-cache"}}, false, ""},
		// §3.5: Authorization needs public, must-revalidate or s-maxage.
		{"auth", "GET", 200, http.Header{"Authorization": {"Bearer x"}}, http.Header{"Cache-Control": {"max-age=60"}}, false, ReasonAuthorization},
		{"auth public", "GET", 200, http.Header{"Authorization": {"Bearer x"}}, http.Header{"Cache-Control": {"public"}}, false, ""},
		{"auth must-revalidate", "GET", 200, http.Header{"Authorization": {"Bearer x"}}, http.Header{"Cache-Control": {"must-revalidate, max-age=5"}}, false, ""},
		{"auth s-maxage", "GET", 200, http.Header{"Authorization": {"Bearer x"}}, http.Header{"Cache-Control": {"s-maxage=5"}}, false, ""},
		// edgehost: Set-Cookie responses are not shared unless configured.
		{"set-cookie", "GET", 200, none, http.Header{"Set-Cookie": {"sid=1"}}, false, ReasonSetCookie},
		{"set-cookie allowed", "GET", 200, none, http.Header{"Set-Cookie": {"sid=1"}}, true, ""},
		// §5.2.2.4, §5.2.2.7: a qualified directive naming Set-Cookie keeps
		// the cookie out of storage, so the rest may be shared.
		{"set-cookie no-cache qualified", "GET", 200, none, http.Header{"Set-Cookie": {"sid=1"}, "Cache-Control": {`no-cache="set-cookie", max-age=60`}}, false, ""},
		{"set-cookie private qualified", "GET", 200, none, http.Header{"Set-Cookie": {"sid=1"}, "Cache-Control": {`private="Set-Cookie"`}}, false, ""},
		{"set-cookie other qualified", "GET", 200, none, http.Header{"Set-Cookie": {"sid=1"}, "Cache-Control": {`private="X-Other"`}}, false, ReasonSetCookie},
		// §4.1: Vary: * never matches.
		{"vary star", "GET", 200, none, http.Header{"Vary": {"Accept, *"}}, false, ReasonVary},
		{"vary", "GET", 200, none, http.Header{"Vary": {"Accept"}}, false, ""},
		// RFC 9213 §2.1 (with CDN-Cache-Control targeted below): the
		// targeted field replaces Cache-Control and Expires.
		{"cdn no-store", "GET", 200, none, http.Header{"Cdn-Cache-Control": {"no-store"}, "Cache-Control": {"max-age=60"}}, false, ReasonNoStore},
		{"cdn private", "GET", 200, none, http.Header{"Cdn-Cache-Control": {"private"}, "Cache-Control": {"public, max-age=60"}}, false, ReasonPrivate},
		{"cdn overrides private", "GET", 200, none, http.Header{"Cdn-Cache-Control": {"max-age=60"}, "Cache-Control": {"private"}}, false, ""},
		{"cdn overrides no-store", "GET", 302, none, http.Header{"Cdn-Cache-Control": {"max-age=60"}, "Cache-Control": {"no-store"}}, false, ""},
		{"cdn ignores expires", "GET", 302, none, http.Header{"Cdn-Cache-Control": {"must-revalidate"}, "Expires": {"Thu, 01 Jan 2099 00:00:00 GMT"}}, false, ReasonStatus},
		{"cdn invalid ignored", "GET", 200, none, http.Header{"Cdn-Cache-Control": {"Max-Age=60"}, "Cache-Control": {"no-store"}}, false, ReasonNoStore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, reason := Policy{AllowCookies: tt.allowCookies}.Storable(tt.method, tt.status, tt.req, tt.resp, ResponseDirectives(tt.resp, []string{CDNCacheControl}))
			if ok != (tt.want == "") || reason != tt.want {
				t.Errorf("Storable = %v, %q; want %q", ok, reason, tt.want)
			}
		})
	}
}

func TestLifetime(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	date := now.Format(http.TimeFormat)
	at := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	inMin := at(10 * time.Minute)
	const grace = time.Hour
	rfc := Policy{HeuristicMax: DefaultHeuristicMax, Grace: grace, Targeted: []string{"Edgehost-Cache-Control", CDNCacheControl}}
	withTTL := rfc
	withTTL.DefaultTTL = 2 * time.Minute
	noHeuristic := rfc
	noHeuristic.HeuristicMax = 0
	s := time.Second
	tests := []struct {
		name   string
		p      Policy
		status int
		h      http.Header
		want   Lifetime
	}{
		// §4.2.1: explicit freshness, with the configured grace.
		{"max-age", rfc, 200, http.Header{"Cache-Control": {"max-age=30"}}, Lifetime{TTL: 30 * s, Grace: grace, Source: Explicit}},
		{"max-age=0", rfc, 200, http.Header{"Cache-Control": {"max-age=0"}}, Lifetime{TTL: 0, Grace: grace, Source: Explicit}},
		// §1.2.2, §4.2.1: a malformed max-age is invalid: stale, and it
		// still counts as explicit (no heuristic, no default_ttl).
		{"max-age decimal", withTTL, 200, http.Header{"Cache-Control": {"max-age=3600.0"}, "Last-Modified": {at(-100 * time.Hour)}}, Lifetime{TTL: 0, Grace: grace, Source: Explicit}},
		// §5.2.2.10: s-maxage wins over max-age and Expires for a shared
		// cache and implies proxy-revalidate: no configured grace.
		{"s-maxage", rfc, 200, http.Header{"Cache-Control": {"max-age=30, s-maxage=90"}, "Expires": {inMin}}, Lifetime{TTL: 90 * s, Source: Explicit}},
		// ... but an explicit stale-while-revalidate still applies.
		{"s-maxage swr", rfc, 200, http.Header{"Cache-Control": {"s-maxage=90, stale-while-revalidate=30"}}, Lifetime{TTL: 90 * s, Grace: 30 * s, Source: Explicit}},
		// §5.3: max-age wins over Expires.
		{"max-age over expires", rfc, 200, http.Header{"Cache-Control": {"max-age=30"}, "Expires": {inMin}}, Lifetime{TTL: 30 * s, Grace: grace, Source: Explicit}},
		// §4.2.1: Expires - Date.
		{"expires", rfc, 200, http.Header{"Expires": {inMin}, "Date": {date}}, Lifetime{TTL: 10 * time.Minute, Grace: grace, Source: Explicit}},
		// Expires relative to Date, not to our clock: a Date 5 minutes
		// behind still gives 10 minutes.
		{"expires skewed date", rfc, 200, http.Header{"Expires": {at(5 * time.Minute)}, "Date": {at(-5 * time.Minute)}}, Lifetime{TTL: 10 * time.Minute, Grace: grace, Source: Explicit}},
		{"expires no date", rfc, 200, http.Header{"Expires": {inMin}}, Lifetime{TTL: 10 * time.Minute, Grace: grace, Source: Explicit}},
		{"expires bad date", rfc, 200, http.Header{"Expires": {inMin}, "Date": {"now"}}, Lifetime{TTL: 10 * time.Minute, Grace: grace, Source: Explicit}},
		{"expires past", rfc, 200, http.Header{"Expires": {at(-time.Minute)}, "Date": {date}}, Lifetime{TTL: 0, Grace: grace, Source: Explicit}},
		// RFC 9110 §5.6.7: the obsolete date formats are accepted.
		{"expires rfc850", rfc, 200, http.Header{"Expires": {"Sunday, 22-Nov-26 10:10:00 GMT"}, "Date": {date}}, Lifetime{TTL: 10 * time.Minute, Grace: grace, Source: Explicit}},
		{"expires asctime", rfc, 200, http.Header{"Expires": {"Sun Nov 22 10:10:00 2026"}, "Date": {date}}, Lifetime{TTL: 10 * time.Minute, Grace: grace, Source: Explicit}},
		// §5.3: an invalid Expires ("0", or a date the grammar refuses) is
		// already expired; it is explicit, so neither default_ttl nor a
		// heuristic replaces it.
		{"expires 0", withTTL, 200, http.Header{"Expires": {"0"}}, Lifetime{TTL: 0, Grace: grace, Source: Explicit}},
		{"expires empty", withTTL, 200, http.Header{"Expires": {""}}, Lifetime{TTL: 0, Grace: grace, Source: Explicit}},
		{"expires double space", rfc, 200, http.Header{"Expires": {"Sun, 22 Nov 2026  10:10:00 GMT"}, "Date": {date}}, Lifetime{TTL: 0, Grace: grace, Source: Explicit}},
		{"expires one-digit hour", rfc, 200, http.Header{"Expires": {"Sun, 22 Nov 2026 9:10:00 GMT"}, "Date": {"Sun, 22 Nov 2026 09:00:00 GMT"}}, Lifetime{TTL: 0, Grace: grace, Source: Explicit}},
		// §4.2.1: repeated Expires lines conflict: stale, not the first.
		{"expires repeated", rfc, 200, http.Header{"Expires": {inMin, inMin}, "Date": {date}}, Lifetime{TTL: 0, Grace: grace, Source: Explicit}},
		{"expires repeated differ", rfc, 200, http.Header{"Expires": {inMin, at(time.Hour)}, "Date": {date}}, Lifetime{TTL: 0, Grace: grace, Source: Explicit}},
		// §4.2.2: no explicit freshness and no Last-Modified: none at all,
		// and no configured grace either (nothing allowed reuse).
		{"nothing", rfc, 200, http.Header{}, Lifetime{}},
		{"etag only", rfc, 200, http.Header{"Etag": {`"x"`}, "Date": {date}}, Lifetime{}},
		// §4.2.2: 10% of the time since Last-Modified ...
		{"heuristic", rfc, 200, http.Header{"Last-Modified": {at(-10 * time.Hour)}, "Date": {date}}, Lifetime{TTL: time.Hour, Grace: grace, Source: Heuristic}},
		{"heuristic no date", rfc, 200, http.Header{"Last-Modified": {at(-100 * s)}}, Lifetime{TTL: 10 * s, Grace: grace, Source: Heuristic}},
		{"heuristic 404", rfc, 404, http.Header{"Last-Modified": {at(-100 * s)}}, Lifetime{TTL: 10 * s, Grace: grace, Source: Heuristic}},
		// ... capped ...
		{"heuristic cap", rfc, 200, http.Header{"Last-Modified": {at(-1000 * time.Hour)}, "Date": {date}}, Lifetime{TTL: DefaultHeuristicMax, Grace: grace, Source: Heuristic}},
		{"heuristic off", noHeuristic, 200, http.Header{"Last-Modified": {at(-10 * time.Hour)}}, Lifetime{}},
		// ... only for heuristically cacheable statuses (or public) ...
		{"heuristic 302", rfc, 302, http.Header{"Last-Modified": {at(-10 * time.Hour)}}, Lifetime{}},
		{"heuristic 302 public", rfc, 302, http.Header{"Last-Modified": {at(-10 * time.Hour)}, "Cache-Control": {"public"}}, Lifetime{TTL: time.Hour, Grace: grace, Source: Heuristic}},
		// ... and a Last-Modified that is valid and in the past.
		{"heuristic bad lm", rfc, 200, http.Header{"Last-Modified": {"Sun, 22 Nov 2026 9:00:00 GMT"}}, Lifetime{}},
		{"heuristic future lm", rfc, 200, http.Header{"Last-Modified": {at(time.Hour)}}, Lifetime{}},
		{"heuristic two lm", rfc, 200, http.Header{"Last-Modified": {at(-time.Hour), at(-2 * time.Hour)}}, Lifetime{}},
		// A stale window the origin gives explicitly still applies.
		{"nothing swr", rfc, 200, http.Header{"Cache-Control": {"stale-if-error=60"}}, Lifetime{StaleIfError: 60 * s}},
		// default_ttl: the operator's explicit choice replaces the
		// heuristic, with or without Last-Modified.
		{"default_ttl", withTTL, 200, http.Header{}, Lifetime{TTL: 2 * time.Minute, Grace: grace, Source: Configured}},
		{"default_ttl over heuristic", withTTL, 200, http.Header{"Last-Modified": {at(-10 * time.Hour)}}, Lifetime{TTL: 2 * time.Minute, Grace: grace, Source: Configured}},
		{"default_ttl not for 302", withTTL, 302, http.Header{}, Lifetime{}},
		// RFC 5861: grace = max(config, stale-while-revalidate).
		{"swr longer", rfc, 200, http.Header{"Cache-Control": {"max-age=10, stale-while-revalidate=7200, stale-if-error=86400"}},
			Lifetime{TTL: 10 * s, Grace: 2 * time.Hour, StaleIfError: 24 * time.Hour, Source: Explicit}},
		{"swr shorter", rfc, 200, http.Header{"Cache-Control": {"max-age=10, stale-while-revalidate=5"}}, Lifetime{TTL: 10 * s, Grace: grace, Source: Explicit}},
		// §4.2.4, §5.2.2.2, §5.2.2.8: no stale at all.
		{"must-revalidate", rfc, 200, http.Header{"Cache-Control": {"max-age=10, must-revalidate, stale-while-revalidate=60, stale-if-error=60"}},
			Lifetime{TTL: 10 * s, Source: Explicit, MustRevalidate: true}},
		{"proxy-revalidate", rfc, 200, http.Header{"Cache-Control": {"max-age=10, proxy-revalidate"}}, Lifetime{TTL: 10 * s, Source: Explicit, MustRevalidate: true}},
		// §5.2.2.4: no-cache → validate before every use.
		{"no-cache", rfc, 200, http.Header{"Cache-Control": {"no-cache, max-age=60"}}, Lifetime{TTL: 0, Source: Explicit, MustRevalidate: true}},
		{"no-cache default", withTTL, 200, http.Header{"Cache-Control": {"no-cache"}}, Lifetime{TTL: 0, Source: Configured, MustRevalidate: true}},
		// RFC 9213 §2.1: the first targeted field present decides;
		// Cache-Control and Expires are ignored.
		{"cdn max-age", rfc, 200, http.Header{"Cdn-Cache-Control": {"max-age=600"}, "Cache-Control": {"max-age=10"}}, Lifetime{TTL: 600 * s, Grace: grace, Source: Explicit}},
		{"cdn over expires", rfc, 200, http.Header{"Cdn-Cache-Control": {"stale-if-error=60"}, "Expires": {inMin}}, Lifetime{StaleIfError: 60 * s}},
		{"cdn heuristic", rfc, 200, http.Header{"Cdn-Cache-Control": {"public"}, "Expires": {inMin}, "Last-Modified": {at(-100 * s)}}, Lifetime{TTL: 10 * s, Grace: grace, Source: Heuristic}},
		{"cdn s-maxage", rfc, 200, http.Header{"Cdn-Cache-Control": {"s-maxage=60, max-age=5"}}, Lifetime{TTL: 60 * s, Source: Explicit}},
		{"cdn no-cache", rfc, 200, http.Header{"Cdn-Cache-Control": {"no-cache, max-age=60"}, "Cache-Control": {"max-age=60"}}, Lifetime{Source: Explicit, MustRevalidate: true}},
		{"cdn must-revalidate", rfc, 200, http.Header{"Cdn-Cache-Control": {"max-age=60, must-revalidate"}}, Lifetime{TTL: 60 * s, Source: Explicit, MustRevalidate: true}},
		{"cdn swr", rfc, 200, http.Header{"Cdn-Cache-Control": {"max-age=60, stale-while-revalidate=7200"}, "Cache-Control": {"max-age=1, must-revalidate"}}, Lifetime{TTL: 60 * s, Grace: 2 * time.Hour, Source: Explicit}},
		{"own field first", rfc, 200, http.Header{"Edgehost-Cache-Control": {"max-age=5"}, "Cdn-Cache-Control": {"max-age=600"}}, Lifetime{TTL: 5 * s, Grace: grace, Source: Explicit}},
		// An invalid targeted field is ignored; the next one decides.
		{"own field invalid", rfc, 200, http.Header{"Edgehost-Cache-Control": {"max-age=5,"}, "Cdn-Cache-Control": {"max-age=600"}}, Lifetime{TTL: 600 * s, Grace: grace, Source: Explicit}},
		{"cdn invalid", rfc, 200, http.Header{"Cdn-Cache-Control": {"max-age=600;"}, "Cache-Control": {"max-age=10"}}, Lifetime{TTL: 10 * s, Grace: grace, Source: Explicit}},
		{"cdn empty", rfc, 200, http.Header{"Cdn-Cache-Control": {""}, "Cache-Control": {"max-age=10"}}, Lifetime{TTL: 10 * s, Grace: grace, Source: Explicit}},
		{"cdn not targeted", Policy{Grace: grace}, 200, http.Header{"Cdn-Cache-Control": {"max-age=600"}, "Cache-Control": {"max-age=10"}}, Lifetime{TTL: 10 * s, Grace: grace, Source: Explicit}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.p.Lifetime(tt.status, tt.h, ResponseDirectives(tt.h, tt.p.Targeted), now)
			if got != tt.want {
				t.Errorf("Lifetime\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestInitialAge(t *testing.T) {
	resp := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	s := time.Second
	tests := []struct {
		name     string
		h        http.Header
		reqDelay time.Duration // request sent this long before responseTime
		want     time.Duration
	}{
		{"nothing", http.Header{}, 0, 0},
		{"delay only", http.Header{}, 2 * s, 2 * s},
		// age_value + response_delay
		{"age", http.Header{"Age": {"100"}}, 2 * s, 102 * s},
		// apparent_age = response_time - date_value
		{"date behind", http.Header{"Date": {resp.Add(-50 * s).Format(http.TimeFormat)}}, 1 * s, 50 * s},
		{"max of both", http.Header{"Date": {resp.Add(-50 * s).Format(http.TimeFormat)}, "Age": {"10"}}, 1 * s, 50 * s},
		{"age wins", http.Header{"Date": {resp.Add(-5 * s).Format(http.TimeFormat)}, "Age": {"10"}}, 1 * s, 11 * s},
		// A Date ahead of us (origin clock skew) gives apparent_age 0.
		{"date ahead", http.Header{"Date": {resp.Add(time.Hour).Format(http.TimeFormat)}}, 0, 0},
		{"bad age", http.Header{"Age": {"-3"}}, 0, 0},
		{"age list", http.Header{"Age": {"5, 6"}}, 0, 5 * s},
		{"bad date", http.Header{"Date": {"yesterday"}}, 0, 0},
		{"age overflow", http.Header{"Age": {"999999999999"}}, 0, MaxDelta},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := InitialAge(tt.h, resp.Add(-tt.reqDelay), resp); got != tt.want {
				t.Errorf("InitialAge = %v, want %v", got, tt.want)
			}
		})
	}
	if got, want := CurrentAge(10*s, resp, resp.Add(5*s)), 15*s; got != want {
		t.Errorf("CurrentAge = %v, want %v", got, want)
	}
	if got, want := CurrentAge(10*s, resp, resp.Add(-5*s)), 10*s; got != want {
		t.Errorf("CurrentAge with clock going back = %v, want %v", got, want)
	}
	if got, want := string(AppendAge(nil, 1500*time.Millisecond)), "1"; got != want {
		t.Errorf("AppendAge = %q, want %q", got, want)
	}
}
