package store

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Ban is a persisted ban expression (Varnish-style lazy invalidation): the
// cache layer tests objects created before Created against Expr when it
// meets them, and drops bans that no object can match any more.
type Ban struct {
	ID      uint64
	Created time.Time
	Expr    string
}

// AddBan persists a ban and returns it with its id (increasing).
func (s *Store) AddBan(expr string, created time.Time) (Ban, error) {
	if err := s.acquire(); err != nil {
		return Ban{}, err
	}
	defer s.closeMu.RUnlock()
	var ban Ban
	// Not through update/Batch: NextSequence is not idempotent.
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBans)
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		ban = Ban{ID: id, Created: created, Expr: expr}
		return b.Put(binary.BigEndian.AppendUint64(nil, id), encodeBan(ban))
	})
	if err != nil {
		return Ban{}, fmt.Errorf("store: add ban: %w", err)
	}
	return ban, nil
}

// Bans returns every persisted ban, oldest id first.
func (s *Store) Bans() ([]Ban, error) {
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	var bans []Ban
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBans).ForEach(func(k, v []byte) error {
			if len(k) != 8 || len(v) < 8 {
				return nil // damaged: skip; DeleteBansBefore never matches it
			}
			bans = append(bans, Ban{
				ID:      binary.BigEndian.Uint64(k),
				Created: nsTime(int64(binary.BigEndian.Uint64(v))),
				Expr:    string(v[8:]),
			})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: bans: %w", err)
	}
	return bans, nil
}

// DeleteBansBefore deletes the bans created before t (and damaged ones).
func (s *Store) DeleteBansBefore(t time.Time) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	limit := t.UnixNano()
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBans)
		var old [][]byte
		err := b.ForEach(func(k, v []byte) error {
			if len(v) < 8 || int64(binary.BigEndian.Uint64(v)) < limit {
				old = append(old, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: delete bans: %w", err)
	}
	return nil
}

func encodeBan(b Ban) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(b.Expr)), uint64(timeNS(b.Created)))
	return append(v, b.Expr...)
}
