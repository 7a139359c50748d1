package store

import (
	"errors"
	"fmt"
	"os"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// Group commit. Concurrent writers share write transactions, as with
// bbolt's DB.Batch, but without its timer: DB.Batch holds every call for
// up to MaxBatchDelay (10 ms) hoping for company, which with NoSync (a
// commit costs tens of microseconds, not an fsync) made concurrent Puts
// several times slower than serial ones. Here the first writer commits at
// once; writers that arrive meanwhile queue, and when the commit ends the
// first of them commits the whole queue in one transaction. An idle store
// commits each write alone and at once; a busy one batches as much as
// arrived during one commit.
//
// As with DB.Batch, a function may run more than once (when a shared
// transaction fails, each function is retried alone), so it must be
// idempotent: start from what the transaction shows, reset its outputs.

type call struct {
	fn   func(*bolt.Tx) error
	err  error
	lead bool          // woken to lead the next commit, not because done
	wake chan struct{} // buffered: one wake-up
}

type group struct {
	mu      sync.Mutex
	pending []*call
	busy    bool // a leader is committing
}

// update runs fn in a write transaction, maybe shared with other writers.
//
// Functions update the in-memory index at their end, inside the
// transaction: write transactions are serial, so the index sees changes
// in commit order (applied after the commit, a Put and a Delete of one
// object could reach the index in the other order). A commit that then
// fails (a full disk) leaves the index off by those objects: eviction
// skips ids it cannot find, and the next Open rebuilds the index.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	c := &call{fn: fn, wake: make(chan struct{}, 1)}
	g := &s.group
	g.mu.Lock()
	g.pending = append(g.pending, c)
	if g.busy {
		g.mu.Unlock()
		<-c.wake
		if !c.lead {
			return c.err
		}
		g.mu.Lock()
	}
	g.busy = true
	batch := g.pending
	g.pending = nil
	g.mu.Unlock()

	s.commit(batch)

	g.mu.Lock()
	if len(g.pending) > 0 {
		next := g.pending[0]
		next.lead = true
		next.wake <- struct{}{}
	} else {
		g.busy = false
	}
	g.mu.Unlock()
	return c.err
}

// commit runs the calls of batch in one transaction, or each alone if
// that fails, and wakes every call but the leader (batch[0]).
func (s *Store) commit(batch []*call) {
	defer func() {
		for _, c := range batch[1:] {
			c.wake <- struct{}{}
		}
	}()
	if len(batch) == 1 {
		batch[0].err = s.tx(batch[0].fn)
		return
	}
	err := s.tx(func(tx *bolt.Tx) error {
		for _, c := range batch {
			if err := c.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || errors.Is(err, ErrClosed) {
		for _, c := range batch {
			c.err = err
		}
		return
	}
	for _, c := range batch {
		c.err = s.tx(c.fn)
	}
}

// tx runs fn in its own write transaction; a panic (bbolt on a damaged
// page) becomes an error.
func (s *Store) tx(fn func(*bolt.Tx) error) (err error) {
	defer s.guard(&err)
	err = s.db.Update(fn)
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// guard, deferred by every operation, turns a panic of bbolt on a damaged
// page, or a fault on a truncated mapping, into ErrCorrupt, and leaves a
// marker so that the next Open moves the file aside: without it, a
// damaged file would crash or fail every run.
func (s *Store) guard(err *error) {
	p := recover()
	if p == nil {
		return
	}
	s.corrupt.Add(1)
	s.log.Error("cache file damaged: it will be moved aside on the next start", "path", s.path, "panic", fmt.Sprint(p))
	if f, ferr := os.OpenFile(s.path+damagedSuffix, os.O_CREATE|os.O_WRONLY, 0o600); ferr == nil {
		_, _ = fmt.Fprintf(f, "%v\n", p)
		_ = f.Close()
	}
	*err = fmt.Errorf("store: damaged cache file: %v: %w", p, ErrCorrupt)
}

// damagedSuffix names the marker guard leaves beside a damaged file.
const damagedSuffix = ".damaged"
