package integration

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/demoorigin"
)

// sliceConfig is the core acceptance config plus the slicer's, as the
// slicer issue writes it, with 1 MiB segments so tests stay small.
func sliceConfig(originURL, stage, onFailure string) string {
	return baseConfig(originURL, fmt.Sprintf(`
plugin "slicer" {}

route "/big" {
  backend = backend.origin
  slice {
    size       = "1MiB"
    stage      = %q
    on_failure = %q
  }
}
`, stage, onFailure))
}

func bigBytes(start, end int64, version int) []byte {
	b := make([]byte, end-start)
	for i := range b {
		b[i] = demoorigin.BigByte(start+int64(i), version)
	}
	return b
}

func bigOriginBytes(o *origin) int64 { return o.Stats().BytesByPrefix["/big"] }

func TestSliceColdAndWarmRange(t *testing.T) {
	for _, stage := range []string{"fetch", "response"} {
		t.Run(stage, func(t *testing.T) { testColdAndWarmRange(t, stage) })
	}
}

func testColdAndWarmRange(t *testing.T, stage string) {
	o := startOrigin(t)
	e := newEdge(t, sliceConfig(o.URL, stage, "pass"))
	v := o.Version()
	r := e.get("/big/16m", "Range", "bytes=5000000-5100000")
	wantStatus(t, r, 206)
	if !bytes.Equal(r.Body, bigBytes(5000000, 5100001, v)) {
		t.Fatal("cold range: wrong bytes")
	}
	if got := r.Header.Get("Content-Range"); got != "bytes 5000000-5100000/16777216" {
		t.Fatalf("Content-Range %q", got)
	}
	// The segment goes on filling after the response (the client asked
	// for 100 kB of it): wait until it is stored, so that its bytes count
	// as the cold request's, and so that the warm request does not join
	// its fetch rather than hit.
	for deadline := time.Now().Add(5 * time.Second); e.metric("edgehost_objects_stored_total") < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	cold := bigOriginBytes(o)
	if cold > 1<<20 {
		t.Fatalf("cold range fetched %d origin bytes, want at most one 1 MiB segment", cold)
	}
	if cold == 0 {
		t.Fatal("no origin bytes for a cold range")
	}
	// Warm: zero origin bytes.
	r = e.get("/big/16m", "Range", "bytes=5000000-5100000")
	wantStatus(t, r, 206)
	if got := bigOriginBytes(o); got != cold {
		t.Fatalf("warm range cost %d origin bytes", got-cold)
	}
	if e.metric("edgehost_segment_hits_total") < 1 || e.metric("edgehost_segment_misses_total") < 1 {
		t.Error("segment counters not updated")
	}
	// The one segment fetched is all that the origin sent.
	if got := e.metric("edgehost_segment_fetched_bytes_total"); got != float64(cold) {
		t.Errorf("edgehost_segment_fetched_bytes_total = %v, want the %d bytes the origin sent", got, cold)
	}
	// The log groups the segment subrequest under its client request.
	lg := string(e.admin("GET", "/log", "").Body)
	if !strings.Contains(lg, `"kind":"segment"`) {
		t.Errorf("no segment subrequest in the transaction log")
	}
}

func TestSliceFullGetAndRestart(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, sliceConfig(o.URL, "response", "pass"))
	v := o.Version()
	want := sha256.Sum256(bigBytes(0, 5254225, v))
	r := e.get("/big/5254225")
	wantStatus(t, r, 200)
	if sha256.Sum256(r.Body) != want {
		t.Fatalf("full GET: %d bytes, checksum differs", len(r.Body))
	}
	r = e.get("/big/5254225", "Range", "bytes=0-9,-10")
	wantStatus(t, r, 206)
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/byteranges") {
		t.Fatalf("multi-range over a sliced object: %q", r.Header.Get("Content-Type"))
	}
	r = e.get("/big/5254225", "Range", "bytes=99999999-")
	wantStatus(t, r, 416)
	time.Sleep(300 * time.Millisecond)
	e.stop()
	before := bigOriginBytes(o)
	e.start()
	r = e.get("/big/5254225")
	wantStatus(t, r, 200)
	if sha256.Sum256(r.Body) != want {
		t.Fatal("after restart: checksum differs")
	}
	if got := bigOriginBytes(o); got != before {
		t.Fatalf("after restart the sliced object cost %d origin bytes", got-before)
	}
	// Purging the meta object wipes its segments.
	e.admin("POST", "/purge?url="+urlq("http://"+e.HTTP+"/big/5254225"), "")
	e.get("/big/5254225", "Range", "bytes=0-99")
	// The origin counts a write once it has returned, which may be after
	// edgehost has passed its first bytes on: wait a little for the count.
	for deadline := time.Now().Add(2 * time.Second); bigOriginBytes(o) == before && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if bigOriginBytes(o) == before {
		t.Fatal("segments survived the purge of their meta object")
	}
}

