package pluginapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"

	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// Client is the host's side of one plugin process: the Plugin service and
// typed clients of the feature services, over one gRPC connection that
// every call shares (no per-call handshakes), and over the data path
// (datapath.go) when the host offered one and the plugin serves it.
type Client struct {
	plugin    pluginv1.PluginClient
	file      pluginv1.FileClient
	slicer    pluginv1.SlicerClient
	compute   pluginv1.ComputeClient
	processor pluginv1.ProcessorClient

	offerMu sync.Mutex
	offer   *DataPathOffer
	dp      atomic.Pointer[dataPath]
}

var _ Plugin = (*Client)(nil)

// NewClient returns a client over conn. go-plugin's dispense calls it;
// tests may call it with any connection to a plugin's gRPC server.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{
		plugin:    pluginv1.NewPluginClient(conn),
		file:      pluginv1.NewFileClient(conn),
		slicer:    pluginv1.NewSlicerClient(conn),
		compute:   pluginv1.NewComputeClient(conn),
		processor: pluginv1.NewProcessorClient(conn),
	}
}

// UseDataPath hands the client the data path offered to its plugin at
// launch. The next Info call takes it into use when the plugin serves the
// same version, and closes it when not. Close closes it.
func (c *Client) UseDataPath(o *DataPathOffer) {
	c.offerMu.Lock()
	defer c.offerMu.Unlock()
	if c.offer != nil {
		c.offer.Close()
	}
	c.offer = o
}

// DataPath reports whether calls go over the data path.
func (c *Client) DataPath() bool { return c.dp.Load() != nil }

// Close closes the data path: idle connections at once, the others when
// their calls end. The gRPC connection belongs to go-plugin.
func (c *Client) Close() error {
	c.offerMu.Lock()
	defer c.offerMu.Unlock()
	if c.offer != nil {
		c.offer.Close()
		c.offer = nil
	}
	if dp := c.dp.Load(); dp != nil {
		return dp.close()
	}
	return nil
}

// Info asks the plugin who it is and converts its schema; it negotiates
// the data path (see UseDataPath).
func (c *Client) Info(ctx context.Context) (*Info, error) {
	resp, err := c.plugin.Info(ctx, &pluginv1.InfoRequest{})
	if err != nil {
		return nil, err
	}
	c.offerMu.Lock()
	if o := c.offer; o != nil {
		c.offer = nil
		if resp.GetCapabilities().GetDataPath() == DataPathVersion {
			o.Started()
			c.dp.Store(&dataPath{ctl: o.host})
		} else {
			o.Close()
		}
	}
	c.offerMu.Unlock()
	schema, err := schemaFromProto(resp.GetConfigSchema())
	if err != nil {
		return nil, fmt.Errorf("plugin's config schema: %w", err)
	}
	info := &Info{
		Name:     resp.GetName(),
		Version:  resp.GetVersion(),
		Services: resp.GetCapabilities().GetServices(),
		DataPath: int(resp.GetCapabilities().GetDataPath()),
		Schema:   schema,
	}
	for _, v := range resp.GetProtocolVersions() {
		info.ProtocolVersions = append(info.ProtocolVersions, int(v))
	}
	for _, p := range resp.GetCapabilities().GetProcessors() {
		info.Processors = append(info.Processors, ProcessorInfo{
			Name: p.GetName(), Stage: p.GetStage(), InputFormat: p.GetInputFormat(), OutputFormat: p.GetOutputFormat(),
		})
	}
	return info, nil
}

// Configure sends the plugin its evaluated configuration.
func (c *Client) Configure(ctx context.Context, cfg Config) error {
	val, typ, err := encodeConfig(cfg.Value)
	if err != nil {
		return err
	}
	_, err = c.plugin.Configure(ctx, &pluginv1.ConfigureRequest{Config: val, ConfigType: typ, StateDir: cfg.StateDir})
	return err
}

// ErrUnhealthy is returned by Client.Health for a plugin that answers but
// reports itself unhealthy.
var ErrUnhealthy = errors.New("plugin reports unhealthy")

