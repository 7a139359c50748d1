package integration

import (
	"strings"
	"testing"
)

// Absolute-form request target on a sliced route.
func TestRegressSliceAbsoluteForm(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, sliceConfig(o.URL, "fetch", "pass"))
	raw := rawRequest(t, e.HTTP, "GET http://"+e.HTTP+"/big/16m HTTP/1.1\r\nHost: "+e.HTTP+"\r\nRange: bytes=0-9\r\nConnection: close\r\n\r\n")
	line := raw[:strings.Index(raw, "\r\n")]
	t.Logf("absolute-form: %s", line)
	r := e.get("/big/16m", "Range", "bytes=0-9")
	t.Logf("origin-form: %d", r.Status)
	if !strings.Contains(line, "206") {
		t.Fatalf("absolute-form sliced request: %s", line)
	}
}
