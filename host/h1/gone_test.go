package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestClientGoneCancels (issue 13, item 7): a client that hangs up while
// its request is being served cancels the request's context (cause
// ErrClientGone), with or without a body; a pipelined request behind a
// slow one is not taken for a hang-up, and is answered.
func TestClientGoneCancels(t *testing.T) {
	type result struct {
		path  string
		after time.Duration
		cause error
	}
	done := make(chan result, 4)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		start := time.Now()
		wait := 5 * time.Second
		if r.URL.Path == "/short" {
			wait = 300 * time.Millisecond
		}
		select {
		case <-r.Context().Done():
		case <-time.After(wait):
		}
		done <- result{r.URL.Path, time.Since(start), context.Cause(r.Context())}
		io.WriteString(w, "ok")
	})
	addr := serve(t, h, nil)
	for name, raw := range map[string]string{
		"no body":   "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n",
		"with body": "POST /wait HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"chunked":   "POST /wait HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, addr)
			io.WriteString(c, raw)
			time.Sleep(100 * time.Millisecond) // the handler runs
			c.Close()
			select {
			case r := <-done:
				if !errors.Is(r.cause, ErrClientGone) || r.after > time.Second {
					t.Errorf("handler ended after %v, cause %v; want ErrClientGone within 1s", r.after, r.cause)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("the handler's context was not cancelled when its client left")
			}
		})
	}
	t.Run("pipelined", func(t *testing.T) {
		c := dial(t, addr)
		io.WriteString(c, "GET /short HTTP/1.1\r\nHost: x\r\n\r\nGET /short HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for i := range 2 {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			io.ReadAll(resp.Body)
			if r := <-done; r.cause != nil {
				t.Errorf("request %d cancelled: %v", i, r.cause)
			}
		}
	})
}
