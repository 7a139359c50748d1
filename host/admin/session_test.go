package admin

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/observe"
)

func TestStatusPageLogin(t *testing.T) {
	l := NewLive(LiveOptions{Metrics: &observe.Metrics{}})
	h := liveHandler(t, l)
	now := time.Now()
	good := &http.Cookie{Name: cookieName, Value: sessionValue("tok", now.Add(time.Hour))}
	stale := &http.Cookie{Name: cookieName, Value: sessionValue("old token", now.Add(time.Hour))}
	expired := &http.Cookie{Name: cookieName, Value: sessionValue("tok", now.Add(-time.Second))}
	forged := &http.Cookie{Name: cookieName, Value: "7fffffff" + good.Value[strings.Index(good.Value, "."):]}
	type req struct {
		method, target, accept, bearer, form string
		cookie                               *http.Cookie
	}
	do := func(r req) *httptest.ResponseRecorder {
		var body io.Reader
		if r.form != "" {
			body = strings.NewReader(r.form)
		}
		hr := httptest.NewRequest(r.method, r.target, body)
		if r.form != "" {
			hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if r.accept != "" {
			hr.Header.Set("Accept", r.accept)
		}
		if r.bearer != "" {
			hr.Header.Set("Authorization", "Bearer "+r.bearer)
		}
		if r.cookie != nil {
			hr.AddCookie(r.cookie)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, hr)
		return w
	}
	for _, tc := range []struct {
		name string
		req  req
		code int
		body string // in the answer
	}{
		{"page without anything: login form", req{method: "GET", target: "/", accept: "text/html"}, 401, `action="/login"`},
		{"page for a tool: JSON error", req{method: "GET", target: "/"}, 401, `"error"`},
		{"wrong token in the URL", req{method: "GET", target: "/?token=nope", accept: "text/html"}, 401, "Wrong token"},
		{"wrong token in the form", req{method: "POST", target: "/login", form: "token=nope"}, 401, "Wrong token"},
		{"login form too big", req{method: "POST", target: "/login", form: "token=" + strings.Repeat("a", maxLoginBody)}, 400, "login form"},
		{"page with the cookie", req{method: "GET", target: "/", cookie: good}, 200, `src="/ui/status.js"`},
		{"page with the header", req{method: "GET", target: "/", bearer: "tok"}, 200, `id="v-rps"`},
		{"data with the cookie", req{method: "GET", target: "/status.json", cookie: good}, 200, `"points"`},
		{"other reads with the cookie", req{method: "GET", target: "/status", cookie: good}, 200, `"bans"`},
		{"a cookie of another token", req{method: "GET", target: "/status.json", cookie: stale}, 401, "missing or wrong token"},
		{"an expired cookie", req{method: "GET", target: "/status.json", cookie: expired}, 401, "missing or wrong token"},
		{"a cookie whose expiry was moved", req{method: "GET", target: "/status.json", cookie: forged}, 401, "missing or wrong token"},
		{"writes never ride on the cookie", req{method: "POST", target: "/purge-tag?tag=x", cookie: good}, 401, "missing or wrong token"},
		{"the page's script needs no token", req{method: "GET", target: "/ui/status.js"}, 200, "/status.json"},
		{"nor its style", req{method: "GET", target: "/ui/status.css"}, 200, "prefers-color-scheme"},
		{"/ui/.. does not open the rest", req{method: "GET", target: "/ui/../status"}, 401, ""},
		{"an unknown path under /ui/", req{method: "GET", target: "/ui/nothing.js"}, 404, ""},
	} {
		w := do(tc.req)
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.body) {
			t.Errorf("%s: %d %.200q, want %d containing %q", tc.name, w.Code, w.Body.String(), tc.code, tc.body)
		}
	}

	// The two ways in set the same cookie and send the browser to /.
	for _, r := range []req{{method: "GET", target: "/?token=tok"}, {method: "POST", target: "/login", form: url.Values{"token": {"tok"}}.Encode()}} {
		w := do(r)
		res := w.Result()
		if w.Code != http.StatusSeeOther || res.Header.Get("Location") != "/" {
			t.Errorf("%s %s: %d to %q, want 303 to /", r.method, r.target, w.Code, res.Header.Get("Location"))
		}
		cs := res.Cookies()
		if len(cs) != 1 || cs[0].Name != cookieName || !validSession("tok", cs[0].Value, time.Now()) || !cs[0].HttpOnly ||
			cs[0].SameSite != http.SameSiteStrictMode || cs[0].MaxAge != cookieMaxAge || cs[0].Path != "/" {
			t.Errorf("%s %s: cookies %+v, want one HttpOnly SameSite=Strict %s for 12h", r.method, r.target, cs, cookieName)
		}
		if strings.Contains(res.Header.Get("Set-Cookie"), "tok;") {
			t.Errorf("the cookie holds the token itself: %s", res.Header.Get("Set-Cookie"))
		}
	}

	// The cookie works for 12 hours on the server's clock, not only for
	// as long as the browser keeps it: a copied cookie stops working too.
	cookie := do(req{method: "GET", target: "/?token=tok"}).Result().Cookies()[0]
	for _, tc := range []struct {
		after time.Duration
		code  int
	}{{cookieMaxAge*time.Second - time.Minute, 200}, {cookieMaxAge*time.Second + time.Second, 401}} {
		sessionNow = func() time.Time { return time.Now().Add(tc.after) }
		if w := do(req{method: "GET", target: "/status.json", cookie: cookie}); w.Code != tc.code {
			t.Errorf("the login's cookie %v later: %d, want %d", tc.after, w.Code, tc.code)
		}
	}
	sessionNow = time.Now

	// The page loads nothing from elsewhere.
	w := do(req{method: "GET", target: "/", bearer: "tok"})
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	for _, ext := range []string{"http://", "https://", "//cdn"} {
		for _, f := range []string{"index.html", "status.js", "status.css"} {
			b, _ := uiFiles.ReadFile("ui/" + f)
			if strings.Contains(string(b), ext) {
				t.Errorf("ui/%s refers to %s: the page must load only its own files", f, ext)
			}
		}
	}
}

func TestStatusPageWithoutToken(t *testing.T) {
	h := Handler(Options{Cache: &fakeCache{}, Metrics: &observe.Metrics{}, TxLog: observe.NewTxLog(4),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Live: NewLive(LiveOptions{Metrics: &observe.Metrics{}})})
	for _, target := range []string{"/", "/?token=", "/status.json"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		if w.Code != http.StatusForbidden || len(w.Result().Cookies()) != 0 {
			t.Errorf("GET %s with no admin.token: %d, cookies %v; want 403 and none (disabled, as every admin endpoint)", target, w.Code, w.Result().Cookies())
		}
	}
}
