package pluginapi

import (
	"net"
	"testing"
)

// OfferInProcess serves impl's data path in this process, as Serve does in
// a plugin, and returns the offer a host-side Client takes with
// UseDataPath (then Info negotiates it).
func OfferInProcess(t testing.TB, impl Plugin) *DataPathOffer {
	t.Helper()
	host, child, err := socketPair()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.FileConn(child)
	child.Close()
	if err != nil {
		t.Fatal(err)
	}
	ctl := conn.(*net.UnixConn)
	go newDPServer(impl).serve(ctl)
	t.Cleanup(func() { ctl.Close() })
	return &DataPathOffer{host: host.(*net.UnixConn)}
}
