package backend

import (
	"context"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"time"
)

// Probe configures the health probe of a backend, after Varnish's
// backend probes: every Interval a GET of Path is sent on a fresh
// connection; it passes when the status is ExpectStatus within Timeout. The
// backend is healthy while at least Threshold of the last Window probes
// passed.
type Probe struct {
	Path         string        // default "/"; may carry a query
	Interval     time.Duration // default 5s
	Timeout      time.Duration // default 2s
	Window       int           // default 8, at most 64
	Threshold    int           // default 3, at most Window
	ExpectStatus int           // default 200
}

// Probe defaults (Varnish's, except initial: see window).
const (
	defaultProbePath      = "/"
	defaultProbeInterval  = 5 * time.Second
	defaultProbeTimeout   = 2 * time.Second
	defaultProbeWindow    = 8
	defaultProbeThreshold = 3
	defaultProbeStatus    = http.StatusOK

	// probeBodyLimit bounds what a probe reads of a response body (it reads
	// it only so that a well-behaved origin sees a complete exchange).
	probeBodyLimit = 64 << 10
)

// withDefaults returns a copy of p with zero fields set to their defaults,
// or an error for values that make no sense.
func (p Probe) withDefaults() (Probe, error) {
	if p.Path == "" {
		p.Path = defaultProbePath
	}
	if p.Interval == 0 {
		p.Interval = defaultProbeInterval
	}
	if p.Timeout == 0 {
		p.Timeout = defaultProbeTimeout
	}
	if p.Window == 0 {
		p.Window = defaultProbeWindow
	}
	if p.Threshold == 0 {
		p.Threshold = defaultProbeThreshold
	}
	if p.ExpectStatus == 0 {
		p.ExpectStatus = defaultProbeStatus
	}
	switch {
	case p.Path[0] != '/':
		return p, fmt.Errorf("probe path %q must start with /", p.Path)
	case p.Interval < 0:
		return p, fmt.Errorf("probe interval %v must be positive", p.Interval)
	case p.Timeout < 0:
		return p, fmt.Errorf("probe timeout %v must be positive", p.Timeout)
	case p.Window < 1 || p.Window > 64:
		return p, fmt.Errorf("probe window %d must be between 1 and 64", p.Window)
	case p.Threshold < 1 || p.Threshold > p.Window:
		return p, fmt.Errorf("probe threshold %d must be between 1 and the window (%d)", p.Threshold, p.Window)
	case p.ExpectStatus < 100 || p.ExpectStatus > 599:
		return p, fmt.Errorf("probe expect status %d is not an HTTP status", p.ExpectStatus)
	}
	return p, nil
}

// window is the sliding window of the last n probe results: bit 0 is the
// newest, bit n-1 the oldest, 1 = passed.
//
// Before any probe the backend is healthy, with no history: the window
// starts with exactly threshold passes as its oldest entries. So the first
// failed probe pushes one of them out and turns the backend sick at once (an
// origin that is down at startup is found in one interval), while a passing
// probe keeps it healthy; from then on the window holds real results only
// after n probes.
type window struct {
	bits      uint64
	n         int
	threshold int
}

func newWindow(n, threshold int) window {
	w := window{n: n, threshold: threshold}
	// threshold ones at positions n-threshold .. n-1.
	w.bits = (uint64(1)<<threshold - 1) << (n - threshold)
	return w
}

// add records a probe result and returns whether the backend is healthy.
func (w *window) add(passed bool) bool {
	w.bits <<= 1
	if passed {
		w.bits |= 1
	}
	if w.n < 64 {
		w.bits &= uint64(1)<<w.n - 1
	}
	return w.healthy()
}

func (w *window) passed() int { return bits.OnesCount64(w.bits) }

func (w *window) healthy() bool { return w.passed() >= w.threshold }

// probeLoop probes the origin until ctx ends (Start's context, or Close).
func (b *Backend) probeLoop(ctx context.Context) {
	defer b.wg.Done()
	p := b.probe
	w := newWindow(p.Window, p.Threshold)
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		err := b.probeOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		was := w.healthy()
		now := w.add(err == nil)
		b.healthy.Store(now)
		switch {
		case was && !now:
			b.logger.Warn("backend sick", "backend", b.name,
				"passed", w.passed(), "window", p.Window, "threshold", p.Threshold, "err", err)
		case !was && now:
			b.logger.Info("backend healthy", "backend", b.name,
				"passed", w.passed(), "window", p.Window, "threshold", p.Threshold)
		default:
			if err != nil {
				b.logger.Debug("backend probe failed", "backend", b.name, "passed", w.passed(), "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probeOnce sends one probe; nil means it passed.
func (b *Backend) probeOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.probe.Timeout)
	defer cancel()
	req := &http.Request{
		Method:     http.MethodGet,
		URL:        b.target(b.probePath, "", b.probeQuery),
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{"User-Agent": {"edgehost-probe"}, "Via": {viaValue}},
		Host:       b.defaultHost,
	}
	req = req.WithContext(ctx)
	resp, err := b.probeTransport.RoundTrip(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, probeBodyLimit))
	resp.Body.Close()
	if resp.StatusCode != b.probe.ExpectStatus {
		return fmt.Errorf("probe %s: status %d, want %d", b.probe.Path, resp.StatusCode, b.probe.ExpectStatus)
	}
	if err != nil {
		return fmt.Errorf("probe %s: reading body: %w", b.probe.Path, err)
	}
	return nil
}
