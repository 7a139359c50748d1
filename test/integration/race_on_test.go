//go:build race

package integration

// raceEnabled: this test binary runs with the race detector, so the
// edgehost and plugin binaries it starts must too, or the data-race check
// of edge.stop passes trivially (issue 14).
const raceEnabled = true
