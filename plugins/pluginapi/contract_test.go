package pluginapi_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgehost/edgehost/plugins/pluginapi"
	"github.com/edgehost/edgehost/plugins/pluginapi/internal/testimpl"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// inProcess connects a host-side *Client to the test plugin over an
// in-process gRPC connection (go-plugin's test transport).
func inProcess(t *testing.T, version string) *pluginapi.Client { return inProcessV(t, version) }

func inProcessB(b *testing.B) *pluginapi.Client { return inProcessV(b, "bench") }

// overDataPath makes inProcess offer the data path too, served in
// process: TestContractOverDataPath runs the feature tests with it.
var overDataPath bool

func inProcessV(t testing.TB, version string) *pluginapi.Client {
	t.Helper()
	impl := &testimpl.Plugin{Version: version}
	gp := &pluginapi.GRPCPlugin{Impl: impl}
	if overDataPath {
		gp.DataPath = pluginapi.DataPathVersion
	}
	client, _ := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{pluginapi.PluginKey: gp})
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(pluginapi.PluginKey)
	if err != nil {
		t.Fatalf("dispense: %v", err)
	}
	c, ok := raw.(*pluginapi.Client)
	if !ok {
		t.Fatalf("dispensed %T, want *pluginapi.Client", raw)
	}
	if overDataPath {
		c.UseDataPath(pluginapi.OfferInProcess(t, impl))
		if _, err := c.Info(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !c.DataPath() {
			t.Fatal("the data path was offered and served but not taken into use")
		}
		t.Cleanup(func() { c.Close() })
	}
	return c
}

// TestContractOverDataPath runs the tests of the calls that the data path
// carries over it instead of gRPC.
func TestContractOverDataPath(t *testing.T) {
	overDataPath = true
	defer func() { overDataPath = false }()
	for _, tc := range []struct {
		name string
		test func(*testing.T)
	}{
		{"Slicer", TestContractSlicer},
		{"ComputeEcho", TestContractComputeEcho},
		{"ComputeAbortedBody", TestContractComputeAbortedBody},
		{"Processor", TestContractProcessor},
		{"File", TestContractFile},
		{"Errors", TestContractErrors},
	} {
		t.Run(tc.name, tc.test)
	}
}

// TestContractErrors: a plugin's error reaches the host with its gRPC
// code and message, whichever transport carried it.
func TestContractErrors(t *testing.T) {
	c := inProcess(t, "v1")
	ctx := context.Background()
	_, err := c.Slicer().Decide(ctx, &pluginv1.DecideRequest{Request: &pluginv1.RequestHead{
		Headers: []*pluginv1.Header{{Name: "x-test-action", Values: []string{"sleep=bogus"}}},
	}})
	if status.Code(err) != codes.Unknown || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("decide error = %v, want Unknown with the parse error", err)
	}
	_, err = c.Processor().Process(ctx, &pluginv1.ProcessHead{Processor: "nope"}, strings.NewReader("x"))
	if err == nil || !strings.Contains(err.Error(), `no processor "nope"`) {
		t.Errorf("process error = %v", err)
	}
	var buf bytes.Buffer
	err = c.File().Read(ctx, &pluginv1.ReadRequest{Reader: "a", Length: 10}, &buf)
	if err != nil || buf.String() != "xxxxxxxxxx" {
		t.Errorf("read = %q, %v", buf.String(), err)
	}
	// A deadline crosses the boundary: the plugin's sleep ends with it.
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.Slicer().Decide(dctx, &pluginv1.DecideRequest{Request: &pluginv1.RequestHead{
		Headers: []*pluginv1.Header{{Name: "x-test-action", Values: []string{"sleep=10s"}}},
	}})
	if status.Code(err) != codes.DeadlineExceeded || time.Since(start) > 5*time.Second {
		t.Errorf("decide past its deadline = %v after %v, want DeadlineExceeded at once", err, time.Since(start))
	}
	// The connection is usable after all that.
	if _, err := c.Slicer().Decide(ctx, &pluginv1.DecideRequest{}); err != nil {
		t.Errorf("decide after errors: %v", err)
	}
}

func decodeBlock(t *testing.T, schema *pluginapi.Schema, src string) (cty.Value, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "test.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parse: %v", diags)
	}
	return hcldec.Decode(f.Body, schema.Spec(), nil)
}

func TestContractInfo(t *testing.T) {
	c := inProcess(t, "v7")
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := info.Name, "test"; got != want {
		t.Errorf("name = %q, want %q", got, want)
	}
	if got, want := info.Version, "v7"; got != want {
		t.Errorf("version = %q, want %q", got, want)
	}
	if got, want := info.ProtocolVersions, []int{pluginapi.ProtocolVersion}; !slices.Equal(got, want) {
		t.Errorf("protocol versions = %v, want %v", got, want)
	}
	if got, want := info.Services, []string{"compute", "file", "processor", "slicer"}; !slices.Equal(got, want) {
		t.Errorf("services = %v, want %v", got, want)
	}
	if len(info.Processors) != 1 || info.Processors[0].Name != "upper" || info.Processors[0].Stage != "delivery" {
		t.Errorf("processors = %+v", info.Processors)
	}
	// The schema survives the wire: the implied type is the plugin's.
	want := (&testimpl.Plugin{}).Schema().ImpliedType()
	if got := info.Schema.ImpliedType(); !got.Equals(want) {
		t.Errorf("schema type = %#v, want %#v", got, want)
	}
}

