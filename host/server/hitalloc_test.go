package server

import (
	"testing"

	"github.com/edgehost/edgehost/host/internal/benchloop"
	"github.com/edgehost/edgehost/host/observe"
)

// TestHitPathAllocatesNothing guards DESIGN §2's promise for the answers
// the h1 fast path gives: a fresh hit and a 304 to a matching
// If-None-Match, each through a real socket, allocate nothing in the whole
// process (the client side allocates nothing either; see
// benchloop.Allocs). host/files guards a file response the same way.
// The slow path is out of scope here: it runs the state machine over
// net/http types. Each answer is observed in the request-duration
// histogram (issue 17), which must not allocate either: the test checks
// that the histogram counted the requests it measured.
func TestHitPathAllocatesNothing(t *testing.T) {
	tests := []struct {
		name, path, extra, status string
	}{
		{"hit 1 KiB", "/bytes/1k", "", "200"},
		{"hit 28 KiB", "/bytes/28k", "", "200"},
		{"304 hit", "/bytes/1k", "If-None-Match: \"bytes-1024-0\"\r\n", "304"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, m := startBenchMetrics(t)
			allocs := benchloop.Allocs(t, addr, tt.path, tt.extra, tt.status)
			if allocs != 0 {
				t.Errorf("%v allocations per request, want 0 (go test -run x -bench Hit -benchmem -memprofile shows where)", allocs)
			}
			// Allocs sent 50 warm-up requests (the first a miss) and
			// measured 500 or more.
			hits, _ := observe.HistogramCount(m.Registry(), "edgehost_request_duration_seconds", map[string]string{"route": "/", "cache": "hit"})
			if hits < 500 {
				t.Errorf("edgehost_request_duration_seconds{route=\"/\",cache=\"hit\"} counted %d, want the 500+ hits measured", hits)
			}
		})
	}
}
