package main

import (
	"context"
	"io"
	"slices"
	"testing"
	"time"

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
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				resp, err := c.Compute().Handle(ctx, &pluginapi.Request{Head: head})
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(t0))
			}
			// p50 beside the mean: on a loaded machine a few scheduler
			// delays pull the mean up.
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		})
	}
}
