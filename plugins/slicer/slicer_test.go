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
	}
}
