package pluginapi

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/hashicorp/go-plugin"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// GRPCPlugin is the go-plugin plugin of edgehost: on the plugin side it
// registers the services that Impl implements, on the host side (Impl nil)
// it dispenses a *Client. Serve and ClientPluginSets build it; tests use it
// with plugin.TestPluginGRPCConn.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Plugin
	// Version is the protocol version served; 0 means ProtocolVersion.
	Version int
	// DataPath is the data path version that Info reports (0: none).
	DataPath int
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the Plugin service and the feature services that
// the implementation serves.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	v := p.Version
	if v == 0 {
		v = ProtocolVersion
	}
	registerServices(s, p.Impl, v, p.DataPath)
	return nil
}

// GRPCClient returns the host's *Client over the plugin's connection.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return NewClient(conn), nil
}

// registerServices registers on s the services that impl implements.
func registerServices(s grpc.ServiceRegistrar, impl Plugin, version, dataPath int) {
	services := servicesOf(impl)
	pluginv1.RegisterPluginServer(s, &pluginServer{impl: impl, services: services, version: version, dataPath: dataPath})
	if f, ok := impl.(File); ok {
		pluginv1.RegisterFileServer(s, &fileServer{impl: f})
	}
	if sl, ok := impl.(Slicer); ok {
		pluginv1.RegisterSlicerServer(s, &slicerServer{impl: sl})
	}
	if c, ok := impl.(Compute); ok {
		pluginv1.RegisterComputeServer(s, &computeServer{impl: c})
	}
	if pr, ok := impl.(Processor); ok {
		pluginv1.RegisterProcessorServer(s, &processorServer{impl: pr})
	}
}

// servicesOf lists the feature services impl implements.
func servicesOf(impl Plugin) []string {
	var out []string
	if _, ok := impl.(File); ok {
		out = append(out, ServiceFile)
	}
	if _, ok := impl.(Slicer); ok {
		out = append(out, ServiceSlicer)
	}
	if _, ok := impl.(Compute); ok {
		out = append(out, ServiceCompute)
	}
	if _, ok := impl.(Processor); ok {
		out = append(out, ServiceProcessor)
	}
	sort.Strings(out)
	return out
}

// toStatus keeps gRPC status errors and turns other errors into Unknown,
// except context errors, which keep their meaning across the boundary.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch err {
	case context.Canceled:
		return status.Error(codes.Canceled, err.Error())
	case context.DeadlineExceeded:
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

type pluginServer struct {
	pluginv1.UnimplementedPluginServer
	impl     Plugin
	services []string
	version  int
	dataPath int
}

func (s *pluginServer) Info(ctx context.Context, _ *pluginv1.InfoRequest) (*pluginv1.InfoResponse, error) {
	info, err := s.impl.Info(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	schema, err := schemaToProto(info.Schema)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "config schema: %v", err)
	}
	resp := &pluginv1.InfoResponse{
		Name:             info.Name,
		Version:          info.Version,
		ProtocolVersions: []uint32{uint32(s.version)},
		Capabilities:     &pluginv1.Capabilities{Services: s.services, DataPath: uint32(s.dataPath)},
		ConfigSchema:     schema,
	}
	for _, p := range info.Processors {
		resp.Capabilities.Processors = append(resp.Capabilities.Processors, &pluginv1.ProcessorInfo{
			Name: p.Name, Stage: p.Stage, InputFormat: p.InputFormat, OutputFormat: p.OutputFormat,
		})
	}
	return resp, nil
}

func (s *pluginServer) Configure(ctx context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	v, err := decodeConfig(req.GetConfig(), req.GetConfigType())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	if err := s.impl.Configure(ctx, Config{Value: v, StateDir: req.GetStateDir()}); err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.ConfigureResponse{}, nil
}

func (s *pluginServer) Health(ctx context.Context, _ *pluginv1.HealthRequest) (*pluginv1.HealthResponse, error) {
	if err := s.impl.Health(ctx); err != nil {
		return &pluginv1.HealthResponse{Ok: false, Message: err.Error()}, nil
	}
	return &pluginv1.HealthResponse{Ok: true}, nil
}

func (s *pluginServer) Shutdown(ctx context.Context, _ *pluginv1.ShutdownRequest) (*pluginv1.ShutdownResponse, error) {
	if err := s.impl.Shutdown(ctx); err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.ShutdownResponse{}, nil
}

// encodeConfig puts a configuration value on the wire: cty JSON of the
// value and of its type.
func encodeConfig(v cty.Value) (val, typ []byte, err error) {
	if v == cty.NilVal || v.IsNull() {
		v = cty.EmptyObjectVal
	}
	if !v.IsWhollyKnown() {
		return nil, nil, fmt.Errorf("configuration has unknown values")
	}
	if typ, err = ctyjson.MarshalType(v.Type()); err != nil {
		return nil, nil, fmt.Errorf("configuration type: %w", err)
	}
	if val, err = ctyjson.Marshal(v, v.Type()); err != nil {
		return nil, nil, fmt.Errorf("configuration: %w", err)
	}
	return val, typ, nil
}