// Health asks the plugin whether it can serve.
func (c *Client) Health(ctx context.Context) error {
	resp, err := c.plugin.Health(ctx, &pluginv1.HealthRequest{})
	if err != nil {
		return err
	}
	if !resp.GetOk() {
		return fmt.Errorf("%w: %s", ErrUnhealthy, resp.GetMessage())
	}
	return nil
}

// Shutdown asks the plugin to release what it holds.
func (c *Client) Shutdown(ctx context.Context) error {
	_, err := c.plugin.Shutdown(ctx, &pluginv1.ShutdownRequest{})
	return err
}

// File returns the client of the File service (Read over the data path
// when there is one).
func (c *Client) File() File { return fileClient{c.file, c.dp.Load()} }

// Slicer returns the client of the Slicer service.
func (c *Client) Slicer() Slicer {
	if dp := c.dp.Load(); dp != nil {
		return dpSlicer{dp}
	}
	return slicerClient{c.slicer}
}

// Compute returns the client of the Compute service.
func (c *Client) Compute() Compute {
	if dp := c.dp.Load(); dp != nil {
		return dpCompute{dp, computeClient{c.compute}}
	}
	return computeClient{c.compute}
}

// Processor returns the client of the Processor service.
func (c *Client) Processor() Processor {
	if dp := c.dp.Load(); dp != nil {
		return dpProcessor{dp}
	}
	return processorClient{c.processor}
}

type dpSlicer struct{ d *dataPath }

func (s dpSlicer) Decide(ctx context.Context, req *pluginv1.DecideRequest) (*pluginv1.DecideResponse, error) {
	return s.d.decide(ctx, req)
}

// dpCompute sends Handle over the data path; Status, a control call,
// stays on gRPC.
type dpCompute struct {
	d    *dataPath
	ctrl computeClient
}

// Status asks the plugin for its tenants' state (gRPC).
func (c dpCompute) Status(ctx context.Context) ([]*pluginv1.TenantStatus, error) {
	return c.ctrl.Status(ctx)
}

func (c dpCompute) Handle(ctx context.Context, req *Request) (*Response, error) {
	if req == nil || req.Head == nil {
		return nil, errors.New("request without a head")
	}
	return c.d.stream(ctx, methodHandle, req.Head, req.Body)
}

type dpProcessor struct{ d *dataPath }

func (p dpProcessor) Process(ctx context.Context, head *pluginv1.ProcessHead, body io.Reader) (*Response, error) {
	return p.d.stream(ctx, methodProcess, head, body)
}

type slicerClient struct{ c pluginv1.SlicerClient }

func (s slicerClient) Decide(ctx context.Context, req *pluginv1.DecideRequest) (*pluginv1.DecideResponse, error) {
	return s.c.Decide(ctx, req)
}

type fileClient struct {
	c  pluginv1.FileClient
	dp *dataPath
}

func (f fileClient) Watch(ctx context.Context, send func(*pluginv1.ReaderState) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := f.c.Watch(ctx, &pluginv1.WatchRequest{})
	if err != nil {
		return err
	}
	for {
		st, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := send(st); err != nil {
			return err
		}
	}
}

func (f fileClient) Check(ctx context.Context, reader string) (*pluginv1.ReaderState, error) {
	return f.c.Check(ctx, &pluginv1.CheckRequest{Reader: reader})
}

