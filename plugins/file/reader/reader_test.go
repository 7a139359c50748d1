package reader

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgehost/edgehost/plugins/pluginapi"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

const testSettle = 20 * time.Millisecond

func write(t *testing.T, path, contents string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(contents), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, r *Reader) string {
	t.Helper()
	var buf bytes.Buffer
	if err := r.Read("", 0, -1, &buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	return buf.String()
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newSet(t *testing.T, cfgs ...Config) (*Set, []*Reader) {
	t.Helper()
	s := NewSet(nil, testSettle)
	var rs []*Reader
	for _, c := range cfgs {
		r, err := s.AddReader(c)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	s.Start(context.Background())
	t.Cleanup(s.Close)
	return s, rs
}

// TestReaderFollowsFile: rename over the path, in-place rewrite, delete
// (last contents kept), create again.
func TestReaderFollowsFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.txt")
	write(t, p, "one")
	s, rs := newSet(t, Config{Name: "a", Path: p, TTL: 30 * time.Millisecond, SHA256: true})
	r := rs[0]
	st := s.state("a")
	if st.GetError() != "" || st.GetSize() != 3 || len(st.GetIdDigest()) != 24 || len(st.GetSha256()) != 64 {
		t.Fatalf("first state = %v", st)
	}
	if got := read(t, r); got != "one" {
		t.Fatalf("contents = %q", got)
	}
	id1 := st.GetIdDigest()

	// Atomic replace (write elsewhere, rename over).
	write(t, p+".tmp", "two!")
	os.Rename(p+".tmp", p)
	eventually(t, "rename not picked up", func() bool { return s.state("a").GetSize() == 4 })
	if got := read(t, r); got != "two!" || s.state("a").GetIdDigest() == id1 {
		t.Fatalf("after rename: %q, id %s", got, s.state("a").GetIdDigest())
	}

	// In place.
	f, _ := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	f.WriteString("three")
	f.Close()
	eventually(t, "in-place rewrite not picked up", func() bool { return s.state("a").GetSize() == 5 })
	if got := read(t, r); got != "three" {
		t.Fatalf("after rewrite: %q", got)
	}

	// Deleted: not an error, the mapping serves on.
	os.Remove(p)
	eventually(t, "deletion not reported", func() bool { return s.state("a").GetDeleted() })
	if st := s.state("a"); st.GetError() != "" || st.GetSize() != 5 {
		t.Fatalf("deleted state = %v", st)
	}
	if got := read(t, r); got != "three" {
		t.Fatalf("after deletion: %q", got)
	}

	write(t, p, "four")
	eventually(t, "re-creation not picked up", func() bool { st := s.state("a"); return !st.GetDeleted() && st.GetSize() == 4 })
	if got := read(t, r); got != "four" {
		t.Fatalf("after re-creation: %q", got)
	}
}

// TestSettle drives check with explicit times: a change is published only
// once the same identity was seen Settle apart.
func TestSettle(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.txt")
	write(t, p, "v1")
	s := NewSet(nil, 100*time.Millisecond)
	r, _ := s.AddReader(Config{Name: "a", Path: p, TTL: time.Hour})
	t0 := time.Now()
	if !r.check(t0) {
		t.Fatal("first sight of a file is published at once; want it pending")
	}
	if !r.check(t0.Add(50 * time.Millisecond)) {
		t.Fatal("published before Settle passed")
	}
	// A writer is still at it: the identity moves, the wait starts over.
	write(t, p, "v1 and more")
	if !r.check(t0.Add(150 * time.Millisecond)) {
		t.Fatal("published an identity seen only once")
	}
	if s.state("a").GetIdDigest() != "" {
		t.Fatal("state published while pending")
	}
	if r.check(t0.Add(300 * time.Millisecond)) {
		t.Fatal("still pending after the identity was stable for Settle")
	}
	if got := read(t, r); got != "v1 and more" {
		t.Fatalf("contents = %q", got)
	}
	r.close()
}

func TestReaderErrors(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	write(t, filepath.Join(dir, "big"), strings.Repeat("x", 100))
	write(t, filepath.Join(dir, "locked"), "x")
	os.Chmod(filepath.Join(dir, "locked"), 0)
	tests := []struct {
		name, path string
		max        int64
		code, msg  string
	}{
		{"missing", "nope", 0, ErrCodeMissing, "no such file"},
		{"dir", "d", 0, ErrCodeNotRegular, "is a directory"},
		{"big", "big", 10, ErrCodeTooLarge, "100 bytes, more than max_size (10 bytes)"},
		{"locked", "locked", 0, ErrCodeUnreadable, "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "locked" && os.Geteuid() == 0 {
				t.Skip("root reads a mode 000 file")
			}
			s, rs := newSet(t, Config{Name: tt.name, Path: filepath.Join(dir, tt.path), MaxSize: tt.max})
			st := s.state(tt.name)
			if st.GetError() != tt.code || !strings.Contains(st.GetMessage(), tt.msg) {
				t.Errorf("state = %v; want %s (%s)", st, tt.code, tt.msg)
			}
			if err := rs[0].Read("", 0, -1, &bytes.Buffer{}); !errors.Is(err, ErrNoContents) {
				t.Errorf("read = %v, want ErrNoContents", err)
			}
		})
	}
}

