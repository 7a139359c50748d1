package files

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/plugins/pluginapi"
	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// filePlugins lists the plugins that cfg's readers and static routes use.
func filePlugins(cfg *config.Config) map[string][]string {
	out := map[string][]string{}
	for _, fc := range cfg.Files {
		out[fc.Plugin] = append(out[fc.Plugin], fc.Name)
	}
	for _, rt := range cfg.Routes {
		if rt.Static != nil {
			if _, ok := out[rt.Static.Plugin]; !ok {
				out[rt.Static.Plugin] = nil
			}
		}
	}
	return out
}

// Watch follows the file plugins that cfg's readers and static routes
// use: one Watch stream per plugin, started once and ended by Close. It
// waits at most wait for each plugin's first full state, so that the
// first requests find the readers loaded, and returns an error naming the
// plugins that did not answer in time (they are still followed). Call it
// with every config the server takes (after server.New and Reload).
func (f *Files) Watch(cfg *config.Config, wait time.Duration) error {
	f.cfg.Store(cfg)
	if f.plugins == nil {
		if len(filePlugins(cfg)) > 0 {
			return errors.New("the configuration has file readers but the server has no plugin manager")
		}
		return nil
	}
	var waits []string
	var chans []chan struct{}
	f.mu.Lock()
	if f.watching == nil {
		f.watching, f.syncs, f.synced = map[string]*watcher{}, map[string]int{}, map[string]chan struct{}{}
	}
	for name := range filePlugins(cfg) {
		h, err := f.plugins.File(name)
		if err != nil {
			f.mu.Unlock()
			return fmt.Errorf("file plugin %q: %w", name, err)
		}
		// A handle follows its plugin across relaunches and swaps; a
		// different one means the plugin was removed and declared again.
		if w := f.watching[name]; w == nil || w.h != h {
			if w != nil {
				w.cancel()
			}
			ctx, cancel := context.WithCancel(f.ctx)
			f.watching[name] = &watcher{h: h, cancel: cancel}
			f.syncs[name] = 0
			f.synced[name] = make(chan struct{})
			f.bg.Add(1)
			go func() {
				defer f.bg.Done()
				f.followFiles(ctx, name, h)
			}()
		}
		waits = append(waits, name)
		chans = append(chans, f.synced[name])
	}
	f.mu.Unlock()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	var late []string
	for i, ch := range chans {
		select {
		case <-ch:
		case <-deadline.C:
			late = append(late, waits[i])
			deadline.Reset(0)
		}
	}
	if len(late) > 0 {
		return fmt.Errorf("file plugins %v sent no state within %s", late, wait)
	}
	// After a reload the stream was synced long ago: wait for the states
	// of readers that the new configuration adds (the swapped plugin's
	// stream replays them).
	for {
		var missing []string
		for name := range cfg.Files {
			if f.get(name) == nil {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-deadline.C:
			sort.Strings(missing)
			return fmt.Errorf("no state for file readers %v within %s", missing, wait)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// watcher is one plugin's Watch consumer.
type watcher struct {
	h      pluginapi.File
	cancel context.CancelFunc
}

// followFiles consumes one plugin's Watch stream until ctx ends (Shutdown,
// or the plugin was replaced by another of the same name).
func (f *Files) followFiles(ctx context.Context, plugin string, h pluginapi.File) {
	for ctx.Err() == nil {
		err := h.Watch(ctx, func(st *pluginv1.ReaderState) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			f.applyFileState(plugin, h, st)
			return nil
		})
		if err != nil && ctx.Err() == nil {
			f.log.Warn("file watch ended; following again", "plugin", plugin, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// applyFileState takes one message of a watch stream.
func (f *Files) applyFileState(plugin string, h pluginapi.File, st *pluginv1.ReaderState) {
	switch pluginapi.KindOfFileState(st.GetReader(), st.GetMessage()) {
	case pluginapi.FileStateSync:
		f.mu.Lock()
		f.syncs[plugin]++
		n := f.syncs[plugin]
		if n == 1 {
			close(f.synced[plugin])
		}
		f.mu.Unlock()
		if n > 1 {
			// A new plugin instance: it tracks no static file yet.
			f.recheckStatic(plugin, h)
		}
	case pluginapi.FileStateStatic:
		f.staticChanged(st)
	default:
		f.updateReader(h, st)
	}
}

// updateReader records a reader's state, reading its contents when the
// state names a version the table does not hold.
func (f *Files) updateReader(h pluginapi.File, st *pluginv1.ReaderState) {
	name := st.GetReader()
	// One reader's updates are serialized by its own lock; the table's
	// lock is held only to publish, so a slow read of one file's new
	// contents delays no other reader, watch or check.
	rl := f.readerLock(name)
	rl.Lock()
	defer rl.Unlock()
	old := f.get(name)
	if st.GetError() == pluginapi.FileErrMissing && old != nil && old.loaded {
		// The file is gone and the plugin has no mapping of it (it was
		// relaunched after the deletion): the host's copy of the last
		// contents serves on, as the mapping would have.
		st = &pluginv1.ReaderState{Reader: name, MtimeUnixNano: old.mtime.UnixNano(), Size: int64(len(old.body)),
			IdDigest: old.bodyID, Sha256: old.bodySHA, Deleted: true, Message: "file deleted; serving the last contents kept by the host"}
	}
	e := &fileEntry{state: st}
	if old != nil {
		e.body, e.bodyID, e.bodySHA, e.mtime, e.loaded = old.body, old.bodyID, old.bodySHA, old.mtime, old.loaded
		e.etag, e.lastMod, e.loadedAt = old.etag, old.lastMod, old.loadedAt
	}
	if st.GetError() == "" && st.GetIdDigest() != "" && (!e.loaded || st.GetIdDigest() != e.bodyID) {
		body, err := f.readContents(h, st)
		if err != nil {
			e.loadErr = err.Error()
			f.log.Warn("file reader's new version not loaded; the previous one serves", "reader", name, "id", st.GetIdDigest(), "err", err)
		} else {
			e.body, e.bodyID, e.bodySHA, e.loaded, e.loadedAt = body, st.GetIdDigest(), st.GetSha256(), true, time.Now()
			e.mtime = time.Unix(0, st.GetMtimeUnixNano()).UTC()
			e.lastMod = e.mtime.Format(http.TimeFormat)
			e.etag = `"` + e.bodyID + `"`
			if e.bodySHA != "" {
				e.etag = `"sha256-` + e.bodySHA + `"`
			}
			f.log.Info("file reader loaded", "reader", name, "size", len(body), "id", e.bodyID, "deleted", st.GetDeleted())
		}
	}
	if ok, why := e.usable(); !ok && (old == nil || old.state.GetError() != st.GetError() || old.state.GetMessage() != st.GetMessage()) {
		f.log.Warn("file reader cannot serve", "reader", name, "why", why)
	}
	f.mu.Lock()
	f.put(name, e)
	f.mu.Unlock()
}

// readerLock returns the lock that serializes updates of one reader.
func (t *fileTable) readerLock(name string) *sync.Mutex {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.readerMu == nil {
		t.readerMu = map[string]*sync.Mutex{}
	}
	l := t.readerMu[name]
	if l == nil {
		l = &sync.Mutex{}
		t.readerMu[name] = l
	}
	return l
}

// readContents reads one version of a reader through the plugin and
// checks it against its state.
func (f *Files) readContents(h pluginapi.File, st *pluginv1.ReaderState) ([]byte, error) {
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	var buf bytes.Buffer
	buf.Grow(int(max(0, st.GetSize())))
	if err := h.Read(ctx, &pluginv1.ReadRequest{Reader: st.GetReader(), Length: -1, IdDigest: st.GetIdDigest()}, &buf); err != nil {
		return nil, err
	}
	if int64(buf.Len()) != st.GetSize() {
		return nil, fmt.Errorf("read %d bytes of a %d-byte version", buf.Len(), st.GetSize())
	}
	if want := st.GetSha256(); want != "" {
		sum := sha256.Sum256(buf.Bytes())
		if got := hex.EncodeToString(sum[:]); got != want {
			return nil, fmt.Errorf("contents have sha256 %s, the plugin hashed %s", got, want)
		}
	}
	return buf.Bytes(), nil
}
