package backend

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	tests := []struct {
		name              string
		window, threshold int
		probes            string // p = pass, f = fail
		want              string // healthy after each probe: h or s
	}{
		{"first failure makes sick", 8, 3, "f", "s"},
		{"passes keep healthy", 8, 3, "ppp", "hhh"},
		{"recovers after threshold passes", 8, 3, "fppp", "sssh"},
		{"one pass is not enough", 8, 3, "ffp", "sss"},
		{"full window of passes survives failures", 8, 3, "ppppppppfffff" + "f", "hhhhhhhhhhhhh" + "s"},
		{"window 1", 1, 1, "pfp", "hsh"},
		{"threshold = window", 4, 4, "ppppfp", "hhhhss"},
		{"window 64", 64, 64, "pf", "hs"},
		{"window 64 threshold 1", 64, 1, "ffp", "ssh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWindow(tt.window, tt.threshold)
			if !w.healthy() {
				t.Fatal("a new window is sick; the state before any probe must be healthy")
			}
			var got strings.Builder
			for _, p := range tt.probes {
				if w.add(p == 'p') {
					got.WriteByte('h')
				} else {
					got.WriteByte('s')
				}
			}
			if got.String() != tt.want {
				t.Errorf("probes %s: states %s, want %s", tt.probes, got.String(), tt.want)
			}
		})
	}
}

// syncBuffer is a log sink that tests read while the probe writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestProbeSickAndHealthy(t *testing.T) {
	var status atomic.Int64
	status.Store(http.StatusOK)
	var probes, requests atomic.Int64
	var probeHost atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && r.URL.RawQuery == "deep=1" {
			probes.Add(1)
			probeHost.Store(r.Host)
			w.WriteHeader(int(status.Load()))
			return
		}
		requests.Add(1)
		io.WriteString(w, "content")
	}))
	defer srv.Close()

	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	b, err := New(Config{
		Name:       "origin",
		URL:        srv.URL,
		HostHeader: "origin.internal",
		Probe:      &Probe{Path: "/healthz?deep=1", Interval: 20 * time.Millisecond, Timeout: time.Second, Window: 4, Threshold: 2},
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.Start(ctx)
	b.Start(ctx) // a second Start does nothing

	waitFor(t, "a probe", time.Second, func() bool { return probes.Load() > 0 })
	if !b.Healthy() {
		t.Fatal("backend sick while its probes pass")
	}
	if h, _ := probeHost.Load().(string); h != "origin.internal" {
		t.Errorf("probe sent Host %q, want origin.internal", h)
	}

	status.Store(http.StatusInternalServerError)
	waitFor(t, "the backend to turn sick", 2*time.Second, func() bool { return !b.Healthy() })
	before := requests.Load()
	_, err = b.Do(context.Background(), clientReq("GET", "/page", nil))
	if !errors.Is(err, ErrUnhealthy) {
		t.Errorf("Do on a sick backend: err %v, want ErrUnhealthy", err)
	}
	if got, want := StatusFor(err), http.StatusServiceUnavailable; got != want {
		t.Errorf("StatusFor(%v) = %d, want %d", err, got, want)
	}
	if requests.Load() != before {
		t.Error("Do sent a request to a sick origin")
	}
	if st := b.Stats(); st.Healthy {
		t.Errorf("Stats().Healthy = true on a sick backend")
	}

	status.Store(http.StatusOK)
	waitFor(t, "the backend to recover", 2*time.Second, b.Healthy)
	resp, err := b.Do(context.Background(), clientReq("GET", "/page", nil))
	if err != nil {
		t.Fatalf("Do after recovery: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	cancel()
	b.Close() // waits for the probe goroutine
	out := logs.String()
	sick := strings.Index(out, "level=WARN msg=\"backend sick\" backend=origin")
	healthy := strings.Index(out, "level=INFO msg=\"backend healthy\" backend=origin")
	if sick < 0 || healthy < sick {
		t.Errorf("want a WARN \"backend sick\" then an INFO \"backend healthy\" line; logs:\n%s", out)
	}
	if n := strings.Count(out, "backend sick"); n != 1 {
		t.Errorf("logged %d sick transitions, want 1; logs:\n%s", n, out)
	}
}

// TestProbeConnectFailure: an origin that is gone turns sick, and the probe
// stops with its context.
func TestProbeConnectFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	url := srv.URL
	srv.Close()
	b := newBackend(t, Config{URL: url, Probe: &Probe{Interval: 10 * time.Millisecond, Timeout: 100 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	b.Start(ctx)
	waitFor(t, "the backend to turn sick", 2*time.Second, func() bool { return !b.Healthy() })
	cancel()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("probe goroutine still running after its context ended")
	}
}
