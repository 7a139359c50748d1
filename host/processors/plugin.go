package processors

import (
	"context"
	"fmt"
	"io"
	"strings"

	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/plugins/pluginapi"
)

// Plugins' processors (DESIGN §9): a plugin declares each processor in
// its Info (name, stage, input and output format); a route asks for it
// as "PLUGIN.PROCESSOR" and the chain builder places it by those
// formats like any other. The body crosses to the plugin as a chunked
// stream (pluginapi's Processor service).

// resolvePlugins gives the route's plugin processors the formats their
// plugins declare, and their services.
func (rp *Route) resolvePlugins(plugins Plugins) error {
	resolve := func(refs []config.ProcessorRef, specs []Spec, side Side) error {
		for i, ref := range refs {
			plugin, name, ok := strings.Cut(ref.Name, ".")
			if !ok {
				continue
			}
			if plugins == nil {
				return fmt.Errorf("%s: processor %q: no plugins in this host", ref.Range, ref.Name)
			}
			info, err := plugins.Info(plugin)
			if err != nil {
				return fmt.Errorf("%s: processor %q: %w", ref.Range, ref.Name, err)
			}
			pi, ok := findProcessor(info, name)
			if !ok {
				return fmt.Errorf("%s: plugin %q offers no processor %q", ref.Range, plugin, name)
			}
			if want := map[Side]string{FetchSide: "fetch", DeliverSide: "delivery"}[side]; pi.Stage != "" && pi.Stage != want {
				return fmt.Errorf("%s: processor %q runs at %s, not %s", ref.Range, ref.Name, pi.Stage, want)
			}
			proc, err := plugins.Processor(plugin)
			if err != nil {
				return fmt.Errorf("%s: processor %q: %w", ref.Range, ref.Name, err)
			}
			specs[i].In, specs[i].Out = []Format{Format(pi.InputFormat)}, Format(pi.OutputFormat)
			if rp.procs == nil {
				rp.procs = map[string]pluginapi.Processor{}
			}
			rp.procs[ref.Name] = proc
		}
		return nil
	}
	if err := resolve(rp.cfg.Fetch, rp.fetch, FetchSide); err != nil {
		return err
	}
	return resolve(rp.cfg.Deliver, rp.deliver, DeliverSide)
}

func findProcessor(info *pluginapi.Info, name string) (pluginapi.ProcessorInfo, bool) {
	for _, p := range info.Processors {
		if p.Name == name {
			return p, true
		}
	}
	return pluginapi.ProcessorInfo{}, false
}

// pluginStage streams the body through a plugin's processor.
func pluginStage(ctx context.Context, proc pluginapi.Processor, name string) stage {
	_, pname, _ := strings.Cut(name, ".")
	return func(src io.Reader) io.Reader {
		return &lazy{open: func() (io.Reader, error) {
			resp, err := proc.Process(ctx, &pluginv1.ProcessHead{Processor: pname, Response: &pluginv1.ResponseHead{Status: 200, ContentLength: -1}}, src)
			if err != nil {
				return nil, fmt.Errorf("processor %s: %w", name, err)
			}
			if st := resp.Head.GetStatus(); st != 0 && st/100 != 2 {
				resp.Body.Close()
				return nil, fmt.Errorf("processor %s: status %d", name, st)
			}
			return &closeAtEnd{rc: resp.Body, name: name}, nil
		}}
	}
}

// closeAtEnd closes the plugin's stream once it ended, well or not.
type closeAtEnd struct {
	rc   io.ReadCloser
	name string
	done bool
}

func (c *closeAtEnd) Read(p []byte) (int, error) {
	if c.done {
		return 0, io.EOF
	}
	n, err := c.rc.Read(p)
	if err != nil {
		c.rc.Close()
		if err != io.EOF {
			return n, fmt.Errorf("processor %s: %w", c.name, err)
		}
		c.done = true
	}
	return n, err
}
