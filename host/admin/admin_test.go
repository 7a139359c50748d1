package admin

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edgehost/edgehost/host/observe"
)

type fakeCache struct{ purged, tags, bans []string }

func (f *fakeCache) Purge(key string) int    { f.purged = append(f.purged, key); return 1 }
func (f *fakeCache) PurgeTag(tag string) int { f.tags = append(f.tags, tag); return 2 }
func (f *fakeCache) Ban(expr string) error {
	if strings.Contains(expr, "~~") {
		return io.ErrUnexpectedEOF
	}
	f.bans = append(f.bans, expr)
	return nil
}
func (f *fakeCache) Bans() []string { return f.bans }

func TestAdminAuthAndInvalidation(t *testing.T) {
	fc := &fakeCache{}
	h := Handler(Options{Token: "tok", Cache: fc, Metrics: &observe.Metrics{}, TxLog: observe.NewTxLog(8),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	do := func(method, path, token, body string) int {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	for _, tc := range []struct {
		method, path, token, body string
		want                      int
	}{
		{"GET", "/healthz", "", "", 200},
		{"GET", "/metrics", "", "", 401},
		{"GET", "/metrics", "tok", "", 200},
		{"POST", "/purge?url=http://Example.com/a?b=1", "", "", 401},
		{"POST", "/purge?url=http://Example.com/a?b=1", "wrong", "", 401},
		{"POST", "/purge?url=http://Example.com/a?b=1", "tok", "", 200},
		{"POST", "/purge?url=/no-host", "tok", "", 400},
		{"POST", "/purge?url=/with-host&host=h.example", "tok", "", 200},
		{"POST", "/purge-tag?tag=red", "tok", "", 200},
		{"POST", "/purge-tag", "tok", "", 400},
		{"POST", "/ban", "tok", `req.url ~ "^/img"`, 200},
		{"POST", "/ban", "tok", `req.url ~~ "x"`, 400},
		// Refused whole, not cut to its first 64 KiB (a ban that matches more).
		{"POST", "/ban", "tok", `req.url ~ "^/a"` + strings.Repeat(" ", maxBanBody) + `&& obj.status == 200`, 413},
		{"GET", "/status", "tok", "", 200},
		{"GET", "/debug/pprof/", "", "", 401},
	} {
		if got := do(tc.method, tc.path, tc.token, tc.body); got != tc.want {
			t.Errorf("%s %s (token %q): %d, want %d", tc.method, tc.path, tc.token, got, tc.want)
		}
	}
	if len(fc.bans) != 1 {
		t.Errorf("bans %q", fc.bans)
	}
	if len(fc.purged) != 2 || fc.purged[0] != "example.com/a?b=1" || fc.purged[1] != "h.example/with-host" {
		t.Errorf("purged keys %q", fc.purged)
	}
	// No token configured: state-changing endpoints are refused outright.
	open := Handler(Options{Cache: fc, Metrics: &observe.Metrics{}, TxLog: observe.NewTxLog(8), Logger: slog.Default()})
	req := httptest.NewRequest("POST", "/purge?url=http://a/b", nil)
	w := httptest.NewRecorder()
	open.ServeHTTP(w, req)
	if w.Code != http.StatusForbidden {
		t.Errorf("no token configured: %d, want 403", w.Code)
	}
}

// TestEverythingButHealthNeedsToken (issue 13, item 10): every endpoint of
// the admin listener but /healthz needs the token, reads included (GET
// /plugins shows binary paths, pids and errors); /metrics too unless the
// operator opened it (admin { public_metrics = true }).
func TestEverythingButHealthNeedsToken(t *testing.T) {
	plugins := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "plugin list") })
	extra := map[string]http.Handler{"GET /files": plugins}
	for _, public := range []bool{false, true} {
		h := Handler(Options{Token: "tok", PublicMetrics: public, Cache: &fakeCache{}, Metrics: &observe.Metrics{}, TxLog: observe.NewTxLog(8),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Plugins: plugins, Extra: extra})
		for _, tc := range []struct {
			method, path string
			open         bool
		}{
			{"GET", "/healthz", true},
			{"GET", "/metrics", public},
			{"GET", "/plugins", false},
			{"GET", "/plugins/x", false},
			{"POST", "/plugins/x/reload", false},
			{"GET", "/status", false},
			{"GET", "/log", false},
			{"GET", "/files", false},
			{"GET", "/debug/pprof/", false},
			{"GET", "/no-such-thing", false},
		} {
			for _, token := range []string{"", "wrong"} {
				req := httptest.NewRequest(tc.method, tc.path, nil)
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if got := w.Code != http.StatusUnauthorized; got != tc.open {
					t.Errorf("public_metrics=%v %s %s with token %q: %d", public, tc.method, tc.path, token, w.Code)
				}
			}
			req := httptest.NewRequest(tc.method, tc.path, nil)
			req.Header.Set("Authorization", "Bearer tok")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code == http.StatusUnauthorized || w.Code == http.StatusForbidden {
				t.Errorf("%s %s with the token: %d", tc.method, tc.path, w.Code)
			}
		}
	}
}
