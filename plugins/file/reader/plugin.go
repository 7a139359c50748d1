package reader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sort"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgehost/edgehost/plugins/pluginapi"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// Plugin is the file plugin: pluginapi.Plugin and pluginapi.File over a
// Set. Its settings (the schema it declares in Info):
//
//	settle = "100ms"           # a change must be still this long
//	reader "NAME" {
//	  path     = "/abs/path"   # required
//	  ttl      = "1m"          # Go duration; how often it is checked
//	  sha256   = false         # also hash the contents
//	  max_size = 67108864      # bytes
//	}
//	static "NAME" {
//	  root     = "/abs/dir"    # required
//	  ttl      = "1m"          # how often served files are checked
//	  sha256   = false
//	  max_size = 67108864
//	}
//
// The host writes these blocks itself from its `file` blocks and its
// routes' `static` blocks (host/config/file.go); an operator may also
// write them inside `plugin "file" { }`.
type Plugin struct {
	// Version is what Info reports.
	Version string
	// Settle overrides DefaultSettle (tests).
	Settle time.Duration

	mu  sync.Mutex
	set *Set
}

// Info declares the plugin and its schema.
func (p *Plugin) Info(context.Context) (*pluginapi.Info, error) {
	return &pluginapi.Info{Name: "file", Version: p.Version, Schema: Schema()}, nil
}

// Schema is the plugin's settings schema.
func Schema() *pluginapi.Schema {
	common := []pluginapi.Attribute{
		{Name: "ttl", Type: cty.String, Doc: "how often the file is checked (Go duration)"},
		{Name: "sha256", Type: cty.Bool, Doc: "also compute a SHA-256 digest of the contents"},
		{Name: "max_size", Type: cty.Number, Doc: "largest file served, in bytes"},
	}
	return &pluginapi.Schema{Attributes: []pluginapi.Attribute{
		{Name: "settle", Type: cty.String, Doc: "how long a changed file must stay still before it is published (Go duration; default 100ms)"},
	}, Blocks: []pluginapi.Block{
		{TypeName: "reader", Nesting: pluginapi.NestingMap, LabelName: "name", Doc: "a named reader of one file",
			Body: &pluginapi.Schema{Attributes: append([]pluginapi.Attribute{{Name: "path", Type: cty.String, Required: true}}, common...)}},
		{TypeName: "static", Nesting: pluginapi.NestingMap, LabelName: "name", Doc: "a directory served on cache misses",
			Body: &pluginapi.Schema{Attributes: append([]pluginapi.Attribute{{Name: "root", Type: cty.String, Required: true}}, common...)}},
	}}
}

// Configure builds the set from the settings and checks every reader
// once. A reader whose file is missing or bad does not fail Configure: it
// reports its error in its state. A static root that cannot be opened
// does.
func (p *Plugin) Configure(ctx context.Context, cfg pluginapi.Config) error {
	readers, statics, err := Decode(cfg.Value)
	if err != nil {
		return err
	}
	settle := p.Settle
	if v := str(cfg.Value, "settle"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("settle %q: a positive Go duration", v)
		}
		settle = d
	}
	set := NewSet(pluginapi.Logger(), settle)
	for _, rc := range readers {
		if _, err := set.AddReader(rc); err != nil {
			set.Close()
			return err
		}
	}
	for _, sc := range statics {
		if _, err := set.AddStatic(sc); err != nil {
			set.Close()
			return err
		}
	}
	set.Start(ctx)
	p.mu.Lock()
	old := p.set
	p.set = set
	p.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Decode reads the reader and static blocks out of a configuration value.
