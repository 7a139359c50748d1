package main

import (
	"context"
	"io"
	"testing"

	"github.com/edgehost/edgehost/plugins/pluginapi"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// BenchmarkPluginRoundTrip is one request through the real plugin
// subprocess to the hello program and back, as the host makes it (over
// the data path): the sandbox's round trip plus the host→plugin hop.
func BenchmarkPluginRoundTrip(b *testing.B) {
	for _, tc := range []struct{ name, extra string }{
		{"process/ephemeral", ""},
		{"process/kept", "  ephemeral = false"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := start(b, tenantBlock("hello", "hello", tc.extra+"\n  concurrency = 1"))
			head := &pluginv1.RequestHead{Method: "GET", Url: "/bench", Host: "example.test", Tenant: "hello", ContentLength: -1}
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				resp, err := c.Compute().Handle(ctx, &pluginapi.Request{Head: head})
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
