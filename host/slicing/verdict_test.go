package slicing

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/server"
	"github.com/edgehost/edgehost/plugins/pluginapi"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// countingSlicer says yes from min on, reusable when shape is set, and
// counts its calls.
type countingSlicer struct {
	calls atomic.Int32
	min   int64
	shape bool
}

func (c *countingSlicer) Decide(_ context.Context, req *pluginv1.DecideRequest) (*pluginv1.DecideResponse, error) {
	c.calls.Add(1)
	if req.GetResponse().GetContentLength() < c.min {
		return &pluginv1.DecideResponse{Reason: "small", ShapeVerdict: c.shape, SizeMin: 1, SizeMax: c.min - 1}, nil
	}
	return &pluginv1.DecideResponse{Slice: true, ShapeVerdict: c.shape, SizeMin: c.min, SizeMax: 1 << 62}, nil
}

type onePlugin struct{ s pluginapi.Slicer }

func (p onePlugin) Slicer(string) (pluginapi.Slicer, error) { return p.s, nil }

// Issue 15, item 4: a verdict the plugin declares reusable is asked once
// per shape and size range; a different shape, a size outside the range
// or a verdict not declared reusable is asked again.
func TestVerdictReused(t *testing.T) {
	for _, shape := range []bool{true, false} {
		plug := &countingSlicer{min: 1000, shape: shape}
		st := &sliceStep{sl: New(Options{Plugins: onePlugin{plug}}), route: &config.Route{Prefix: "/big"}, cfg: &config.Slice{Plugin: "slicer", Stage: "response"}}
		req, _ := http.NewRequest("GET", "http://x/big/1", nil)
		fx := &server.Fetch{Ctx: context.Background(), Tx: &server.Txn{}, Req: req}
		resp := func(size int64, etag string) *http.Response {
			return &http.Response{StatusCode: 200, ContentLength: size, Header: http.Header{"Etag": {etag}}}
		}
		asks := []struct {
			resp  *http.Response
			slice bool
			asked bool // with a reusable verdict
		}{
			{resp(5000, `"a"`), true, true},
			{resp(7000, `"b"`), true, false},   // same shape, in range
			{resp(500, `"c"`), false, true},    // out of the yes range
			{resp(999, `"d"`), false, false},   // in the no range
			{resp(5000, `W/"e"`), true, true},  // another shape: weak ETag
			{resp(6000, `W/"f"`), true, false}, // that shape again
		}
		for i, a := range asks {
			before := plug.calls.Load()
			err := st.askSlicer(fx, a.resp)
			if got := err == nil; got != a.slice || (err != nil && !errors.Is(err, errNotSliceable)) {
				t.Fatalf("reusable=%v ask %d: err %v, want slice=%v", shape, i, err, a.slice)
			}
			asked := plug.calls.Load() > before
			if want := a.asked || !shape; asked != want {
				t.Errorf("reusable=%v ask %d: plugin asked %v, want %v", shape, i, asked, want)
			}
		}
	}
}

// The memo keeps at most maxVerdicts verdicts.
func TestVerdictMemoBounded(t *testing.T) {
	var vm verdictMemo
	for i := range 3 * maxVerdicts {
		vm.put(verdictShape{status: i}, verdict{min: 0, max: 1, slice: true})
		if vm.n > maxVerdicts {
			t.Fatalf("%d verdicts kept, bound %d", vm.n, maxVerdicts)
		}
	}
	if _, ok := vm.get(verdictShape{status: 3*maxVerdicts - 1}, 1); !ok {
		t.Fatal("the latest verdict was forgotten")
	}
	vm.put(verdictShape{}, verdict{min: 5, max: 4})
	if _, ok := vm.get(verdictShape{}, 4); ok {
		t.Fatal("an empty range was kept")
	}
}
