package files

import (
	"testing"

	"github.com/edgehost/edgehost/host/internal/benchloop"
	"github.com/edgehost/edgehost/host/observe"
)

// TestFastPathAllocatesNothing guards DESIGN §2's promise for the file
// feature's fast path (as host/server's TestHitPathAllocatesNothing does
// for hits): a file response, and a hit on a server with a file reader,
// each through a real socket, allocate nothing in the whole process.
func TestFastPathAllocatesNothing(t *testing.T) {
	tests := []struct {
		name, path, status string
		route, cache       string // the request-duration series that counts them
	}{
		{"file response", "/file4k", "200", "/file4k", "synth"},
		{"hit beside a file reader", "/bytes/4k", "200", "/", "hit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, addr := startFileBenchFiles(t)
			allocs := benchloop.Allocs(t, addr, tt.path, "", tt.status)
			if allocs != 0 {
				t.Errorf("%v allocations per request, want 0 (go test -run x -bench File -benchmem -memprofile shows where)", allocs)
			}
			l := map[string]string{"route": tt.route, "cache": tt.cache}
			if n, _ := observe.HistogramCount(f.metrics.Registry(), "edgehost_request_duration_seconds", l); n < 500 {
				t.Errorf("edgehost_request_duration_seconds%v counted %d, want the 500+ requests measured", l, n)
			}
		})
	}
}
