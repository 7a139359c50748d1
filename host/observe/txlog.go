package observe

import (
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Tx is one transaction-log record: a request or subrequest.
type Tx struct {
	ID       TxID          `json:"id"`
	Parent   TxID          `json:"parent,omitempty"`
	Root     TxID          `json:"root"`
	Kind     string        `json:"kind"` // client, self, segment, bgfetch
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"dur_ns"`
	TTFB     time.Duration `json:"ttfb_ns,omitempty"`
	Method   string        `json:"method"`
	Host     string        `json:"host"`
	URL      string        `json:"url"`
	Route    string        `json:"route,omitempty"`
	Status   int           `json:"status"`
	Cache    string        `json:"cache"` // the Cache-Status value
	Bytes    int64         `json:"bytes"`
	Remote   string        `json:"remote,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// TxID identifies a transaction. The high bits come from the process's
// start time so that ids of successive runs differ; it prints in base 36.
// It is a number so that the hit path can take one without allocating.
type TxID uint64

var (
	txSeq  atomic.Uint64
	txBase = uint64(time.Now().Unix()%(1<<20)) << 40
)

// NewID returns the next transaction id.
func NewID() TxID { return TxID(txBase | txSeq.Add(1)) }

func (id TxID) String() string { return strconv.FormatUint(uint64(id), 36) }

// MarshalText renders the id for JSON.
func (id TxID) MarshalText() ([]byte, error) { return strconv.AppendUint(nil, uint64(id), 36), nil }

// UnmarshalText parses an id.
func (id *TxID) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 36, 64)
	*id = TxID(v)
	return err
}

// ParseTxID parses an id received in a header; 0 when invalid.
func ParseTxID(s string) TxID {
	v, _ := strconv.ParseUint(s, 36, 64)
	return TxID(v)
}

// TxLog keeps the latest records in a ring and fans them out to followers.
// Publishing never blocks: a follower that cannot keep up misses records and
// is told how many.
type TxLog struct {
	mu   sync.Mutex
	ring []Tx
	next int
	full bool
	subs map[chan Tx]*atomic.Uint64 // each follower's missed records
}

// NewTxLog returns a log keeping the last size records.
func NewTxLog(size int) *TxLog {
	return &TxLog{ring: make([]Tx, size), subs: map[chan Tx]*atomic.Uint64{}}
}

// Publish records tx.
func (l *TxLog) Publish(tx Tx) {
	l.mu.Lock()
	l.ring[l.next] = tx
	l.next = (l.next + 1) % len(l.ring)
	if l.next == 0 {
		l.full = true
	}
	for c, missed := range l.subs {
		select {
		case c <- tx:
		default:
			missed.Add(1)
		}
	}
	l.mu.Unlock()
}

// Recent returns the buffered records, oldest first.
func (l *TxLog) Recent() []Tx {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.full {
		return append([]Tx(nil), l.ring[:l.next]...)
	}
	return append(append([]Tx(nil), l.ring[l.next:]...), l.ring[:l.next]...)
}

// FollowBuffer is how many records a follower may be behind before it
// misses some.
const FollowBuffer = 1024

// Subscribe returns a channel of new records; call the returned func to stop.
func (l *TxLog) Subscribe() (<-chan Tx, func()) {
	c, _, stop := l.Follow()
	return c, stop
}

// Follow is Subscribe that also returns the count of the records the
// follower missed because it was FollowBuffer records behind.
func (l *TxLog) Follow() (<-chan Tx, *atomic.Uint64, func()) {
	c := make(chan Tx, FollowBuffer)
	missed := new(atomic.Uint64)
	l.mu.Lock()
	l.subs[c] = missed
	l.mu.Unlock()
	return c, missed, func() {
		l.mu.Lock()
		delete(l.subs, c)
		l.mu.Unlock()
	}
}

// MarshalLine renders tx as one JSON line.
func (tx Tx) MarshalLine() []byte {
	b, _ := json.Marshal(tx)
	return append(b, '\n')
}
