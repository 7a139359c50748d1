package integration

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowOrigin answers each request after `wait` unless the request's
// context ends first; it reports, per path, whether the request ran to
// its end or was cancelled, and when.
type slowOrigin struct {
	URL  string
	wait time.Duration
	mu   sync.Mutex
	ends map[string]chan originEnd
}

type originEnd struct {
	cancelled bool
	at        time.Time
}

func startSlowOrigin(t *testing.T, wait time.Duration) *slowOrigin {
	t.Helper()
	o := &slowOrigin{wait: wait, ends: map[string]chan originEnd{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		end := o.end(r.URL.Path)
		select {
		case <-r.Context().Done():
			end <- originEnd{cancelled: true, at: time.Now()}
			return
		case <-time.After(o.wait):
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "slow body")
		end <- originEnd{at: time.Now()}
	}))
	t.Cleanup(srv.Close)
	o.URL = srv.URL
	return o
}

func (o *slowOrigin) end(path string) chan originEnd {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ends[path] == nil {
		o.ends[path] = make(chan originEnd, 16)
	}
	return o.ends[path]
}

// TestClientGoneCancelsPass (issue 13, item 7): a client that hangs up
// during a pass to a slow origin cancels the origin request within a
// second (it used to run to its end, 4 s later); a coalesced fetch whose
// first client leaves keeps running for the client still waiting, which
// gets the body from that one origin request.
func TestClientGoneCancelsPass(t *testing.T) {
	o := startSlowOrigin(t, 3*time.Second)
	e := newEdge(t, patientConfig(o.URL, `
route "/pass/" {
  backend = backend.origin
  pass    = true
}
`))
	t.Run("pass", func(t *testing.T) {
		c := sendGet(t, e.HTTP, "/pass/slow")
		time.Sleep(300 * time.Millisecond) // the origin has the request
		c.Close()
		closed := time.Now()
		select {
		case end := <-o.end("/pass/slow"):
			if !end.cancelled || end.at.Sub(closed) > time.Second {
				t.Errorf("origin request: cancelled %v, %v after the client left; want cancelled within 1s", end.cancelled, end.at.Sub(closed))
			}
		case <-time.After(6 * time.Second):
			t.Fatal("the origin request never ended")
		}
	})
	t.Run("coalesced", func(t *testing.T) {
		leaver := sendGet(t, e.HTTP, "/co/slow")
		time.Sleep(200 * time.Millisecond) // its fetch is the flight
		stayer := sendGet(t, e.HTTP, "/co/slow")
		defer stayer.Close()
		time.Sleep(200 * time.Millisecond)
		leaver.Close()
		stayer.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(stayer), nil)
		if err != nil {
			t.Fatalf("the client that stayed: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "slow body" {
			t.Fatalf("the client that stayed: %d %q", resp.StatusCode, b)
		}
		if !strings.Contains(resp.Header.Get("Cache-Status"), "collapsed") {
			t.Errorf("the client that stayed: Cache-Status %q, want collapsed into the first fetch", resp.Header.Get("Cache-Status"))
		}
		if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "ttl=5") {
			t.Errorf("the client that stayed: Cache-Status %q, want the stored object's ttl (about 57 of max-age=60)", cs)
		}
		select {
		case end := <-o.end("/co/slow"):
			if end.cancelled {
				t.Error("the coalesced origin request was cancelled")
			}
		default:
			t.Error("the origin request had not ended when the client that stayed got its answer")
		}
		select {
		case <-o.end("/co/slow"):
			t.Error("two origin requests for one coalesced fetch")
		default:
		}
	})
}

// sendGet dials addr and sends a GET of path on a keep-alive connection.
func sendGet(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
	return c
}