func TestContractConfigure(t *testing.T) {
	c := inProcess(t, "v1")
	ctx := context.Background()
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		src     string
		wantErr string // in diagnostics or Configure's error
	}{
		{"ok", "greeting = \"hi\"\nlimit = 3\nroute \"x\" { path = \"/x\" }\n", ""},
		{"unknown setting", "greeting = \"hi\"\ncolour = \"red\"\n", "Unsupported argument"},
		{"missing required", "limit = 3\n", "Missing required argument"},
		{"wrong type", "greeting = \"hi\"\nlimit = \"many\"\n", "a number is required"},
		{"refused by plugin", "greeting = \"fail\"\n", "greeting \"fail\" refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, diags := decodeBlock(t, info.Schema, tt.src)
			var err error
			if diags.HasErrors() {
				err = diags
			} else {
				err = c.Configure(ctx, pluginapi.Config{Value: v})
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestContractHealthShutdown(t *testing.T) {
	c := inProcess(t, "v1")
	ctx := context.Background()
	if err := c.Health(ctx); err != nil {
		t.Fatalf("health: %v", err)
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestContractSlicer(t *testing.T) {
	c := inProcess(t, "v3")
	ctx := context.Background()
	v, diags := decodeBlock(t, (&testimpl.Plugin{}).Schema(), `greeting = "hello"`)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if err := c.Configure(ctx, pluginapi.Config{Value: v}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Slicer().Decide(ctx, &pluginv1.DecideRequest{
		Stage:   pluginv1.DecideRequest_STAGE_FETCH,
		Request: &pluginv1.RequestHead{Method: "GET", Url: "/v", Headers: []*pluginv1.Header{{Name: "X-Slice", Values: []string{"yes"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetSlice() || resp.GetReason() != "v3 hello" {
		t.Errorf("decide = %v, want slice with reason %q", resp, "v3 hello")
	}
}

func TestContractComputeEcho(t *testing.T) {
	c := inProcess(t, "v1")
	for _, size := range []int{0, 1, pluginapi.ChunkSize, pluginapi.ChunkSize + 1, 1 << 20, 5 << 20} {
		body := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
		resp, err := c.Compute().Handle(context.Background(), &pluginapi.Request{
			Head: &pluginv1.RequestHead{Method: "POST", Url: "/echo", ContentLength: int64(size)},
			Body: bytes.NewReader(body),
		})
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("size %d: read: %v", size, err)
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("size %d: echoed %d bytes, not the same", size, len(got))
		}
		if resp.Head.GetStatus() != 200 || resp.Head.GetContentLength() != int64(size) {
			t.Errorf("size %d: head = %v", size, resp.Head)
		}
	}
}

// errReader fails after some bytes: the plugin must see an aborted body,
// and the echo carries the abort back to the host.
type errReader struct{ n int }

func (r *errReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errors.New("client went away")
	}
	n := min(len(p), r.n)
	r.n -= n
	return n, nil
}

func TestContractComputeAbortedBody(t *testing.T) {
	c := inProcess(t, "v1")
	resp, err := c.Compute().Handle(context.Background(), &pluginapi.Request{
		Head: &pluginv1.RequestHead{Method: "POST", Url: "/echo", ContentLength: -1},
		Body: &errReader{n: 1000},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if !errors.Is(err, pluginapi.ErrBodyAborted) || !strings.Contains(err.Error(), "client went away") {
		t.Fatalf("read error = %v, want ErrBodyAborted with the reason", err)
	}
	if len(got) != 1000 {
		t.Errorf("got %d bytes before the abort, want 1000", len(got))
	}
}

func TestContractProcessor(t *testing.T) {
	c := inProcess(t, "v1")
	resp, err := c.Processor().Process(context.Background(), &pluginv1.ProcessHead{
		Processor: "upper",
		Response:  &pluginv1.ResponseHead{Status: 200},
	}, strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != "HELLO" {
		t.Fatalf("process = %q, %v; want HELLO", got, err)
	}
}

func TestContractFile(t *testing.T) {
	c := inProcess(t, "v5")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var seen []string
	err := c.File().Watch(ctx, func(st *pluginv1.ReaderState) error {
		seen = append(seen, st.GetReader()+"="+st.GetMessage())
		if len(seen) == 2 {
			cancel()
		}
		return nil
	})
	if err != nil && !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("watch: %v", err)
	}
	if got, want := seen, []string{"a=v5", "b=v5"}; !slices.Equal(got, want) {
		t.Errorf("watch saw %v, want %v", got, want)
	}
	st, err := c.File().Check(context.Background(), "b")
	if err != nil || st.GetReader() != "b" {
		t.Fatalf("check = %v, %v", st, err)
	}
	if _, err := c.File().Check(context.Background(), "zz"); err == nil || !strings.Contains(err.Error(), `no reader "zz"`) {
		t.Errorf("check of an unknown reader: err = %v", err)
	}
	var buf bytes.Buffer
	if err := c.File().Read(context.Background(), &pluginv1.ReadRequest{Reader: "a", Length: 300 << 10}, &buf); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 300<<10 || strings.Trim(buf.String(), "x") != "" {
		t.Errorf("read %d bytes, want %d of 'x'", buf.Len(), 300<<10)
	}
}
