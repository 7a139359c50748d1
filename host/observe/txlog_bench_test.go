package observe

import (
	"testing"
	"time"
)

// BenchmarkPublishParallel is the transaction log's cost per request when
// every core publishes (a cache hit publishes one record).
func BenchmarkPublishParallel(b *testing.B) {
	l := NewTxLog(4096)
	tx := Tx{ID: NewID(), Kind: "client", Start: time.Now(), Method: "GET", Host: "h", URL: "/bytes/1k", Status: 200, Cache: "hit"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Publish(tx)
		}
	})
}