func TestReadRanges(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a")
	write(t, p, "0123456789")
	s, rs := newSet(t, Config{Name: "a", Path: p})
	id := s.state("a").GetIdDigest()
	for _, tt := range []struct {
		off, n int64
		id     string
		want   string
		err    error
	}{
		{0, -1, "", "0123456789", nil},
		{2, 3, id, "234", nil},
		{8, 100, "", "89", nil},
		{10, -1, "", "", nil},
		{11, -1, "", "", ErrBadRange},
		{0, -1, "0000", "", ErrVersionGone},
	} {
		var buf bytes.Buffer
		err := rs[0].Read(tt.id, tt.off, tt.n, &buf)
		if !errors.Is(err, tt.err) || (err == nil && buf.String() != tt.want) {
			t.Errorf("Read(%q, %d, %d) = %q, %v; want %q, %v", tt.id, tt.off, tt.n, buf.String(), err, tt.want, tt.err)
		}
	}
}

// TestTruncatedUnderTheMapping: a file truncated in place while mapped
// faults on access; the read fails instead of the process.
func TestTruncatedUnderTheMapping(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a")
	write(t, p, strings.Repeat("x", 1<<20))
	_, rs := newSet(t, Config{Name: "a", Path: p, TTL: time.Hour})
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	err := rs[0].Read("", 0, -1, &bytes.Buffer{})
	if !errors.Is(err, ErrChangedUnderfoot) {
		t.Fatalf("read of a truncated mapping = %v, want ErrChangedUnderfoot", err)
	}
}

