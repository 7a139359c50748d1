package slicing

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// verdictMemo keeps the slicer plugin's verdicts that it declared
// reusable (DecideResponse.shape_verdict): by the shape of the heads and a
// range of sizes, for one route of one config (a reload starts afresh).
// A cold miss whose verdict is known then decides without the round trip
// to the plugin process, which sat before its first byte (issue 15,
// item 4).
type verdictMemo struct {
	mu sync.Mutex
	m  map[verdictShape][]verdict
	n  int
}

// maxVerdicts bounds the verdicts kept per route; past it they are
// forgotten and asked again.
const maxVerdicts = 256

// verdictShape is what a reusable verdict may depend on besides the size,
// as the proto defines it.
type verdictShape struct {
	stage                          pluginv1.DecideRequest_Stage
	method                         string
	body, strongETag, lastModified bool
	status                         int
	encoding                       string
}

type verdict struct {
	min, max int64 // the sizes it holds for
	slice    bool
	reason   string
}

// err is nil for a yes, else the reason not to slice.
func (v verdict) err() error {
	if v.slice {
		return nil
	}
	return fmt.Errorf("%w: %s", errNotSliceable, v.reason)
}

// decideShape is the shape and size of a Decide about r and resp, read
// from the same fields the plugin is sent.
func decideShape(stage pluginv1.DecideRequest_Stage, r *http.Request, resp *http.Response) (verdictShape, int64) {
	etag := resp.Header.Get("Etag")
	size := resp.ContentLength
	if size < 0 {
		if cl := resp.Header.Get("Content-Length"); cl != "" {
			size, _ = strconv.ParseInt(cl, 10, 64)
		}
	}
	return verdictShape{stage: stage, method: r.Method,
		body:       r.ContentLength > 0 || r.Header.Get("Transfer-Encoding") != "",
		strongETag: etag != "" && !strings.HasPrefix(etag, "W/"), lastModified: resp.Header.Get("Last-Modified") != "",
		status: resp.StatusCode, encoding: resp.Header.Get("Content-Encoding")}, size
}

func (vm *verdictMemo) get(shape verdictShape, size int64) (verdict, bool) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	for _, v := range vm.m[shape] {
		if v.min <= size && size <= v.max {
			return v, true
		}
	}
	return verdict{}, false
}

func (vm *verdictMemo) put(shape verdictShape, v verdict) {
	if v.min > v.max {
		return
	}
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.m == nil || vm.n >= maxVerdicts {
		vm.m, vm.n = map[verdictShape][]verdict{}, 0
	}
	vm.m[shape] = append(vm.m[shape], v)
	vm.n++
}
