package integration

import (
	"io"
	"net"
	"net/url"
	"testing"
	"time"
)

func urlq(s string) string { return url.QueryEscape(s) }

// rawRequest writes raw bytes to addr and returns what came back.
func rawRequest(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte(raw))
	b, _ := io.ReadAll(io.LimitReader(c, 4096))
	return string(b)
}
