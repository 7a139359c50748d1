package node

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// memoryLimitSlack is what the Go runtime's soft memory limit allows over
// twice storage.memory: the runtime itself, goroutine stacks, connection
// buffers.
const memoryLimitSlack = 64 << 20

// setMemoryLimit gives the Go runtime a soft memory limit of twice
// storage.memory (the memory tier, and the bodies being received to be
// stored, each bounded by it) plus memoryLimitSlack, unless GOMEMLIMIT
// sets one. Without it the collector lets the heap grow to twice what is
// live (GOGC=100) before it runs: the soak (make soak, storage.memory 64
// MiB) peaked at 296 MiB of anonymous memory, 149 MiB with this limit
// (issue 13, item 3). The limit is soft: a live heap above it makes the
// collector run more often (the runtime caps that at half the CPU), it
// never fails an allocation.
func setMemoryLimit(memory int64, log *slog.Logger) {
	if memory <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := 2*memory + memoryLimitSlack
	debug.SetMemoryLimit(limit)
	log.Debug("Go memory limit set", "bytes", limit)
}
