package pluginapi

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// flowPlugin serves Compute calls that test the data path's bounds:
//
//	/produce  answers an endless body, counting what it produced
//	/hold     reads nothing until released
//	/wait     reads its body, then waits for its context to end
type flowPlugin struct {
	produced   atomic.Int64
	bodyClosed chan struct{}
	release    chan struct{}
	canceled   chan struct{}
}

func newFlowPlugin() *flowPlugin {
	return &flowPlugin{bodyClosed: make(chan struct{}), release: make(chan struct{}), canceled: make(chan struct{})}
}

func (p *flowPlugin) Info(context.Context) (*Info, error)     { return &Info{Name: "flow"}, nil }
func (p *flowPlugin) Configure(context.Context, Config) error { return nil }
func (p *flowPlugin) Health(context.Context) error            { return nil }
func (p *flowPlugin) Shutdown(context.Context) error          { return nil }

func (p *flowPlugin) Handle(ctx context.Context, req *Request) (*Response, error) {
	switch req.Head.GetUrl() {
	case "/produce":
		return &Response{Head: &pluginv1.ResponseHead{Status: 200}, Body: &endless{p: p}}, nil
	case "/hold":
		<-p.release
		return nil, errors.New("released")
	case "/wait":
		if req.Body != nil {
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return nil, err
			}
		}
		<-ctx.Done()
		close(p.canceled)
		return nil, ctx.Err()
	}
	return &Response{Head: &pluginv1.ResponseHead{Status: 204}}, nil
}

// endless is a body that never ends, counting the bytes read from it.
type endless struct{ p *flowPlugin }

func (e *endless) Read(b []byte) (int, error) {
	e.p.produced.Add(int64(len(b)))
	return len(b), nil
}

func (e *endless) Close() error {
	close(e.p.bodyClosed)
	return nil
}

// countingReader is an endless request body, counting what was read.
type countingReader struct{ n atomic.Int64 }

func (r *countingReader) Read(b []byte) (int, error) {
	r.n.Add(int64(len(b)))
	return len(b), nil
}

// flowBound is what may be in flight on one connection, one way: the
// kernel's socket buffers (socketBufSize, which Linux doubles, both ends),
// the bufio buffers, the chunk being written and the one being read from
// the body; with room to spare. Without back-pressure the counts below
// would grow by gigabytes in the time the tests wait.
const flowBound = 4*socketBufSize + 2*connBufSize + 2*dpChunkSize + 1<<20

func dataPathClient(t *testing.T, impl Plugin) *dataPath {
	t.Helper()
	o := OfferInProcess(t, impl)
	d := &dataPath{ctl: o.host}
	t.Cleanup(func() { d.close() })
	return d
}

// settled waits until n stops growing and returns it.
func settled(n func() int64) int64 {
	last := n()
	for range 50 {
		time.Sleep(40 * time.Millisecond)
		if v := n(); v == last {
			return v
		} else {
			last = v
		}
	}
	return last
}

// TestDataPathBackPressure: a host that stops reading a response stops
// the plugin's producer, and a plugin that stops reading a request body
// stops the host's sender, each after a bounded amount of data; closing
// the response body ends the call in the plugin.
func TestDataPathBackPressure(t *testing.T) {
	p := newFlowPlugin()
	d := dataPathClient(t, p)

	resp, err := d.stream(context.Background(), methodHandle, &pluginv1.RequestHead{Url: "/produce"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if n := settled(p.produced.Load); n > flowBound || n == 0 {
		t.Errorf("plugin produced %d bytes for a reader that read 1, want ≤ %d", n, flowBound)
	} else {
		t.Logf("response: %d bytes produced while the host read none (bound %d)", n, flowBound)
	}
	resp.Body.Close()
	select {
	case <-p.bodyClosed:
	case <-time.After(5 * time.Second):
		t.Fatal("the plugin's response body was not closed after the host closed its end")
	}

	body := &countingReader{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := d.stream(ctx, methodHandle, &pluginv1.RequestHead{Url: "/hold"}, body)
		done <- err
	}()
	if n := settled(body.n.Load); n > flowBound || n == 0 {
		t.Errorf("host sent %d bytes to a plugin that read none, want ≤ %d", n, flowBound)
	} else {
		t.Logf("request: %d bytes sent while the plugin read none (bound %d)", n, flowBound)
	}
	cancel()
	select {
	case err := <-done:
		if status.Code(err) != codes.Canceled {
			t.Errorf("cancelled call = %v, want Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled call did not return")
	}
	close(p.release)

	// The pool holds no broken connection: calls still work.
	for range 3 {
		resp, err := d.stream(context.Background(), methodHandle, &pluginv1.RequestHead{Url: "/"}, strings.NewReader("x"))
		if err != nil || resp.Head.GetStatus() != 204 {
			t.Fatalf("call after the flow tests = %v, %v", resp, err)
		}
		resp.Body.Close()
	}
}

// TestDataPathCancel: the host's cancel reaches a handler that has read
// its request, and the connection is not reused.
func TestDataPathCancel(t *testing.T) {
	for _, body := range []io.Reader{nil, strings.NewReader("some body")} {
		p := newFlowPlugin()
		d := dataPathClient(t, p)
		// Cancelled, not a deadline: a deadline also reaches the plugin in
		// the call frame, which then answers DeadlineExceeded by itself.
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err := d.stream(ctx, methodHandle, &pluginv1.RequestHead{Url: "/wait"}, body)
		if c := status.Code(err); c != codes.Canceled {
			t.Errorf("cancelled call = %v, want Canceled", err)
		}
		select {
		case <-p.canceled:
		case <-time.After(5 * time.Second):
			t.Fatal("the plugin's context did not end")
		}
		d.mu.Lock()
		idle := len(d.idle)
		d.mu.Unlock()
		if idle != 0 {
			t.Errorf("%d connections pooled after a cancelled call", idle)
		}
	}
}

// TestDataPathUnreadBody: a handler that answers without reading its
// request body leaves the connection usable (a small rest is drained).
func TestDataPathUnreadBody(t *testing.T) {
	d := dataPathClient(t, newFlowPlugin())
	for _, n := range []int{10, 100 << 10, 3 << 20} {
		resp, err := d.stream(context.Background(), methodHandle, &pluginv1.RequestHead{Url: "/"}, strings.NewReader(strings.Repeat("b", n)))
		if err != nil || resp.Head.GetStatus() != 204 {
			t.Fatalf("%d bytes unread: %v, %v", n, resp, err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatalf("%d bytes unread: body: %v", n, err)
		}
		resp.Body.Close()
	}
	if _, err := d.stream(context.Background(), methodHandle, &pluginv1.RequestHead{Url: "/"}, nil); err != nil {
		t.Fatal(err)
	}
}

var _ Compute = (*flowPlugin)(nil)
