// Package testimpl is the plugin that the plugin runtime's tests serve,
// in process (contract tests) and as the testplugin subprocess. It serves
// every feature service with trivial behaviour.
//
// Requests steer it at run time through the x-test-action header of a
// Slicer.Decide call: "exit" (the process exits), "hang-health" (Health
// stops answering), "sleep=DURATION" (Decide answers late), "env" (Decide's
// reason is the process environment).
package testimpl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/edgehost/edgehost/plugins/pluginapi"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// Plugin is the test plugin. Its zero value is ready; Version is what Info
// reports.
type Plugin struct {
	Version    string
	mu         sync.Mutex
	greeting   string
	hangHealth atomic.Bool
}

func (p *Plugin) Info(context.Context) (*pluginapi.Info, error) {
	return &pluginapi.Info{
		Name:    "test",
		Version: p.Version,
		Processors: []pluginapi.ProcessorInfo{
			{Name: "upper", Stage: "delivery", InputFormat: "text", OutputFormat: "text"},
		},
		Schema: p.Schema(),
	}, nil
}

// Schema is the test plugin's config schema.
func (p *Plugin) Schema() *pluginapi.Schema {
	return &pluginapi.Schema{
		Attributes: []pluginapi.Attribute{
			{Name: "greeting", Type: cty.String, Required: true},
			{Name: "limit", Type: cty.Number},
			{Name: "tags", Type: cty.List(cty.String)},
		},
		Blocks: []pluginapi.Block{{
			TypeName: "route", Nesting: pluginapi.NestingMap, LabelName: "name",
			Body: &pluginapi.Schema{Attributes: []pluginapi.Attribute{{Name: "path", Type: cty.String, Required: true}}},
		}},
	}
}

func (p *Plugin) Configure(_ context.Context, cfg pluginapi.Config) error {
	g := cfg.Value.GetAttr("greeting").AsString()
	if g == "fail" {
		return errors.New("greeting \"fail\" refused")
	}
	p.mu.Lock()
	p.greeting = g
	p.mu.Unlock()
	pluginapi.Logger().Info("configured", "greeting", g, "version", p.Version)
	return nil
}

func (p *Plugin) Health(ctx context.Context) error {
	if p.hangHealth.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (p *Plugin) Shutdown(context.Context) error {
	pluginapi.Logger().Info("shutting down", "version", p.Version)
	return nil
}

func header(h []*pluginv1.Header, name string) string {
	for _, x := range h {
		if strings.EqualFold(x.GetName(), name) && len(x.GetValues()) > 0 {
			return x.GetValues()[0]
		}
	}
	return ""
}

func (p *Plugin) Decide(ctx context.Context, req *pluginv1.DecideRequest) (*pluginv1.DecideResponse, error) {
	p.mu.Lock()
	g := p.greeting
	p.mu.Unlock()
	resp := &pluginv1.DecideResponse{
		Slice:  header(req.GetRequest().GetHeaders(), "x-slice") == "yes",
		Reason: p.Version + " " + g,
	}
	action := header(req.GetRequest().GetHeaders(), "x-test-action")
	switch {
	case action == "exit":
		go func() {
			time.Sleep(10 * time.Millisecond)
			os.Exit(9)
		}()
	case action == "hang-health":
		p.hangHealth.Store(true)
	case action == "env":
		resp.Reason = strings.Join(os.Environ(), "\n")
	case strings.HasPrefix(action, "sleep="):
		d, err := time.ParseDuration(strings.TrimPrefix(action, "sleep="))
		if err != nil {
			return nil, err
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return resp, nil
}

// Handle echoes the request body.
func (p *Plugin) Handle(_ context.Context, req *pluginapi.Request) (*pluginapi.Response, error) {
	body := req.Body
	if body == nil {
		body = strings.NewReader("")
	}
	return &pluginapi.Response{
		Head: &pluginv1.ResponseHead{
			Status:        200,
			Headers:       []*pluginv1.Header{{Name: "x-version", Values: []string{p.Version}}},
			ContentLength: req.Head.GetContentLength(),
		},
		Body: io.NopCloser(body),
	}, nil
}

// Process upper-cases a text body.
func (p *Plugin) Process(_ context.Context, head *pluginv1.ProcessHead, body io.Reader) (*pluginapi.Response, error) {
	if head.GetProcessor() != "upper" {
		return nil, fmt.Errorf("no processor %q", head.GetProcessor())
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	return &pluginapi.Response{
		Head: head.GetResponse(),
		Body: io.NopCloser(strings.NewReader(strings.ToUpper(string(b)))),
	}, nil
}

// Watch reports two readers whose message is the plugin's version, then
// waits.
func (p *Plugin) Watch(ctx context.Context, send func(*pluginv1.ReaderState) error) error {
	for _, r := range []string{"a", "b"} {
		if err := send(&pluginv1.ReaderState{Reader: r, Message: p.Version}); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

func (p *Plugin) Check(_ context.Context, reader string) (*pluginv1.ReaderState, error) {
	if reader != "a" && reader != "b" {
		return nil, fmt.Errorf("no reader %q", reader)
	}
	return &pluginv1.ReaderState{Reader: reader, Message: p.Version}, nil
}

// Read writes length bytes of 'x'.
func (p *Plugin) Read(_ context.Context, req *pluginv1.ReadRequest, w io.Writer) error {
	n := req.GetLength()
	if n < 0 {
		n = 1 << 20
	}
	_, err := io.CopyN(w, repeatReader('x'), n)
	return err
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

var (
	_ pluginapi.Plugin    = (*Plugin)(nil)
	_ pluginapi.Slicer    = (*Plugin)(nil)
	_ pluginapi.Compute   = (*Plugin)(nil)
	_ pluginapi.File      = (*Plugin)(nil)
	_ pluginapi.Processor = (*Plugin)(nil)
)