// TestWatch: full state, the sync marker, then changes, to every watcher.
func TestWatch(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a"), "a")
	write(t, filepath.Join(dir, "b"), "b")
	s, _ := newSet(t, Config{Name: "a", Path: filepath.Join(dir, "a"), TTL: 20 * time.Millisecond},
		Config{Name: "b", Path: filepath.Join(dir, "b"), TTL: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var got []*pluginv1.ReaderState
	done := make(chan error)
	go func() {
		done <- s.Watch(ctx, func(st *pluginv1.ReaderState) error {
			mu.Lock()
			got = append(got, st)
			mu.Unlock()
			return nil
		})
	}()
	snapshot := func() []*pluginv1.ReaderState {
		mu.Lock()
		defer mu.Unlock()
		return append([]*pluginv1.ReaderState(nil), got...)
	}
	eventually(t, "no sync marker", func() bool { return len(snapshot()) >= 3 })
	first := snapshot()
	names := map[string]bool{first[0].GetReader(): true, first[1].GetReader(): true}
	if !names["a"] || !names["b"] || first[2].GetReader() != "" || first[2].GetMessage() != SyncMarker {
		t.Fatalf("stream starts with %v", first)
	}
	os.Remove(filepath.Join(dir, "a"))
	eventually(t, "deletion not streamed", func() bool {
		g := snapshot()
		return len(g) > 3 && g[len(g)-1].GetReader() == "a" && g[len(g)-1].GetDeleted()
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("watch = %v", err)
	}
}

func TestStaticPaths(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "www")
	os.MkdirAll(filepath.Join(root, "sub"), 0o755)
	write(t, filepath.Join(root, "a.txt"), "a")
	write(t, filepath.Join(root, "sub", "b.txt"), "bb")
	write(t, filepath.Join(dir, "secret"), "secret")
	os.Symlink(filepath.Join(dir, "secret"), filepath.Join(root, "out"))
	os.Symlink("../../secret", filepath.Join(root, "sub", "up"))
	os.Symlink("sub/b.txt", filepath.Join(root, "in"))
	os.Symlink(dir, filepath.Join(root, "outdir"))
	s := NewSet(nil, testSettle)
	st, err := s.AddStatic(StaticConfig{Name: "w", Root: root, TTL: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.Start(context.Background())
	t.Cleanup(s.Close)
	tests := []struct {
		path string
		want string
		err  error
	}{
		{"a.txt", "a", nil},
		{"/sub/b.txt", "bb", nil},
		{"sub//b.txt", "bb", nil},
		{"in", "bb", nil},
		{"../secret", "", ErrOutside},
		{"sub/../../secret", "", ErrOutside},
		{"sub/../a.txt", "", ErrOutside},
		{"out", "", ErrOutside},
		{"sub/up", "", ErrOutside},
		{"outdir/secret", "", ErrOutside},
		{"sub", "", ErrNotFound},
		{"nope", "", ErrNotFound},
		{"a\x00b", "", ErrOutside},
	}
	for _, tt := range tests {
		state, err := s.Check(context.Background(), "w/"+strings.TrimPrefix(tt.path, "/"))
		if tt.path == "/sub/b.txt" {
			state, err = st.Stat(tt.path)
		}
		if !errors.Is(err, tt.err) {
			t.Errorf("Check(%q) = %v, %v; want %v", tt.path, state, err, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		var buf bytes.Buffer
		if err := st.Read(context.Background(), tt.path, state.GetIdDigest(), 0, -1, &buf); err != nil || buf.String() != tt.want {
			t.Errorf("Read(%q) = %q, %v; want %q", tt.path, buf.String(), err, tt.want)
		}
	}
	// A tracked file that changes is published under ROOT/PATH.
	write(t, filepath.Join(root, "a.txt"), "a, changed")
	eventually(t, "change of a tracked file not published", func() bool {
		return s.state("w/a.txt").GetSize() == int64(len("a, changed"))
	})
	if err := st.Read(context.Background(), "a.txt", "stale-id", 0, -1, &bytes.Buffer{}); !errors.Is(err, ErrVersionGone) {
		t.Errorf("read of a stale version = %v", err)
	}
}

// TestPluginOverGRPC runs the plugin in process over go-plugin's gRPC
// test connection: Configure from an HCL block decoded with the schema
// the plugin declares, then Watch, Check and Read as the host calls them.
func TestPluginOverGRPC(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.txt"), "hello")
	os.Mkdir(filepath.Join(dir, "www"), 0o755)
	client, _ := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{
		pluginapi.PluginKey: &pluginapi.GRPCPlugin{Impl: &Plugin{Version: "test", Settle: testSettle}},
	})
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(pluginapi.PluginKey)
	if err != nil {
		t.Fatal(err)
	}
	c := raw.(*pluginapi.Client)
	ctx := context.Background()
	info, err := c.Info(ctx)
	if err != nil || info.Name != "file" || !info.Has(pluginapi.ServiceFile) {
		t.Fatalf("info = %+v, %v", info, err)
	}
	src := `
settle = "30ms"
reader "a" {
  path   = "` + filepath.Join(dir, "a.txt") + `"
  ttl    = "50ms"
  sha256 = true
}
static "w" { root = "` + filepath.Join(dir, "www") + `" }
`
	f, diags := hclsyntax.ParseConfig([]byte(src), "p.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	v, diags := hcldec.Decode(f.Body, info.Schema.Spec(), nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if err := c.Configure(ctx, pluginapi.Config{Value: v}); err != nil {
		t.Fatal(err)
	}
	file := c.File()
	st, err := file.Check(ctx, "a")
	if err != nil || st.GetSize() != 5 || st.GetSha256() == "" {
		t.Fatalf("check = %v, %v", st, err)
	}
	var buf bytes.Buffer
	if err := file.Read(ctx, &pluginv1.ReadRequest{Reader: "a", Length: -1, IdDigest: st.GetIdDigest()}, &buf); err != nil || buf.String() != "hello" {
		t.Fatalf("read = %q, %v", buf.String(), err)
	}
	if err := file.Read(ctx, &pluginv1.ReadRequest{Reader: "a", Length: -1, IdDigest: "old"}, &buf); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("read of another version = %v, want FailedPrecondition", err)
	}
	if _, err := file.Check(ctx, "w/../a.txt"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("check outside the root = %v, want PermissionDenied", err)
	}
	if _, err := file.Check(ctx, "w/none"); status.Code(err) != codes.NotFound {
		t.Errorf("check of a missing static file = %v, want NotFound", err)
	}
	if _, err := file.Check(ctx, "zz"); status.Code(err) != codes.NotFound {
		t.Errorf("check of an unknown reader = %v, want NotFound", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	states := make(chan *pluginv1.ReaderState, 16)
	go file.Watch(wctx, func(st *pluginv1.ReaderState) error { states <- st; return nil })
	if st := <-states; st.GetReader() != "a" || st.GetSize() != 5 {
		t.Fatalf("first watched state = %v", st)
	}
	if st := <-states; st.GetMessage() != SyncMarker {
		t.Fatalf("second message = %v, want the sync marker", st)
	}
	write(t, filepath.Join(dir, "a.txt"), "hello, world")
	select {
	case st := <-states:
		if st.GetSize() != 12 {
			t.Fatalf("change = %v", st)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("change not streamed")
	}
}

// FuzzCleanPath: an accepted path is relative, clean and never climbs.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"a.txt", "/a/b", "../x", "a/../../b", "a//b/", ".", "", "a\\..\\b", "..."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := cleanPath(in)
		if err != nil {
			if !errors.Is(err, ErrOutside) {
				t.Fatalf("cleanPath(%q) = %v, not ErrOutside", in, err)
			}
			return
		}
		if strings.HasPrefix(out, "/") || out == "" {
			t.Fatalf("cleanPath(%q) = %q: not relative", in, out)
		}
		for _, seg := range strings.Split(out, "/") {
			if seg == ".." {
				t.Fatalf("cleanPath(%q) = %q climbs", in, out)
			}
		}
		if filepath.Clean(out) != out {
			t.Fatalf("cleanPath(%q) = %q is not clean", in, out)
		}
	})
}
