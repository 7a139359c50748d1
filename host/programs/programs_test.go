package programs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
)

var built struct {
	once            sync.Once
	static, dynamic []byte
	static2         []byte
	err             error
}

// binaries compiles a static and a dynamic C program (gcc with a static
// libc: `make programs` installs them).
func binaries(t testing.TB) (static, static2, dynamic []byte) {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "programs-test")
		if err != nil {
			built.err = err
			return
		}
		defer os.RemoveAll(dir)
		src := filepath.Join(dir, "p.c")
		os.WriteFile(src, []byte("int main(void){return 0;}\n"), 0o644)
		src2 := filepath.Join(dir, "q.c")
		os.WriteFile(src2, []byte("int main(void){return 1;}\n"), 0o644)
		for _, c := range [][]string{
			{"gcc", "-static", "-o", filepath.Join(dir, "static"), src},
			{"gcc", "-static", "-o", filepath.Join(dir, "static2"), src2},
			{"gcc", "-o", filepath.Join(dir, "dynamic"), src},
		} {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				built.err = errors.New(string(out) + err.Error())
				return
			}
		}
		built.static, _ = os.ReadFile(filepath.Join(dir, "static"))
		built.static2, _ = os.ReadFile(filepath.Join(dir, "static2"))
		built.dynamic, _ = os.ReadFile(filepath.Join(dir, "dynamic"))
	})
	if built.err != nil {
		t.Fatalf("building test programs: %v", built.err)
	}
	return built.static, built.static2, built.dynamic
}

func TestCheckELF(t *testing.T) {
	static, _, dynamic := binaries(t)
	tests := []struct {
		name string
		data []byte
		want string // "" = accepted
	}{
		{"static", static, ""},
		{"dynamic", dynamic, "dynamically linked (interpreter /lib64/ld-linux-x86-64.so.2)"},
		{"text", []byte("#!/bin/sh\necho hi\n"), "not an ELF file"},
		{"truncated", static[:40], "not an ELF file"},
		{"arm", withMachine(static, 183), "built for EM_AARCH64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckELF(bytes.NewReader(tt.data))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckELF = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrBadProgram) {
				t.Fatalf("CheckELF = %v, want an ErrBadProgram saying %q", err, tt.want)
			}
		})
	}
}

func withMachine(b []byte, m uint16) []byte {
	c := bytes.Clone(b)
	c[18], c[19] = byte(m), byte(m>>8)
	return c
}

// fakeSwap records the program that Adjust hands out for a tenant, and
// fails when told.
type fakeSwap struct {
	s    *Store
	fail error
	seen []string
}

func (f *fakeSwap) swap(_ context.Context, tenant string) (time.Duration, error) {
	v, err := f.s.Adjust("compute", cfgValue(tenant, "from-config"))
	if err != nil {
		return 0, err
	}
	p := v.GetAttr("tenant").Index(cty.StringVal(tenant)).GetAttr("program").AsString()
	f.seen = append(f.seen, p)
	if f.fail != nil {
		return 0, f.fail
	}
	return time.Millisecond, nil
}

func cfgValue(tenant, program string) cty.Value {
	return cty.ObjectVal(map[string]cty.Value{
		"self_socket": cty.StringVal("x"),
		"tenant": cty.MapVal(map[string]cty.Value{
			tenant: cty.ObjectVal(map[string]cty.Value{"program": cty.StringVal(program), "concurrency": cty.NumberIntVal(2)}),
		}),
	})
}

// programOf is what Adjust hands out for tenant now.
func programOf(t *testing.T, s *Store, tenant string) string {
	t.Helper()
	v, err := s.Adjust("compute", cfgValue(tenant, "from-config"))
	if err != nil {
		t.Fatal(err)
	}
	return v.GetAttr("tenant").Index(cty.StringVal(tenant)).GetAttr("program").AsString()
}

func sameFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes (%v), want the %d bytes of the version", path, len(got), err, len(want))
	}
}

func TestUploadRejectRollbackReopen(t *testing.T) {
	static, static2, _ := binaries(t)
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f := &fakeSwap{s: s}
	if got := programOf(t, s, "a"); got != "from-config" {
		t.Fatalf("before any version, Adjust gives %q", got)
	}

	v1, err := s.Upload(ctx, "a", bytes.NewReader(static), "admin test", f.swap)
	if err != nil || v1.Version != 1 || v1.Status != StatusLive {
		t.Fatalf("upload 1: %+v %v", v1, err)
	}
	sameFile(t, programOf(t, s, "a"), static)

	// A failing swap: recorded, the old version stays handed out.
	f.fail = errors.New("program exited before asking for a request (output: boom)")
	_, err = s.Upload(ctx, "a", bytes.NewReader(static2), "admin test", f.swap)
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("failing upload: %v", err)
	}
	if f.seen[len(f.seen)-1] == programOf(t, s, "a") {
		t.Fatalf("the swap was not given the new version")
	}
	sameFile(t, programOf(t, s, "a"), static)
	// Not an ELF: refused before it is stored.
	if _, err := s.Upload(ctx, "a", strings.NewReader("hello"), "admin test", f.swap); !errors.Is(err, ErrBadProgram) {
		t.Fatalf("text upload: %v", err)
	}
	f.fail = nil
	v3, err := s.Upload(ctx, "a", bytes.NewReader(static2), "admin test", f.swap)
	if err != nil || v3.Version != 3 {
		t.Fatalf("upload 3: %+v %v", v3, err)
	}
	sameFile(t, programOf(t, s, "a"), static2)

	vs, _ := s.Versions("a")
	if len(vs) != 3 || vs[0].Version != 3 || !vs[0].Live || vs[1].Status != StatusRejected || vs[1].Kept ||
		!strings.Contains(vs[1].Error, "boom") || vs[2].Status != StatusRetired || !vs[2].Kept {
		t.Fatalf("versions: %+v", vs)
	}
	// Rollback without a version: the previous live one (1).
	if v, err := s.Rollback(ctx, "a", 0, f.swap); err != nil || v.Version != 1 {
		t.Fatalf("rollback: %+v %v", v, err)
	}
	sameFile(t, programOf(t, s, "a"), static)
	if _, err := s.Rollback(ctx, "a", 2, f.swap); !errors.Is(err, ErrNoVersion) {
		t.Fatalf("rollback to a rejected version: %v", err)
	}
	if _, err := s.Rollback(ctx, "a", 1, f.swap); err == nil || !strings.Contains(err.Error(), "already live") {
		t.Fatalf("rollback to the live version: %v", err)
	}
	s.Close()

	// Reopen with the program files gone: rebuilt from programs.db.
	if err := os.RemoveAll(filepath.Join(dir, "programs")); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sameFile(t, programOf(t, s, "a"), static)
	if v, ok, _ := s.Live("a"); !ok || v.Version != 1 {
		t.Fatalf("live after reopen: %+v %v", v, ok)
	}
}