func Decode(v cty.Value) ([]Config, []StaticConfig, error) {
	var readers []Config
	var statics []StaticConfig
	if v == cty.NilVal || v.IsNull() || !v.Type().IsObjectType() {
		return nil, nil, nil
	}
	blocks := func(typ string, fn func(name string, b cty.Value) error) error {
		if !v.Type().HasAttribute(typ) {
			return nil
		}
		m := v.GetAttr(typ)
		if m.IsNull() || !m.CanIterateElements() {
			return nil
		}
		var names []string
		vals := map[string]cty.Value{}
		for it := m.ElementIterator(); it.Next(); {
			k, b := it.Element()
			names = append(names, k.AsString())
			vals[k.AsString()] = b
		}
		sort.Strings(names)
		for _, n := range names {
			if err := fn(n, vals[n]); err != nil {
				return fmt.Errorf("%s %q: %w", typ, n, err)
			}
		}
		return nil
	}
	err := blocks("reader", func(name string, b cty.Value) error {
		c := Config{Name: name, Path: str(b, "path"), SHA256: boolean(b, "sha256")}
		var err error
		if c.TTL, err = duration(b); err != nil {
			return err
		}
		if c.MaxSize, err = size(b); err != nil {
			return err
		}
		readers = append(readers, c)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	err = blocks("static", func(name string, b cty.Value) error {
		c := StaticConfig{Name: name, Root: str(b, "root"), SHA256: boolean(b, "sha256")}
		var err error
		if c.TTL, err = duration(b); err != nil {
			return err
		}
		if c.MaxSize, err = size(b); err != nil {
			return err
		}
		statics = append(statics, c)
		return nil
	})
	return readers, statics, err
}

func attr(b cty.Value, name string) cty.Value {
	if !b.Type().IsObjectType() || !b.Type().HasAttribute(name) {
		return cty.NullVal(cty.DynamicPseudoType)
	}
	return b.GetAttr(name)
}

func str(b cty.Value, name string) string {
	v := attr(b, name)
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
		return ""
	}
	return v.AsString()
}

func boolean(b cty.Value, name string) bool {
	v := attr(b, name)
	return !v.IsNull() && v.IsKnown() && v.Type() == cty.Bool && v.True()
}

func duration(b cty.Value) (time.Duration, error) {
	s := str(b, "ttl")
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("ttl: %w", err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("ttl %q is not positive", s)
	}
	return d, nil
}

func size(b cty.Value) (int64, error) {
	v := attr(b, "max_size")
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.Number {
		return 0, nil
	}
	bf := v.AsBigFloat()
	n, acc := bf.Int64()
	if acc != big.Exact || n < 0 {
		return 0, fmt.Errorf("max_size %s is not a whole number of bytes", bf.String())
	}
	return n, nil
}

// Health reports the plugin healthy once configured.
func (p *Plugin) Health(context.Context) error { return nil }

// Shutdown stops the background checks and unmaps every file.
func (p *Plugin) Shutdown(context.Context) error {
	p.mu.Lock()
	set := p.set
	p.set = nil
	p.mu.Unlock()
	if set != nil {
		set.Close()
	}
	return nil
}

func (p *Plugin) current() (*Set, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.set == nil {
		return nil, status.Error(codes.FailedPrecondition, "file plugin is not configured")
	}
	return p.set, nil
}

// Watch streams the readers' states (pluginapi.File).
func (p *Plugin) Watch(ctx context.Context, send func(*pluginv1.ReaderState) error) error {
	set, err := p.current()
	if err != nil {
		return err
	}
	return set.Watch(ctx, send)
}

// Check checks a reader, or stats a static file, now (pluginapi.File).
func (p *Plugin) Check(ctx context.Context, name string) (*pluginv1.ReaderState, error) {
	set, err := p.current()
	if err != nil {
		return nil, err
	}
	st, err := set.Check(ctx, name)
	return st, grpcError(err)
}

// Read streams contents (pluginapi.File).
func (p *Plugin) Read(ctx context.Context, req *pluginv1.ReadRequest, w io.Writer) error {
	set, err := p.current()
	if err != nil {
		return err
	}
	return grpcError(set.Read(ctx, req, w))
}

// grpcError gives the host a status code it can act on.
func grpcError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrOutside):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrUnknownReader):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrVersionGone), errors.Is(err, ErrChangedUnderfoot), errors.Is(err, ErrNoContents):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ErrBadRange):
		return status.Error(codes.OutOfRange, err.Error())
	}
	return err
}

var (
	_ pluginapi.Plugin = (*Plugin)(nil)
	_ pluginapi.File   = (*Plugin)(nil)
)
