package store_test

import (
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/edgehost/edgehost/host/store"
)

// The cache layer's use of the store: put a response, read it back, purge
// it by tag.
func Example() {
	dir, err := os.MkdirTemp("", "edgehost-store")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := store.Open(filepath.Join(dir, "cache.db"), store.Options{
		MaxBytes: 1 << 30,         // storage.disk
		Timeout:  2 * time.Second, // then "cache.db is in use by another edgehost (pid N)"
		NoSync:   true,            // cache.db is rebuildable: no fsync per commit
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	now := time.Now()
	err = s.Put(&store.Record{
		Key: "example.com/img/cat.png", Variant: "", Status: 200,
		Header:  http.Header{"Content-Type": {"image/png"}, "Etag": {`"1"`}},
		Body:    []byte("\x89PNG..."),
		Created: now, Expires: now.Add(2 * time.Minute), StaleUntil: now.Add(time.Hour), KeepUntil: now.Add(2 * time.Hour),
		Tags: []string{"cats"},
	})
	if err != nil {
		log.Fatal(err)
	}

	r, err := s.Get("example.com/img/cat.png", "")
	switch {
	case errors.Is(err, store.ErrNotFound):
		fmt.Println("miss")
	case errors.Is(err, store.ErrCorrupt):
		fmt.Println("dropped as corrupt: refetch")
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Println(r.Status, r.Header.Get("Content-Type"), len(r.Body))
	}

	keys, err := s.PurgeTag("cats")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("purged", keys)
	// Output:
	// 200 image/png 7
	// purged [example.com/img/cat.png]
}
