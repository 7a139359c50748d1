package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Host carrying a path: the cache key host+target collides with another URL.
func TestRegressHostSlashPoison(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprintf(w, "origin path=%s host=%s\n", r.URL.Path, r.Host)
	}))
	defer srv.Close()
	e := newEdge(t, baseConfig(srv.URL, ""))
	raw := rawRequest(t, e.HTTP, "GET /public HTTP/1.1\r\nHost: "+e.HTTP+"/secret\r\nConnection: close\r\n\r\n")
	t.Logf("attacker got: %q", raw[strings.LastIndex(raw, "\r\n\r\n")+4:])
	r := e.get("/secret/public")
	t.Logf("victim got: %q cache-status %q", r.Body, r.Header.Get("Cache-Status"))
	if !strings.Contains(string(r.Body), "path=/secret/public") {
		t.Fatalf("victim got the object of another URL: %q", r.Body)
	}
}
