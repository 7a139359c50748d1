package files

import (
	"testing"

	"github.com/edgehost/edgehost/host/internal/benchloop"
)

// TestFastPathAllocatesNothing guards DESIGN §2's promise for the file
// feature's fast path (as host/server's TestHitPathAllocatesNothing does
// for hits): a file response, and a hit on a server with a file reader,
// each through a real socket, allocate nothing in the whole process.
func TestFastPathAllocatesNothing(t *testing.T) {
	tests := []struct {
		name, path, status string
	}{
		{"file response", "/file4k", "200"},
		{"hit beside a file reader", "/bytes/4k", "200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allocs := benchloop.Allocs(t, startFileBench(t), tt.path, "", tt.status)
			if allocs != 0 {
				t.Errorf("%v allocations per request, want 0 (go test -run x -bench File -benchmem -memprofile shows where)", allocs)
			}
		})
	}
}
