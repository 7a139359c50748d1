package integration

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// Slow sliced downloads hold self-request slots for their whole transfer.
func TestRegressSliceSelfSlots(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, sliceConfig(o.URL, "fetch", "pass")+"\nlimits {\n self_concurrency = 4\n}\n")
	// warm the meta object
	wantStatus(t, e.get("/big/16m", "Range", "bytes=0-0"), 206)
	var slow []*http.Response
	for i := 0; i < 2; i++ {
		resp, err := http.Get(e.url("/big/16m"))
		if err != nil {
			t.Fatal(err)
		}
		io.ReadFull(resp.Body, make([]byte, 10))
		slow = append(slow, resp) // a slow reader: keeps the connection, reads nothing more
	}
	time.Sleep(300 * time.Millisecond)
	r := e.get("/big/16m", "Range", "bytes=8000000-8000010")
	t.Logf("third client: %d %q %s", r.Status, r.Header.Get("Cache-Status"), r.Body[:min(len(r.Body), 80)])
	for _, s := range slow {
		s.Body.Close()
	}
	if r.Status != 206 {
		t.Fatalf("third client got %d while two slow clients download", r.Status)
	}
}
