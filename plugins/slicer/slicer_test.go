package main

import (
	"context"
	"testing"

	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

func TestDecide(t *testing.T) {
	h := func(kv ...string) (hs []*pluginv1.Header) {
		for i := 0; i+1 < len(kv); i += 2 {
			hs = append(hs, &pluginv1.Header{Name: kv[i], Values: []string{kv[i+1]}})
		}
		return hs
	}
	get := &pluginv1.RequestHead{Method: "GET", ContentLength: -1}
	for _, tc := range []struct {
		name string
		req  *pluginv1.RequestHead
		resp *pluginv1.ResponseHead
		want bool
	}{
		{"eligible etag", get, &pluginv1.ResponseHead{Status: 200, ContentLength: 1 << 30, Headers: h("ETag", `"a"`)}, true},
		{"eligible last-modified", get, &pluginv1.ResponseHead{Status: 200, ContentLength: -1, Headers: h("Content-Length", "100", "Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")}, true},
		{"gzip", get, &pluginv1.ResponseHead{Status: 200, ContentLength: 100, Headers: h("ETag", `"a"`, "Content-Encoding", "gzip")}, false},
		{"no length", get, &pluginv1.ResponseHead{Status: 200, ContentLength: -1, Headers: h("ETag", `"a"`)}, false},
		{"no validator", get, &pluginv1.ResponseHead{Status: 200, ContentLength: 100}, false},
		{"weak etag only", get, &pluginv1.ResponseHead{Status: 200, ContentLength: 100, Headers: h("ETag", `W/"a"`)}, false},
		{"weak etag and last-modified", get, &pluginv1.ResponseHead{Status: 200, ContentLength: 100, Headers: h("ETag", `W/"a"`, "Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")}, true},
		{"not 200", get, &pluginv1.ResponseHead{Status: 206, ContentLength: 100, Headers: h("ETag", `"a"`)}, false},
		{"request body", &pluginv1.RequestHead{Method: "GET", ContentLength: 5}, &pluginv1.ResponseHead{Status: 200, ContentLength: 100, Headers: h("ETag", `"a"`)}, false},
		{"post", &pluginv1.RequestHead{Method: "POST", ContentLength: -1}, &pluginv1.ResponseHead{Status: 200, ContentLength: 100, Headers: h("ETag", `"a"`)}, false},
	} {
		got, err := (&Plugin{}).Decide(context.Background(), &pluginv1.DecideRequest{Request: tc.req, Response: tc.resp})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetSlice() != tc.want {
			t.Errorf("%s: slice=%v (%s), want %v", tc.name, got.GetSlice(), got.GetReason(), tc.want)
		}
		if !got.GetSlice() && got.GetReason() == "" {
			t.Errorf("%s: no reason given", tc.name)
		}
		// A verdict declared for a shape and a size range holds for
		// every size in that range: the host reuses it unasked.
		if !got.GetShapeVerdict() {
			t.Errorf("%s: verdict not declared reusable", tc.name)
			continue
		}
		size := responseSize(tc.resp)
		if size < got.GetSizeMin() || size > got.GetSizeMax() {
			t.Errorf("%s: size %d outside the verdict's range [%d, %d]", tc.name, size, got.GetSizeMin(), got.GetSizeMax())
		}
		for _, n := range []int64{got.GetSizeMin(), got.GetSizeMax(), max(got.GetSizeMin(), -1), min(got.GetSizeMax(), 1<<40)} {
			resp := &pluginv1.ResponseHead{Status: tc.resp.Status, ContentLength: n, Headers: tc.resp.Headers}
			if n <= 0 {
				resp.ContentLength = -1 // as a head without a length says it
			}
			other, _ := (&Plugin{}).Decide(context.Background(), &pluginv1.DecideRequest{Request: tc.req, Response: resp})
			if other.GetSlice() != got.GetSlice() && responseSize(resp) >= got.GetSizeMin() && responseSize(resp) <= got.GetSizeMax() {
				t.Errorf("%s: size %d in the range gets slice=%v, the verdict said %v", tc.name, n, other.GetSlice(), got.GetSlice())
			}
		}
	}
}

// min_size splits the sizes: the verdict below says so up to min_size-1,
// the one above from min_size on.
func TestDecideMinSizeRanges(t *testing.T) {
	p := &Plugin{}
	p.minSize.Store(1000)
	req := &pluginv1.RequestHead{Method: "GET", ContentLength: -1}
	etag := []*pluginv1.Header{{Name: "Etag", Values: []string{`"a"`}}}
	small, _ := p.Decide(context.Background(), &pluginv1.DecideRequest{Request: req, Response: &pluginv1.ResponseHead{Status: 200, ContentLength: 999, Headers: etag}})
	big, _ := p.Decide(context.Background(), &pluginv1.DecideRequest{Request: req, Response: &pluginv1.ResponseHead{Status: 200, ContentLength: 1000, Headers: etag}})
	if small.GetSlice() || small.GetSizeMax() != 999 || small.GetSizeMin() != 1 {
		t.Errorf("below min_size: slice=%v range [%d, %d]", small.GetSlice(), small.GetSizeMin(), small.GetSizeMax())
	}
	if !big.GetSlice() || big.GetSizeMin() != 1000 {
		t.Errorf("at min_size: slice=%v range from %d", big.GetSlice(), big.GetSizeMin())
	}
}