func decodeConfig(val, typ []byte) (cty.Value, error) {
	if len(typ) == 0 {
		return cty.EmptyObjectVal, nil
	}
	t, err := ctyjson.UnmarshalType(typ)
	if err != nil {
		return cty.NilVal, fmt.Errorf("configuration type: %w", err)
	}
	v, err := ctyjson.Unmarshal(val, t)
	if err != nil {
		return cty.NilVal, fmt.Errorf("configuration: %w", err)
	}
	return v, nil
}

type slicerServer struct {
	pluginv1.UnimplementedSlicerServer
	impl Slicer
}

func (s *slicerServer) Decide(ctx context.Context, req *pluginv1.DecideRequest) (*pluginv1.DecideResponse, error) {
	resp, err := s.impl.Decide(ctx, req)
	return resp, toStatus(err)
}

type fileServer struct {
	pluginv1.UnimplementedFileServer
	impl File
}

func (s *fileServer) Watch(_ *pluginv1.WatchRequest, stream grpc.ServerStreamingServer[pluginv1.ReaderState]) error {
	return toStatus(s.impl.Watch(stream.Context(), stream.Send))
}

func (s *fileServer) Check(ctx context.Context, req *pluginv1.CheckRequest) (*pluginv1.ReaderState, error) {
	st, err := s.impl.Check(ctx, req.GetReader())
	return st, toStatus(err)
}

func (s *fileServer) Read(req *pluginv1.ReadRequest, stream grpc.ServerStreamingServer[pluginv1.Chunk]) error {
	w := &chunkWriter{send: func(b []byte) error { return stream.Send(&pluginv1.Chunk{Data: b}) }}
	return toStatus(s.impl.Read(stream.Context(), req, w))
}

type computeServer struct {
	pluginv1.UnimplementedComputeServer
	impl Compute
}

func (s *computeServer) Handle(stream grpc.BidiStreamingServer[pluginv1.RequestPart, pluginv1.ResponsePart]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	head := first.GetHead()
	if head == nil {
		return status.Error(codes.InvalidArgument, "request stream must start with a head")
	}
	body := &partReader{next: func() ([]byte, *pluginv1.Trailer, error) {
		p, err := stream.Recv()
		if err != nil {
			return nil, nil, err
		}
		switch x := p.GetPart().(type) {
		case *pluginv1.RequestPart_Chunk:
			return x.Chunk.GetData(), nil, nil
		case *pluginv1.RequestPart_Trailer:
			return nil, x.Trailer, nil
		}
		return nil, nil, status.Error(codes.InvalidArgument, "unexpected part in request body")
	}}
	resp, err := s.impl.Handle(stream.Context(), &Request{Head: head, Body: body})
	if err != nil {
		return toStatus(err)
	}
	return sendResponse(resp, stream.Send)
}

func (s *computeServer) Status(ctx context.Context, _ *pluginv1.ComputeStatusRequest) (*pluginv1.ComputeStatusResponse, error) {
	st, ok := s.impl.(ComputeStatus)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this compute plugin reports no status")
	}
	ts, err := st.Status(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.ComputeStatusResponse{Tenants: ts}, nil
}

// sendResponse sends a response as head, chunks and trailer, and closes
// its body.
func sendResponse(resp *Response, send func(*pluginv1.ResponsePart) error) error {
	if resp == nil || resp.Head == nil {
		return status.Error(codes.Internal, "plugin returned a response without a head")
	}
	if resp.Body != nil {
		defer resp.Body.Close()
	}
	if err := send(&pluginv1.ResponsePart{Part: &pluginv1.ResponsePart_Head{Head: resp.Head}}); err != nil {
		return err
	}
	var body io.Reader
	if resp.Body != nil {
		body = resp.Body
	}
	return sendBody(body, ChunkSize,
		func(b []byte) error {
			return send(&pluginv1.ResponsePart{Part: &pluginv1.ResponsePart_Chunk{Chunk: &pluginv1.Chunk{Data: b}}})
		},
		func(t *pluginv1.Trailer) error {
			return send(&pluginv1.ResponsePart{Part: &pluginv1.ResponsePart_Trailer{Trailer: t}})
		})
}

type processorServer struct {
	pluginv1.UnimplementedProcessorServer
	impl Processor
}

func (s *processorServer) Process(stream grpc.BidiStreamingServer[pluginv1.ProcessPart, pluginv1.ResponsePart]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	head := first.GetHead()
	if head == nil {
		return status.Error(codes.InvalidArgument, "process stream must start with a head")
	}
	body := &partReader{next: func() ([]byte, *pluginv1.Trailer, error) {
		p, err := stream.Recv()
		if err != nil {
			return nil, nil, err
		}
		switch x := p.GetPart().(type) {
		case *pluginv1.ProcessPart_Chunk:
			return x.Chunk.GetData(), nil, nil
		case *pluginv1.ProcessPart_Trailer:
			return nil, x.Trailer, nil
		}
		return nil, nil, status.Error(codes.InvalidArgument, "unexpected part in process body")
	}}
	resp, err := s.impl.Process(stream.Context(), head, body)
	if err != nil {
		return toStatus(err)
	}
	return sendResponse(resp, stream.Send)
}
