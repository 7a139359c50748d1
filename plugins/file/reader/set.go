package reader

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/edgehost/edgehost/plugins/pluginapi"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// SyncMarker is the message of the state with an empty reader name that
// follows the full state at the start of every watch stream (the
// protocol's, from pluginapi).
const SyncMarker = pluginapi.FileSyncMarker

// Errors of the Set.
var (
	// ErrUnknownReader: no reader or static root of that name.
	ErrUnknownReader = errors.New("unknown reader")
	// ErrDuplicate: a reader or static root name is used twice.
	ErrDuplicate = errors.New("duplicate reader name")
	// ErrBadName: a name is empty or holds a "/".
	ErrBadName = errors.New("invalid reader name")
)

// Set holds the readers and static roots of one plugin configuration and
// the state that watchers stream.
//
// Lifecycle: NewSet → AddReader / AddStatic → Start (first check of every
// reader, background checks) → Watch, Check, Read → Close.
type Set struct {
	log    hclog.Logger
	settle time.Duration

	readers map[string]*Reader
	statics map[string]*Static

	mu      sync.Mutex
	states  map[string]*entry
	gen     uint64
	changed chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type entry struct {
	st  *pluginv1.ReaderState
	gen uint64
}

// NewSet returns an empty set. settle 0 means DefaultSettle.
func NewSet(log hclog.Logger, settle time.Duration) *Set {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if settle <= 0 {
		settle = DefaultSettle
	}
	return &Set{log: log, settle: settle, readers: map[string]*Reader{}, statics: map[string]*Static{},
		states: map[string]*entry{}, changed: make(chan struct{})}
}

func (s *Set) checkName(name string) error {
	if name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("%w %q: a name is not empty and has no \"/\"", ErrBadName, name)
	}
	if _, dup := s.readers[name]; dup {
		return fmt.Errorf("%w %q", ErrDuplicate, name)
	}
	if _, dup := s.statics[name]; dup {
		return fmt.Errorf("%w %q", ErrDuplicate, name)
	}
	return nil
}

// AddReader adds a reader; call before Start.
func (s *Set) AddReader(cfg Config) (*Reader, error) {
	if err := s.checkName(cfg.Name); err != nil {
		return nil, err
	}
	if cfg.Path == "" {
		return nil, fmt.Errorf("reader %q: path is empty", cfg.Name)
	}
	settle := s.settle
	if cfg.TTL > 0 && cfg.TTL < settle {
		settle = cfg.TTL
	}
	r := &Reader{cfg: cfg, settle: settle, set: s, log: s.log}
	s.readers[cfg.Name] = r
	return r, nil
}

// Start checks every reader once (concurrently; each waits for a settling
// file) and starts the background checks, which end with Close.
func (s *Set) Start(ctx context.Context) {
	var wg sync.WaitGroup
	for _, r := range s.readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.CheckNow(ctx)
		}()
	}
	wg.Wait()
	bg, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	for _, r := range s.readers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			r.run(bg)
		}()
	}
	for _, st := range s.statics {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			st.run(bg)
		}()
	}
}

// Close stops the background checks and releases every mapping.
func (s *Set) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	for _, r := range s.readers {
		r.close()
	}
	for _, st := range s.statics {
		st.close()
	}
}

// put records a state; it reports whether the state changed, and wakes
// the watchers when it did.
func (s *Set) put(st *pluginv1.ReaderState) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.states[st.Reader]; e != nil && proto.Equal(e.st, st) {
		return false
	}
	s.gen++
	s.states[st.Reader] = &entry{st: st, gen: s.gen}
	close(s.changed)
	s.changed = make(chan struct{})
	return true
}

// state returns a reader's recorded state.
func (s *Set) state(name string) *pluginv1.ReaderState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.states[name]; e != nil {
		return e.st
	}
	return &pluginv1.ReaderState{Reader: name, Error: ErrCodeMissing, Message: "not checked yet"}
}

// since returns the states changed after gen, in the order they changed,
// the current generation and a channel closed at the next change.
func (s *Set) since(gen uint64) ([]*pluginv1.ReaderState, uint64, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var es []*entry
	for _, e := range s.states {
		if e.gen > gen {
			es = append(es, e)
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].gen < es[j].gen })
	out := make([]*pluginv1.ReaderState, len(es))
	for i, e := range es {
		out[i] = e.st
	}
	return out, s.gen, s.changed
}

// Watch sends every recorded state, the sync marker, then every change,
// until ctx ends (nil) or send fails.
func (s *Set) Watch(ctx context.Context, send func(*pluginv1.ReaderState) error) error {
	var gen uint64
	first := true
	for {
		batch, g, changed := s.since(gen)
		for _, st := range batch {
			if err := send(st); err != nil {
				return err
			}
		}
		if first {
			first = false
			if err := send(&pluginv1.ReaderState{Message: SyncMarker}); err != nil {
				return err
			}
		}
		gen = g
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// Check checks a reader now, or stats a file of a static root when name
// is "ROOT/PATH", and returns the state.
func (s *Set) Check(ctx context.Context, name string) (*pluginv1.ReaderState, error) {
	if r := s.readers[name]; r != nil {
		return r.CheckNow(ctx), nil
	}
	if root, rel, ok := strings.Cut(name, "/"); ok {
		if st := s.statics[root]; st != nil {
			return st.Stat(rel)
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownReader, name)
}

// Read reads a reader's contents, or a file of a static root ("ROOT/PATH").
func (s *Set) Read(ctx context.Context, req *pluginv1.ReadRequest, w interface{ Write([]byte) (int, error) }) error {
	name := req.GetReader()
	if r := s.readers[name]; r != nil {
		return r.Read(req.GetIdDigest(), req.GetOffset(), req.GetLength(), w)
	}
	if root, rel, ok := strings.Cut(name, "/"); ok {
		if st := s.statics[root]; st != nil {
			return st.Read(ctx, rel, req.GetIdDigest(), req.GetOffset(), req.GetLength(), w)
		}
	}
	return fmt.Errorf("%w %q", ErrUnknownReader, name)
}