func TestBounds(t *testing.T) {
	static, static2, _ := binaries(t)
	s, err := Open(t.TempDir(), Options{MaxSize: int64(len(static) + 10), KeepBinaries: 2, KeepHistory: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f := &fakeSwap{s: s}
	ctx := context.Background()
	big := append(bytes.Clone(static), make([]byte, 11)...)
	if _, err := s.Upload(ctx, "a", bytes.NewReader(big), "t", f.swap); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize upload: %v", err)
	}
	for i := 0; i < 5; i++ {
		b := static
		if i%2 == 1 {
			b = static2
		}
		if _, err := s.Upload(ctx, "a", bytes.NewReader(b), "t", f.swap); err != nil {
			t.Fatal(err)
		}
	}
	vs, _ := s.Versions("a")
	var kept []uint64
	for _, v := range vs {
		if v.Kept {
			kept = append(kept, v.Version)
		}
	}
	if len(vs) != 3 || vs[0].Version != 5 || len(kept) != 2 || kept[0] != 5 || kept[1] != 4 {
		t.Fatalf("after 5 uploads with KeepHistory 3, KeepBinaries 2: %d records, kept %v", len(vs), kept)
	}
	if _, err := s.Rollback(ctx, "a", 3, f.swap); !errors.Is(err, ErrNoVersion) || !strings.Contains(err.Error(), "no longer kept") {
		t.Fatalf("rollback to a pruned version: %v", err)
	}
}

func TestDamagedFileStopsOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "programs.db")
	junk := bytes.Repeat([]byte("not a bbolt file "), 1000)
	os.WriteFile(path, junk, 0o600)
	_, err := Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "never discarded") {
		t.Fatalf("Open of a damaged file: %v", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, junk) {
		t.Fatalf("the damaged file was changed or moved")
	}
}

func TestPrepareFromConfig(t *testing.T) {
	static, static2, _ := binaries(t)
	dir := t.TempDir()
	prog := filepath.Join(dir, "prog")
	os.WriteFile(prog, static, 0o755)
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Prepare(map[string]string{"a": prog})
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, programOf(t, s, "a"), static)
	c.Done(nil, func(string) time.Duration { return 2 * time.Millisecond })
	if v, ok, _ := s.Live("a"); !ok || v.Version != 1 || !strings.HasPrefix(v.From, "config ") || time.Duration(v.BootTime) != 2*time.Millisecond {
		t.Fatalf("live after the first load: %+v", v)
	}
	// An upload, then the same config again: the upload stays live.
	if _, err := s.Upload(context.Background(), "a", bytes.NewReader(static2), "t", (&fakeSwap{s: s}).swap); err != nil {
		t.Fatal(err)
	}
	c, _ = s.Prepare(map[string]string{"a": prog})
	c.Done(nil, nil)
	if v, _, _ := s.Live("a"); v.Version != 2 {
		t.Fatalf("an unchanged config file replaced the upload: live %d", v.Version)
	}
	// A changed file that fails to load: rejected, the upload stays live.
	os.WriteFile(prog, append(bytes.Clone(static), 0), 0o755)
	c, _ = s.Prepare(map[string]string{"a": prog})
	c.Done(errors.New("boot failed"), nil)
	if v, _, _ := s.Live("a"); v.Version != 2 {
		t.Fatalf("live %d after a failed load", v.Version)
	}
	sameFile(t, programOf(t, s, "a"), static2)
	// A config file that is not a program: an error naming it.
	os.WriteFile(prog, []byte("text"), 0o755)
	if _, err := s.Prepare(map[string]string{"a": prog}); !errors.Is(err, ErrBadProgram) || !strings.Contains(err.Error(), prog) {
		t.Fatalf("Prepare of a text file: %v", err)
	}
}

// FuzzCheckELF: any bytes get an answer, never a panic.
func FuzzCheckELF(f *testing.F) {
	static, _, dynamic := binaries(f)
	f.Add(static[:min(len(static), 4096)])
	f.Add(dynamic[:min(len(dynamic), 4096)])
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		CheckELF(bytes.NewReader(data))
	})
}
