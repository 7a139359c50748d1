package pluginapi_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/edgehost/edgehost/plugins/pluginapi"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// In-process baselines (go-plugin's test transport: a local TCP
// connection, no TLS, no subprocess) for the subprocess benchmarks of
// host/pluginhost.

func BenchmarkInProcessSmall(b *testing.B) {
	c := inProcessB(b)
	req := &pluginv1.DecideRequest{Request: &pluginv1.RequestHead{Method: "GET", Url: "/"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Slicer().Decide(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInProcessBody1MiB(b *testing.B) {
	c := inProcessB(b)
	const size = 1 << 20
	body := bytes.Repeat([]byte("edgehost"), size/8)
	rd := bytes.NewReader(body)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		resp, err := c.Compute().Handle(context.Background(), &pluginapi.Request{
			Head: &pluginv1.RequestHead{Method: "POST", Url: "/", ContentLength: size}, Body: rd,
		})
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != size {
			b.Fatalf("echoed %d bytes, %v", n, err)
		}
	}
}
