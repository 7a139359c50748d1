package server

import (
	"testing"

	"github.com/edgehost/edgehost/host/internal/benchloop"
)

// TestHitPathAllocatesNothing guards DESIGN §2's promise for the answers
// the h1 fast path gives: a fresh hit and a 304 to a matching
// If-None-Match, each through a real socket, allocate nothing in the whole
// process (the client side allocates nothing either; see
// benchloop.Allocs). host/files guards a file response the same way.
// The slow path is out of scope here: it runs the state machine over
// net/http types.
func TestHitPathAllocatesNothing(t *testing.T) {
	tests := []struct {
		name, path, extra, status string
		start                     func(testing.TB) string
	}{
		{"hit 1 KiB", "/bytes/1k", "", "200", startBench},
		{"hit 28 KiB", "/bytes/28k", "", "200", startBench},
		{"304 hit", "/bytes/1k", "If-None-Match: \"bytes-1024-0\"\r\n", "304", startBench},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allocs := benchloop.Allocs(t, tt.start(t), tt.path, tt.extra, tt.status)
			if allocs != 0 {
				t.Errorf("%v allocations per request, want 0 (go test -run x -bench Hit -benchmem -memprofile shows where)", allocs)
			}
		})
	}
}
