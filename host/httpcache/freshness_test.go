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
		// §4.1: Vary: * never matches.
		{"vary star", "GET", 200, none, http.Header{"Vary": {"Accept, *"}}, false, ReasonVary},
		{"vary", "GET", 200, none, http.Header{"Vary": {"Accept"}}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, reason := Storable(tt.method, tt.status, tt.req, tt.resp, tt.allowCookies)
			if ok != (tt.want == "") || reason != tt.want {
				t.Errorf("Storable = %v, %q; want %q", ok, reason, tt.want)
			}
		})
	}
}

func TestComputeLifetime(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	date := now.Format(http.TimeFormat)
	inMin := now.Add(10 * time.Minute).Format(http.TimeFormat)
	const (
		defTTL = 2 * time.Minute
		grace  = time.Hour
	)
	tests := []struct {
		name string
		h    http.Header
		want Lifetime
	}{
		// No freshness information: edgehost's default_ttl is its heuristic
		// (§4.2.2), with the configured grace.
		{"default", http.Header{}, Lifetime{TTL: defTTL, Grace: grace}},
		// §5.2.2.1
		{"max-age", http.Header{"Cache-Control": {"max-age=30"}}, Lifetime{TTL: 30 * time.Second, Grace: grace, Explicit: true}},
		{"max-age=0", http.Header{"Cache-Control": {"max-age=0"}}, Lifetime{TTL: 0, Grace: grace, Explicit: true}},
		// §5.2.2.10: s-maxage wins over max-age and Expires for a shared
		// cache and implies proxy-revalidate: no configured grace.
		{"s-maxage", http.Header{"Cache-Control": {"max-age=30, s-maxage=90"}, "Expires": {inMin}}, Lifetime{TTL: 90 * time.Second, Explicit: true}},
		// ... but an explicit stale-while-revalidate still applies.
		{"s-maxage swr", http.Header{"Cache-Control": {"s-maxage=90, stale-while-revalidate=30"}}, Lifetime{TTL: 90 * time.Second, Grace: 30 * time.Second, Explicit: true}},
		// §5.3: max-age wins over Expires.
		{"max-age over expires", http.Header{"Cache-Control": {"max-age=30"}, "Expires": {inMin}}, Lifetime{TTL: 30 * time.Second, Grace: grace, Explicit: true}},
		// §4.2.1: Expires - Date.
		{"expires", http.Header{"Expires": {inMin}, "Date": {date}}, Lifetime{TTL: 10 * time.Minute, Grace: grace, Explicit: true}},
		// Expires relative to Date, not to our clock: a Date 5 minutes
		// behind still gives 10 minutes.
		{"expires skewed date", http.Header{"Expires": {now.Add(5 * time.Minute).Format(http.TimeFormat)}, "Date": {now.Add(-5 * time.Minute).Format(http.TimeFormat)}},
			Lifetime{TTL: 10 * time.Minute, Grace: grace, Explicit: true}},
		{"expires no date", http.Header{"Expires": {inMin}}, Lifetime{TTL: 10 * time.Minute, Grace: grace, Explicit: true}},
		{"expires past", http.Header{"Expires": {now.Add(-time.Minute).Format(http.TimeFormat)}, "Date": {date}}, Lifetime{TTL: 0, Grace: grace, Explicit: true}},
		// §5.3: an invalid Expires ("0") is in the past.
		{"expires 0", http.Header{"Expires": {"0"}}, Lifetime{TTL: 0, Grace: grace, Explicit: true}},
		// RFC 9110 §5.6.7: the obsolete date formats are accepted.
		{"expires rfc850", http.Header{"Expires": {"Sunday, 22-Nov-26 10:10:00 GMT"}, "Date": {date}}, Lifetime{TTL: 10 * time.Minute, Grace: grace, Explicit: true}},
		// RFC 5861: grace = max(config, stale-while-revalidate).
		{"swr longer", http.Header{"Cache-Control": {"max-age=10, stale-while-revalidate=7200, stale-if-error=86400"}},
			Lifetime{TTL: 10 * time.Second, Grace: 2 * time.Hour, StaleIfError: 24 * time.Hour, Explicit: true}},
		{"swr shorter", http.Header{"Cache-Control": {"max-age=10, stale-while-revalidate=5"}}, Lifetime{TTL: 10 * time.Second, Grace: grace, Explicit: true}},
		// §4.2.4, §5.2.2.2, §5.2.2.8: no stale at all.
		{"must-revalidate", http.Header{"Cache-Control": {"max-age=10, must-revalidate, stale-while-revalidate=60, stale-if-error=60"}},
			Lifetime{TTL: 10 * time.Second, Explicit: true, MustRevalidate: true}},
		{"proxy-revalidate", http.Header{"Cache-Control": {"max-age=10, proxy-revalidate"}}, Lifetime{TTL: 10 * time.Second, Explicit: true, MustRevalidate: true}},
		// §5.2.2.4: no-cache → validate before every use.
		{"no-cache", http.Header{"Cache-Control": {"no-cache, max-age=60"}}, Lifetime{TTL: 0, Explicit: true, MustRevalidate: true}},
		{"no-cache default", http.Header{"Cache-Control": {"no-cache"}}, Lifetime{TTL: 0, MustRevalidate: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ComputeLifetime(tt.h, ParseCacheControl(tt.h["Cache-Control"]), defTTL, grace, now)
			if got != tt.want {
				t.Errorf("ComputeLifetime\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestLifetimeFreshness(t *testing.T) {
	l := Lifetime{TTL: 10 * time.Second, Grace: 20 * time.Second, StaleIfError: 60 * time.Second}
	mr := Lifetime{TTL: 10 * time.Second, MustRevalidate: true}
	s := time.Second
	tests := []struct {
		l       Lifetime
		age     time.Duration
		want    Freshness
		onError bool
	}{
		{l, 0, Fresh, true},
		{l, 9 * s, Fresh, true},
		{l, 10 * s, Grace, true}, // §4.2: fresh only while age < lifetime
		{l, 29 * s, Grace, true},
		{l, 30 * s, Stale, true}, // past grace, within stale-if-error
		{l, 69 * s, Stale, true},
		{l, 70 * s, Stale, false},
		{mr, 9 * s, Fresh, true},
		{mr, 10 * s, Stale, false},
	}
	for _, tt := range tests {
		if got := tt.l.Freshness(tt.age); got != tt.want {
			t.Errorf("%+v.Freshness(%v) = %v, want %v", tt.l, tt.age, got, tt.want)
		}
		if got := tt.l.UsableOnError(tt.age); got != tt.onError {
			t.Errorf("%+v.UsableOnError(%v) = %v, want %v", tt.l, tt.age, got, tt.onError)
		}
	}
}

func TestLifetimeDecide(t *testing.T) {
	l := Lifetime{TTL: 60 * time.Second, Grace: 30 * time.Second}
	mr := Lifetime{TTL: 60 * time.Second, MustRevalidate: true}
	s := time.Second
	req := func(v string) *CacheControl { c := ParseCacheControl([]string{v}); return &c }
	tests := []struct {
		l    Lifetime
		req  *CacheControl
		age  time.Duration
		want Freshness
	}{
		{l, nil, 10 * s, Fresh},
		{l, nil, 70 * s, Grace},
		{l, req(""), 10 * s, Fresh},
		// §5.2.1.4
		{l, req("no-cache"), 10 * s, Stale},
		// §5.2.1.1: max-age caps the age the client accepts.
		{l, req("max-age=5"), 10 * s, Stale},
		{l, req("max-age=10"), 10 * s, Fresh},
		// §5.2.1.3: min-fresh asks for remaining freshness.
		{l, req("min-fresh=55"), 10 * s, Stale},
		{l, req("min-fresh=50"), 10 * s, Fresh},
		// §5.2.1.2: max-stale accepts staleness ...
		{l, req("max-stale=100"), 150 * s, Fresh},
		{l, req("max-stale=10"), 150 * s, Stale},
		{l, req("max-stale"), 1000 * s, Fresh},
		// ... never past must-revalidate (§5.2.2.2).
		{mr, req("max-stale"), 70 * s, Stale},
	}
	for _, tt := range tests {
		if got := tt.l.Decide(tt.req, tt.age); got != tt.want {
			t.Errorf("%+v.Decide(%+v, %v) = %v, want %v", tt.l, tt.req, tt.age, got, tt.want)
		}
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
