package pluginapi

import (
	"context"
	"io"

	"github.com/zclconf/go-cty/cty"

	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// Plugin is what every edgehost plugin implements, and what the host calls
// on every plugin.
//
// Lifecycle: the host starts the process, calls Info, decodes the plugin's
// HCL block against Info.Schema, calls Configure once, then Health
// periodically until it calls Shutdown and stops the process. A new
// configuration or a new binary means a new process (a swap); a plugin is
// never reconfigured in place.
type Plugin interface {
	Info(ctx context.Context) (*Info, error)
	Configure(ctx context.Context, cfg Config) error
	Health(ctx context.Context) error
	Shutdown(ctx context.Context) error
}

// Info is a plugin's identity and what it offers.
type Info struct {
	// Name is the plugin's kind ("file", "slicer", "compute"); the block
	// label in the host's config names the instance.
	Name string
	// Version is the plugin binary's version, shown by `edgehost plugins`.
	Version string
	// ProtocolVersions and Services are filled in by Serve; what a plugin
	// sets there itself is ignored.
	ProtocolVersions []int
	Services         []string
	// DataPath is the version of the data path that the plugin serves (0:
	// none, every call goes over gRPC); filled in by Serve.
	DataPath   int
	Processors []ProcessorInfo
	// Schema describes the plugin's settings; nil accepts an empty block.
	Schema *Schema
}

// Has reports whether the plugin serves the feature service.
func (i *Info) Has(service string) bool {
	for _, s := range i.Services {
		if s == service {
			return true
		}
	}
	return false
}

// ProcessorInfo describes a body processor that a plugin offers
// (DESIGN §9).
type ProcessorInfo struct {
	Name         string
	Stage        string // "fetch" or "delivery"
	InputFormat  string
	OutputFormat string
}

// Config is a plugin's evaluated configuration.
type Config struct {
	// Value is the plugin's block decoded with Info.Schema.Spec(): an
	// object, or cty.EmptyObjectVal for a plugin without a schema.
	Value cty.Value
	// StateDir is a directory for the plugin's own files; it outlives the
	// process. Empty when the host has none.
	StateDir string
}

// Slicer decides whether an object is fetched in segments (DESIGN §6).
// Decide is idempotent: the host retries it once after a relaunch.
type Slicer interface {
	Decide(ctx context.Context, req *pluginv1.DecideRequest) (*pluginv1.DecideResponse, error)
}

// File serves named file readers (DESIGN §7).
type File interface {
	// Watch calls send with the state of every reader, then with every
	// change, until ctx ends or send fails. On the host side, Watch
	// follows the plugin across relaunches and swaps: it only returns when
	// ctx ends, and after each move it replays the full state.
	Watch(ctx context.Context, send func(*pluginv1.ReaderState) error) error
	// Check checks a reader now and returns its state.
	Check(ctx context.Context, reader string) (*pluginv1.ReaderState, error)
	// Read writes a reader's contents (or the range asked for) to w.
	Read(ctx context.Context, req *pluginv1.ReadRequest, w io.Writer) error
}

// Compute runs requests through tenants' programs (DESIGN §8). Handle is
// not idempotent: the host never retries it.
type Compute interface {
	Handle(ctx context.Context, req *Request) (*Response, error)
}

// ComputeStatus is what a compute plugin may add: each tenant's state
// (issue 12: GET /tenants). A Compute implementation without it answers
// Unimplemented.
type ComputeStatus interface {
	Status(ctx context.Context) ([]*pluginv1.TenantStatus, error)
}

// Processor runs a body through one of the processors that a plugin
// offers (DESIGN §9).
type Processor interface {
	Process(ctx context.Context, head *pluginv1.ProcessHead, body io.Reader) (*Response, error)
}

// Request is an HTTP request crossing the boundary.
type Request struct {
	Head *pluginv1.RequestHead
	// Body is read to EOF; a body that the sender ended with an error
	// trailer fails with ErrBodyAborted. Nil means no body.
	Body io.Reader
}

// Response is an HTTP response crossing the boundary.
type Response struct {
	Head *pluginv1.ResponseHead
	// Body is read to EOF. On the host side it must be closed (which also
	// cancels the call when it is not read to the end); on the plugin
	// side the adapter closes it when it implements io.Closer.
	Body io.ReadCloser
}
