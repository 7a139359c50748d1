package integration

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/demoorigin"
)

// Issue 13, item 11: the origin object changes (ETag and body) and
// changes back while readers fetch it whole, through a slow origin, so
// that work begun under each version lands late. Once the origin is
// stable again, no response is cut off; and every complete response,
// before or after, is byte-identical to one version, never a mix.
func TestRegressSliceOriginFlipFlop(t *testing.T) {
	const size = 4 << 20
	o := demoorigin.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	// While the object changes, the origin's answers (made when asked)
	// arrive up to 800 ms late: well after it is stable again.
	var unstable atomic.Bool
	// A short lifetime: readers keep meeting an expired object in
	// grace, revalidated in the background.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !unstable.Load() {
			w.Header().Set("Cache-Control", "max-age=1")
			o.ServeHTTP(w, r)
			return
		}
		answerLate(w, r, o, "max-age=1", func() { time.Sleep(time.Duration(100+rand.IntN(700)) * time.Millisecond) })
	}))
	defer srv.Close()
	e := newEdge(t, baseConfig(srv.URL, `
plugin "slicer" {}

route "/big" {
  backend = backend.origin
  grace   = "1h"
  slice {
    size       = "256KiB"
    stage      = "response"
    on_failure = "pass"
  }
}
`))
	path := fmt.Sprintf("/big/%d", size)
	v1 := o.Version()
	v2 := v1 + 1
	want := map[int][]byte{v1: bigBytes(0, size, v1), v2: bigBytes(0, size, v2)}
	wantStatus(t, e.get(path), 200)

	type outcome struct {
		start    time.Time
		status   int
		complete bool
		version  int // of a complete body, -1 for a mix
		n        int
		err      error
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	fetch := func() outcome {
		oc := outcome{start: time.Now(), version: -1}
		resp, err := client.Get(e.url(path))
		if err != nil {
			oc.err = err
			return oc
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		oc.status, oc.n, oc.err = resp.StatusCode, len(body), err
		oc.complete = err == nil && resp.StatusCode == 200 && len(body) == size
		for v, b := range want {
			if bytes.Equal(body, b[:min(len(body), len(b))]) && (len(body) == size || !oc.complete) {
				oc.version = v
			}
		}
		return oc
	}
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				oc := fetch()
				mu.Lock()
				outcomes = append(outcomes, oc)
				mu.Unlock()
			}
		}()
	}
	unstable.Store(true)
	for range 8 {
		time.Sleep(150 * time.Millisecond)
		o.SetVersion(v2)
		time.Sleep(150 * time.Millisecond)
		o.SetVersion(v1)
	}
	time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
	unstable.Store(false)
	stable := time.Now()
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()

	after, cut, failed := 0, 0, 0
	for _, oc := range outcomes {
		if oc.status != 200 {
			failed++ // an error before the first byte: the origin changed under it
		}
		if oc.complete && oc.version < 0 {
			t.Fatalf("a complete response mixed versions (started %v after stable)", oc.start.Sub(stable))
		}
		if oc.status == 200 && oc.version < 0 && oc.n > 0 {
			t.Fatalf("%d bytes of a cut-off response are no prefix of one version", oc.n)
		}
		if oc.start.After(stable) {
			after++
			if !oc.complete || oc.version != v1 {
				cut++
				t.Errorf("a response started %v after the origin was stable: complete %v, %d bytes, version %d, err %v",
					oc.start.Sub(stable), oc.complete, oc.n, oc.version, oc.err)
			}
		}
	}
	t.Logf("%d responses (%d errors before the first byte), %d started once the origin was stable, %d of them cut off or wrong",
		len(outcomes), failed, after, cut)
	if after == 0 {
		t.Fatal("no response started after the origin was stable")
	}
}

// Issue 13, item 11, step by step: a segment fetched while the origin
// served another version answers late, after the origin is back to the
// version of the stored meta object and a full GET of it has begun. That
// old answer may take the meta object away, or come to the full GET's
// own fetch of the segment (joined); the full GET still ends whole
// (before: cut off by a 409, "its meta object is gone or changed", or a
// 502 of the joined fetch).
func TestRegressSliceLateMismatchKeepsStableReader(t *testing.T) {
	for _, tc := range []struct {
		name string
		read int // bytes of the full GET read before the old answer arrives
	}{
		{"meta object taken away", 1 << 20},
		{"old segment fetch joined", 9*256<<10 + 128<<10},
	} {
		t.Run(tc.name, func(t *testing.T) { testLateMismatch(t, tc.read) })
	}
}

func testLateMismatch(t *testing.T, read int) {
	const size, seg = 4 << 20, 256 << 10
	o := demoorigin.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	var hold atomic.Bool
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hold.Load() || r.Header.Get("Range") == "" {
			o.ServeHTTP(w, r)
			return
		}
		answerLate(w, r, o, "", func() { arrived <- struct{}{}; <-release })
	}))
	defer srv.Close()
	e := newEdge(t, baseConfig(srv.URL, `
plugin "slicer" {}

route "/big" {
  backend = backend.origin
  slice {
    size  = "256KiB"
    stage = "response"
  }
}
`))
	path := fmt.Sprintf("/big/%d", size)
	v1 := o.Version()
	// The meta object of v1 and its first segment.
	wantStatus(t, e.get(path, "Range", "bytes=0-99"), 206)

	// The origin changes; a range in segment 10 misses, and its fetch
	// (If-Match v1) is answered by v2, late.
	v2 := o.BumpVersion()
	hold.Store(true)
	old := make(chan result, 1)
	go func() { old <- e.get(path, "Range", fmt.Sprintf("bytes=%d-%d", 10*seg, 10*seg+99)) }()
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the segment fetch did not reach the origin")
	}

	// The origin is back to v1 for good; a full GET begins.
	o.SetVersion(v1)
	hold.Store(false)
	resp, err := client.Get(e.url(path))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, read)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	// Now the old answer arrives (after the full GET's read-ahead of
	// the next segment has begun).
	time.Sleep(100 * time.Millisecond)
	close(release)
	if r := <-old; r.Status == 206 && bytes.Equal(r.Body, bigBytes(10*seg, 10*seg+100, v2)) {
		t.Fatal("the old range request got v2 bytes under v1's meta object")
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("the full GET begun once the origin was stable was cut off after %d bytes: %v", len(head)+len(rest), err)
	}
	if got := append(head, rest...); !bytes.Equal(got, bigBytes(0, size, v1)) {
		t.Fatalf("the full GET: %d bytes, not v1's", len(got))
	}
}

// answerLate has o answer r now (with Cache-Control cc unless "") and
// sends that answer once wait returns: the answer of the version the
// origin had when asked.
func answerLate(w http.ResponseWriter, r *http.Request, o *demoorigin.Origin, cc string, wait func()) {
	rec := httptest.NewRecorder()
	if cc != "" {
		rec.Header().Set("Cache-Control", cc)
	}
	o.ServeHTTP(rec, r)
	wait()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}