func (f fileClient) Read(ctx context.Context, req *pluginv1.ReadRequest, w io.Writer) error {
	if f.dp != nil {
		return f.dp.read(ctx, req, w)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := f.c.Read(ctx, req)
	if err != nil {
		return err
	}
	for {
		c, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := w.Write(c.GetData()); err != nil {
			return err
		}
	}
}

type computeClient struct{ c pluginv1.ComputeClient }

// Handle sends the request head, then streams the body from a goroutine
// while it waits for the response head, so a program may answer before it
// has read the whole body. The goroutine ends with the call: when the body
// is sent, or when the response body is closed (which cancels the call).
func (cc computeClient) Handle(ctx context.Context, req *Request) (*Response, error) {
	if req == nil || req.Head == nil {
		return nil, errors.New("request without a head")
	}
	ctx, cancel := context.WithCancel(ctx)
	stream, err := cc.c.Handle(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	if err := stream.Send(&pluginv1.RequestPart{Part: &pluginv1.RequestPart_Head{Head: req.Head}}); err != nil {
		cancel()
		return nil, recvErr(stream, err)
	}
	go func() {
		err := sendBody(req.Body, ChunkSize,
			func(b []byte) error {
				return stream.Send(&pluginv1.RequestPart{Part: &pluginv1.RequestPart_Chunk{Chunk: &pluginv1.Chunk{Data: b}}})
			},
			func(t *pluginv1.Trailer) error {
				return stream.Send(&pluginv1.RequestPart{Part: &pluginv1.RequestPart_Trailer{Trailer: t}})
			})
		if err == nil {
			_ = stream.CloseSend()
		}
	}()
	return recvResponse(cancel, stream.Recv)
}

// Status asks for each tenant's state.
func (cc computeClient) Status(ctx context.Context) ([]*pluginv1.TenantStatus, error) {
	r, err := cc.c.Status(ctx, &pluginv1.ComputeStatusRequest{})
	if err != nil {
		return nil, err
	}
	return r.GetTenants(), nil
}

type processorClient struct{ c pluginv1.ProcessorClient }

func (pc processorClient) Process(ctx context.Context, head *pluginv1.ProcessHead, body io.Reader) (*Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := pc.c.Process(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	if err := stream.Send(&pluginv1.ProcessPart{Part: &pluginv1.ProcessPart_Head{Head: head}}); err != nil {
		cancel()
		return nil, recvErr(stream, err)
	}
	go func() {
		err := sendBody(body, ChunkSize,
			func(b []byte) error {
				return stream.Send(&pluginv1.ProcessPart{Part: &pluginv1.ProcessPart_Chunk{Chunk: &pluginv1.Chunk{Data: b}}})
			},
			func(t *pluginv1.Trailer) error {
				return stream.Send(&pluginv1.ProcessPart{Part: &pluginv1.ProcessPart_Trailer{Trailer: t}})
			})
		if err == nil {
			_ = stream.CloseSend()
		}
	}()
	return recvResponse(cancel, stream.Recv)
}

// recvErr returns the stream's real error when a Send failed: gRPC
// reports io.EOF from Send and the status from Recv.
func recvErr(stream interface{ RecvMsg(any) error }, sendErr error) error {
	if sendErr != io.EOF {
		return sendErr
	}
	var p pluginv1.ResponsePart
	if err := stream.RecvMsg(&p); err != nil && err != io.EOF {
		return err
	}
	return sendErr
}

// recvResponse reads the response head and returns a response whose body
// reads the rest of the stream.
func recvResponse(cancel context.CancelFunc, recv func() (*pluginv1.ResponsePart, error)) (*Response, error) {
	first, err := recv()
	if err == io.EOF {
		err = errors.New("plugin ended the response stream without a head")
	}
	if err != nil {
		cancel()
		return nil, err
	}
	head := first.GetHead()
	if head == nil {
		cancel()
		return nil, errors.New("response stream must start with a head")
	}
	body := &partReader{next: func() ([]byte, *pluginv1.Trailer, error) {
		p, err := recv()
		if err != nil {
			return nil, nil, err
		}
		switch x := p.GetPart().(type) {
		case *pluginv1.ResponsePart_Chunk:
			return x.Chunk.GetData(), nil, nil
		case *pluginv1.ResponsePart_Trailer:
			return nil, x.Trailer, nil
		}
		return nil, nil, errors.New("unexpected part in response body")
	}}
	return &Response{Head: head, Body: &streamBody{r: body, cancel: cancel}}, nil
}

// streamBody is a response body read from a stream; Close (or reading to
// the end) cancels the stream's context, which releases it.
type streamBody struct {
	r      io.Reader
	cancel context.CancelFunc
	once   sync.Once
}

func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil {
		b.once.Do(b.cancel)
	}
	return n, err
}

func (b *streamBody) Close() error {
	b.once.Do(b.cancel)
	return nil
}