func TestSliceOriginChangesMidway(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, sliceConfig(o.URL, "fetch", "pass"))
	v1 := o.Version()
	resp, err := client.Get(e.url("/big/8m"))
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 1<<20)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	v2 := o.BumpVersion()
	rest, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	got := append(head, rest...)
	if err == nil {
		// Only acceptable if every byte is of one version.
		if !bytes.Equal(got, bigBytes(0, 8<<20, v1)) {
			t.Fatal("a complete response mixed two versions of the object")
		}
	} else if !bytes.Equal(got, bigBytes(0, int64(len(got)), v1)) {
		t.Fatal("bytes of the new version were sent after the old one")
	}
	// The next request sees the new version, whole.
	r := e.get("/big/8m")
	wantStatus(t, r, 200)
	if !bytes.Equal(r.Body, bigBytes(0, 8<<20, v2)) {
		t.Fatal("after the change: not the new version")
	}
}

func TestSliceNotEligible(t *testing.T) {
	for _, tc := range []struct {
		onFailure string
		status    int
		stored    bool
	}{
		{"pass", 200, false},
		{"fail", 503, false},
		{"retry", 200, true},
	} {
		t.Run(tc.onFailure, func(t *testing.T) {
			for _, stage := range []string{"response", "fetch"} {
				o := startOrigin(t)
				e := newEdge(t, sliceConfig(o.URL, stage, tc.onFailure))
				// No Content-Length: not eligible.
				r := e.get("/big/300k?nolength=1")
				wantStatus(t, r, tc.status)
				if tc.status == 200 && !bytes.Equal(r.Body, bigBytes(0, 300<<10, o.Version())) {
					t.Fatalf("%s/%s: wrong body", stage, tc.onFailure)
				}
				r = e.get("/big/300k?nolength=1")
				if hit := strings.Contains(r.Header.Get("Cache-Status"), "hit"); hit != tc.stored {
					t.Fatalf("%s/%s: second request Cache-Status %q, stored=%v", stage, tc.onFailure, r.Header.Get("Cache-Status"), tc.stored)
				}
				e.stop()
			}
		})
	}
}

func TestSliceRandomRanges(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, sliceConfig(o.URL, "response", "pass"))
	const size = 3<<20 + 777
	v := o.Version()
	full := bigBytes(0, size, v)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 40; i++ {
		a := rng.Int64N(size)
		b := a + rng.Int64N(2<<20)
		hdr := fmt.Sprintf("bytes=%d-%d", a, b)
		switch rng.IntN(4) {
		case 0:
			hdr = fmt.Sprintf("bytes=-%d", rng.Int64N(size+10)+1)
		case 1:
			hdr = fmt.Sprintf("bytes=%d-", a)
		}
		req, _ := http.NewRequest("GET", e.url(fmt.Sprintf("/big/%d", size)), nil)
		req.Header.Set("Range", hdr)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 206 {
			t.Fatalf("%s: %d %v", hdr, resp.StatusCode, err)
		}
		var s, en, total int64
		fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &s, &en, &total)
		if total != size || !bytes.Equal(body, full[s:en+1]) {
			t.Fatalf("%s: Content-Range %q, body mismatch", hdr, resp.Header.Get("Content-Range"))
		}
	}
}

// TestSliceMalformedRanges: garbage Range headers on a sliced object get
// what they get on any object: the whole body (ignored) or a 416.
func TestSliceMalformedRanges(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, sliceConfig(o.URL, "response", "pass"))
	const size = 2<<20 + 5
	path := fmt.Sprintf("/big/%d", size)
	full := bigBytes(0, size, o.Version())
	many := "bytes=" + strings.Repeat("1-2,", 200) + "3-4"
	for _, h := range []string{"bytes=abc", "bytes=5-1", "bytes=,,,", "bytes=99999999999999999999-", "pages=1-2", "bytes=-0", many, "bytes= 1 - 2", "bytes=0-0,-1"} {
		r := e.get(path, "Range", h)
		switch r.Status {
		case 200:
			if !bytes.Equal(r.Body, full) {
				t.Fatalf("%q: 200 with a wrong body", h)
			}
		case 206:
			if len(r.Body) == 0 {
				t.Fatalf("%q: empty 206", h)
			}
		case 416:
			if got := r.Header.Get("Content-Range"); got != fmt.Sprintf("bytes */%d", size) {
				t.Fatalf("%q: 416 with Content-Range %q", h, got)
			}
		default:
			t.Fatalf("%q: status %d", h, r.Status)
		}
	}
}
