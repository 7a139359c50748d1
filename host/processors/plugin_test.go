package processors

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"

	"github.com/edgehost/edgehost/plugins/pluginapi"
)

// fakePlugins offers "conv.upper" (text → text, delivery) and
// "conv.avif" (image/jpeg → image/avif, fetch).
type fakePlugins struct{}

func (fakePlugins) Info(name string) (*pluginapi.Info, error) {
	if name != "conv" {
		return nil, errors.New("no such plugin")
	}
	return &pluginapi.Info{Name: "conv", Processors: []pluginapi.ProcessorInfo{
		{Name: "upper", Stage: "delivery", InputFormat: "text", OutputFormat: "text"},
		{Name: "avif", Stage: "fetch", InputFormat: "image/jpeg", OutputFormat: "image/avif"},
	}}, nil
}

func (fakePlugins) Processor(string) (pluginapi.Processor, error) { return upper{}, nil }

type upper struct{}

func (upper) Process(_ context.Context, head *pluginv1.ProcessHead, body io.Reader) (*pluginapi.Response, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	return &pluginapi.Response{Head: &pluginv1.ResponseHead{Status: 200},
		Body: io.NopCloser(bytes.NewReader(bytes.ToUpper(b)))}, nil
}

func TestPluginProcessor(t *testing.T) {
	cfg := loadConfig(t, `fetch = ["conv.avif"]
deliver = ["conv.upper"]`)
	p := New(Options{Plugins: fakePlugins{}})
	if _, err := p.Attach(cfg, cfg.Routes[0]); err != nil {
		t.Fatal(err)
	}
	rp := NewRoute(cfg.Routes[0])
	if err := rp.resolvePlugins(fakePlugins{}); err != nil {
		t.Fatal(err)
	}
	if got := rp.Chain(DeliverSide, Gzip, []string{"identity"}).String(); got != "beresp(gzip) > gunzip > conv.upper" {
		t.Errorf("deliver chain %s", got)
	}
	if got := rp.Chain(FetchSide, "image/jpeg", nil).String(); got != "beresp(image/jpeg) > conv.avif" {
		t.Errorf("fetch chain %s", got)
	}
	if got := rp.Chain(FetchSide, Text, nil); len(got.Warnings()) != 1 {
		t.Errorf("avif on text: %s", got)
	}
	c := rp.Chain(DeliverSide, Gzip, []string{"identity"})
	r, _ := http.NewRequest("GET", "http://x/", nil)
	out, err := io.ReadAll(rp.pipeline(context.Background(), nil, r, c, bytes.NewReader(gzipOf([]byte("hello")))))
	if err != nil || string(out) != "HELLO" {
		t.Fatalf("got %q, %v", out, err)
	}

	// A processor the plugin does not offer, or at the wrong stage, is
	// a config error that names where it was asked for.
	for _, procs := range []string{`fetch = ["conv.nope"]`, `fetch = ["conv.upper"]`, `deliver = ["other.x"]`} {
		cfg := loadConfig(t, procs)
		_, err := p.Attach(cfg, cfg.Routes[0])
		if err == nil || !strings.Contains(err.Error(), "p.hcl:6,") {
			t.Errorf("%s: err = %v", procs, err)
		}
	}
	if _, err := New(Options{}).Attach(cfg, cfg.Routes[0]); err == nil {
		t.Error("plugin processor without plugins attached")
	}
}
