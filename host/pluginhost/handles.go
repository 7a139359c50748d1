package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgehost/edgehost/plugins/pluginapi"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// acquire returns the current instance with a call counted in, or
// ErrUnavailable at once when none serves.
func (p *managed) acquire() (*instance, error) {
	for range 3 {
		cur, _ := p.current()
		if cur == nil {
			return nil, p.unavailable()
		}
		if cur.acquire() {
			return cur, nil
		}
		// cur is retiring: a swap has already installed its successor.
	}
	return nil, p.unavailable()
}

// isTransport reports whether err says the connection to the plugin broke
// (the process died, or is dying), as opposed to an answer.
func isTransport(err error, inst *instance) bool {
	if status.Code(err) == codes.Unavailable {
		return true
	}
	return status.Code(err) == codes.Canceled && inst.hasExited()
}

// suspect tells the supervisor that a call on inst failed in transport.
func (p *managed) suspect(inst *instance) {
	select {
	case p.kick <- inst:
	default:
	}
}

// awaitSuccessor waits (at most RetryWait, or ctx) for an instance other
// than old to serve, and acquires it.
func (p *managed) awaitSuccessor(ctx context.Context, old *instance) (*instance, error) {
	// A transport error does not always mean the process is gone; give the
	// exit poll a moment to tell.
	select {
	case <-old.exited:
	case <-time.After(3 * exitPollInterval):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	timer := time.NewTimer(p.m.opts.RetryWait)
	defer timer.Stop()
	for {
		cur, changed := p.current()
		if cur != nil && (cur != old || !old.hasExited()) && cur.acquire() {
			return cur, nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil, p.unavailable()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// call runs fn on the current instance, counting it for metrics (the
// plugin's totals and the method's duration and errors) and for the drain.
// A transport failure tells the supervisor; an idempotent call is then
// retried once on the relaunched instance.
func call[T any](ctx context.Context, p *managed, method string, idempotent bool, fn func(*instance) (T, error)) (T, error) {
	p.calls.Add(1)
	start := time.Now()
	v, err := callOnce(ctx, p, idempotent, fn)
	if err != nil {
		p.errs.Add(1)
	}
	p.meter(method).observe(start, err != nil)
	return v, err
}

func callOnce[T any](ctx context.Context, p *managed, idempotent bool, fn func(*instance) (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		// No one waits for the answer: do not start the call (over the
		// data path a quick answer could otherwise still win the race
		// with the cancellation).
		return zero, err
	}
	inst, err := p.acquire()
	if err != nil {
		return zero, err
	}
	v, err := fn(inst)
	inst.release()
	if err == nil || !isTransport(err, inst) {
		return v, err
	}
	p.suspect(inst)
	if !idempotent || ctx.Err() != nil {
		return zero, fmt.Errorf("plugin %q: %w: %v", p.name, ErrUnavailable, err)
	}
	next, werr := p.awaitSuccessor(ctx, inst)
	if werr != nil {
		return zero, werr
	}
	v, err = fn(next)
	next.release()
	if err != nil && isTransport(err, next) {
		p.suspect(next)
		return zero, fmt.Errorf("plugin %q: %w: %v", p.name, ErrUnavailable, err)
	}
	return v, err
}

// handle is the base of the typed handles: they stay valid across
// relaunches and swaps, always calling the current instance.
type handle struct{ p *managed }

func (m *Manager) handle(name, service string) (handle, error) {
	p, err := m.get(name)
	if err != nil {
		return handle{}, err
	}
	cur, _ := p.current()
	if cur != nil && !cur.info.Has(service) {
		return handle{}, fmt.Errorf("plugin %q: %w %q (it serves %v)", name, ErrNoService, service, cur.info.Services)
	}
	return handle{p}, nil
}

// Slicer returns the named plugin's Slicer service. Decide is retried
// once after a relaunch.
func (m *Manager) Slicer(name string) (pluginapi.Slicer, error) {
	h, err := m.handle(name, pluginapi.ServiceSlicer)
	return slicerHandle{h}, err
}

// File returns the named plugin's File service. Its Watch follows the
// plugin across relaunches and swaps until ctx ends.
func (m *Manager) File(name string) (pluginapi.File, error) {
	h, err := m.handle(name, pluginapi.ServiceFile)
	return fileHandle{h}, err
}

// Compute returns the named plugin's Compute service. Handle is never
// retried; the response body must be closed.
func (m *Manager) Compute(name string) (pluginapi.Compute, error) {
	h, err := m.handle(name, pluginapi.ServiceCompute)
	return computeHandle{h}, err
}

// Processor returns the named plugin's Processor service; the response
// body must be closed.
func (m *Manager) Processor(name string) (pluginapi.Processor, error) {
	h, err := m.handle(name, pluginapi.ServiceProcessor)
	return processorHandle{h}, err
}

// Info returns what the named plugin's current instance declared.
func (m *Manager) Info(name string) (*pluginapi.Info, error) {
	p, err := m.get(name)
	if err != nil {
		return nil, err
	}
	cur, _ := p.current()
	if cur == nil {
		return nil, p.unavailable()
	}
	return cur.info, nil
}

type slicerHandle struct{ handle }

func (h slicerHandle) Decide(ctx context.Context, req *pluginv1.DecideRequest) (*pluginv1.DecideResponse, error) {
	return call(ctx, h.p, "Decide", true, func(i *instance) (*pluginv1.DecideResponse, error) {
		return i.api.Slicer().Decide(ctx, req)
	})
}

type fileHandle struct{ handle }

func (h fileHandle) Check(ctx context.Context, reader string) (*pluginv1.ReaderState, error) {
	return call(ctx, h.p, "Check", true, func(i *instance) (*pluginv1.ReaderState, error) {
		return i.api.File().Check(ctx, reader)
	})
}

// Read is retried after a relaunch only when nothing was written yet.
func (h fileHandle) Read(ctx context.Context, req *pluginv1.ReadRequest, w io.Writer) error {
	cw := &countWriter{w: w}
	_, err := call(ctx, h.p, "Read", true, func(i *instance) (struct{}, error) {
		if cw.n > 0 {
			return struct{}{}, errors.New("read cut short by a plugin crash")
		}
		return struct{}{}, i.api.File().Read(ctx, req, cw)
	})
	return err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Watch opens the watch on the current instance and re-opens it on the
// next one after a relaunch or a swap (whose first messages replay the
// full state). It returns when ctx ends (nil) or send fails.
func (h fileHandle) Watch(ctx context.Context, send func(*pluginv1.ReaderState) error) error {
	var last *instance
	for {
		inst, err := h.p.nextForWatch(ctx, last)
		if err != nil {
			return nil // ctx ended
		}
		var sendErr error
		sctx, cancel := context.WithCancel(ctx)
		stopAfter := context.AfterFunc(inst.streams, cancel)
		err = inst.api.File().Watch(sctx, func(st *pluginv1.ReaderState) error {
			if sendErr = send(st); sendErr != nil {
				return sendErr
			}
			return nil
		})
		stopAfter()
		cancel()
		if sendErr != nil {
			return sendErr
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && isTransport(err, inst) {
			h.p.suspect(inst)
		}
		last = inst
	}
}

// nextForWatch waits for an instance to watch: one other than last, or last
// again after a pause when its stream ended without it being replaced.
func (p *managed) nextForWatch(ctx context.Context, last *instance) (*instance, error) {
	for {
		cur, changed := p.current()
		if cur != nil && cur != last {
			return cur, nil
		}
		var again <-chan time.Time
		if cur != nil {
			again = time.After(time.Second)
		}
		select {
		case <-changed:
		case <-again:
			return cur, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// ComputeStatus asks the named compute plugin for its tenants' state.
func (m *Manager) ComputeStatus(ctx context.Context, name string) ([]*pluginv1.TenantStatus, error) {
	h, err := m.handle(name, pluginapi.ServiceCompute)
	if err != nil {
		return nil, err
	}
	return call(ctx, h.p, "Status", true, func(i *instance) ([]*pluginv1.TenantStatus, error) {
		st, ok := i.api.Compute().(pluginapi.ComputeStatus)
		if !ok {
			return nil, fmt.Errorf("plugin %q: %w %q (no status)", name, ErrNoService, pluginapi.ServiceCompute)
		}
		return st.Status(ctx)
	})
}

type computeHandle struct{ handle }

func (h computeHandle) Handle(ctx context.Context, req *pluginapi.Request) (*pluginapi.Response, error) {
	return streamCall(ctx, h.p, "Handle", func(i *instance) (*pluginapi.Response, error) {
		return i.api.Compute().Handle(ctx, req)
	})
}

type processorHandle struct{ handle }

func (h processorHandle) Process(ctx context.Context, head *pluginv1.ProcessHead, body io.Reader) (*pluginapi.Response, error) {
	return streamCall(ctx, h.p, "Process", func(i *instance) (*pluginapi.Response, error) {
		return i.api.Processor().Process(ctx, head, body)
	})
}

// streamCall runs a streaming call that is never retried; the instance
// counts it in flight until the response body is read to its end or
// closed, so a swap drains it. Its duration is measured up to the response
// head; an error of the body counts as an error of the method too.
func streamCall(ctx context.Context, p *managed, method string, fn func(*instance) (*pluginapi.Response, error)) (*pluginapi.Response, error) {
	p.calls.Add(1)
	mt := p.meter(method)
	start := time.Now()
	inst, err := p.acquire()
	if err != nil {
		p.errs.Add(1)
		mt.observe(start, true)
		return nil, err
	}
	resp, err := fn(inst)
	mt.observe(start, err != nil)
	if err != nil {
		inst.release()
		p.errs.Add(1)
		if isTransport(err, inst) {
			p.suspect(inst)
			return nil, fmt.Errorf("plugin %q: %w: %v", p.name, ErrUnavailable, err)
		}
		return nil, err
	}
	resp.Body = &trackedBody{rc: resp.Body, inst: inst, p: p, mt: mt}
	return resp, nil
}

// trackedBody releases its instance once, at EOF, error or Close.
type trackedBody struct {
	rc   io.ReadCloser
	inst *instance
	p    *managed
	mt   *meter
	once sync.Once
}

func (b *trackedBody) Read(q []byte) (int, error) {
	n, err := b.rc.Read(q)
	if err != nil {
		if err != io.EOF {
			b.p.errs.Add(1)
			b.mt.errs.Inc()
			if isTransport(err, b.inst) {
				b.p.suspect(b.inst)
			}
		}
		b.once.Do(b.inst.release)
	}
	return n, err
}

func (b *trackedBody) Close() error {
	err := b.rc.Close()
	b.once.Do(b.inst.release)
	return err
}

var (
	_ pluginapi.Slicer    = slicerHandle{}
	_ pluginapi.File      = fileHandle{}
	_ pluginapi.Compute   = computeHandle{}
	_ pluginapi.Processor = processorHandle{}
)
