package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Failure is a request that a program did not answer: Status is what the
// client gets (500, 503, 504), Reason what the log says.
type Failure struct {
	Status int
	Reason string
}

func (f *Failure) Error() string { return fmt.Sprintf("%d: %s", f.Status, f.Reason) }

// job is one request on its way through a slot.
type job struct {
	ctx      context.Context
	info     RequestInfo
	encoded  []byte
	body     []byte
	deadline time.Time

	once  sync.Once
	done  chan struct{}
	reply *Reply
	err   error
}

func newJob(ctx context.Context, info RequestInfo, body []byte, deadline time.Time) *job {
	info.BodyLen = uint64(len(body))
	return &job{ctx: ctx, info: info, body: body, deadline: deadline, done: make(chan struct{})}
}

// finish settles the job once: the first answer wins.
func (j *job) finish(r *Reply, err error) {
	j.once.Do(func() {
		j.reply, j.err = r, err
		close(j.done)
	})
}

func (j *job) finished() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

// Fetcher makes a program's fetch: a path-only URL is a self-request
// through the host, with the depth carried on.
type Fetcher func(ctx context.Context, depth uint32, parent string, f *FetchRequest) (*FetchResult, error)

// ErrNoSelf: a fetch with no self-request socket configured.
var ErrNoSelf = errors.New("no self-request socket configured")

// exchange answers one slot's ABI calls, whatever the backend: it holds
// the current request, the response, and the fetched bodies (handles).
type exchange struct {
	backend uint32
	t       *Tenant
	job     *job
	// nextBuf, nextCap and nextSP are the arguments of the NEXT call the
	// program waits in.
	nextBuf, nextCap, nextSP uint64
	handles                  map[uint64][]byte
	lastHandle               uint64
	requests                 uint64
}

func newExchange(t *Tenant, backend uint32) *exchange {
	return &exchange{t: t, backend: backend, handles: map[uint64][]byte{}}
}

// call answers one call. wait means the program asked for the next
// request: the backend holds it until deliver.
func (x *exchange) call(m Memory, nr uint64, a [6]uint64) (ret int64, wait bool) {
	switch nr {
	case callABI:
		return int64(x.backend)<<16 | ABIVersion, false
	case callNext:
		if a[1] < requestHeadSize {
			return -eINVAL, false
		}
		x.endJob()
		x.nextBuf, x.nextCap, x.nextSP = a[0], a[1], a[2]
		return 0, true
	case callRequest:
		if x.job == nil {
			return -eNOENT, false
		}
		if a[1] < uint64(len(x.job.encoded)) {
			return -eNOBUFS, false
		}
		if writeMem(m, a[0], x.job.encoded) != nil {
			return -eFAULT, false
		}
		return int64(len(x.job.encoded)), false
	case callRead:
		var src []byte
		switch {
		case a[0] == 0 && x.job != nil:
			src = x.job.body
		case a[0] != 0:
			b, ok := x.handles[a[0]]
			if !ok {
				return -eBADF, false
			}
			src = b
		default:
			return -eBADF, false
		}
		off, n := a[3], a[2]
		if off >= uint64(len(src)) {
			return 0, false
		}
		n = min(n, uint64(len(src))-off, 1<<20)
		if writeMem(m, a[1], src[off:off+n]) != nil {
			return -eFAULT, false
		}
		return int64(n), false
	case callRespond:
		if x.job == nil || x.job.finished() {
			return -eINVAL, false
		}
		r, e := decodeResponse(m, a[0], x.t.cfg.maxResponse())
		if e != 0 {
			x.t.log.Warn("program's response refused", "tenant", x.t.name, "why", errnoName(e))
			return e, false
		}
		x.job.finish(r, nil)
		return 0, false
	case callFetch:
		return x.fetch(m, a[0], a[1]), false
	case callClose:
		if _, ok := x.handles[a[0]]; !ok {
			return -eBADF, false
		}
		delete(x.handles, a[0])
		return 0, false
	case callLog:
		n := min(a[2], 4096)
		b, err := readMem(m, a[1], n)
		if err != nil {
			return -eFAULT, false
		}
		x.t.log.Info("program: "+strings.TrimRight(string(b), "\n"), "tenant", x.t.name)
		return 0, false
	}
	return -eNOSYS, false
}

// deliver hands the program the job it waits for: the request is written
// into the NEXT call's buffer (as much as fits; the head always does) and
// the call returns 0.
func (x *exchange) deliver(m Memory, j *job) int64 {
	x.requests++
	j.info.ID = x.requests
	j.info.TimeLeftNS = uint64(max(time.Until(j.deadline), 0))
	j.encoded = encodeRequest(&j.info)
	x.job = j
	b := j.encoded
	if uint64(len(b)) > x.nextCap {
		b = b[:x.nextCap]
	}
	if writeMem(m, x.nextBuf, b) != nil {
		j.finish(nil, &Failure{500, "the program's request buffer is not writable"})
		return -eFAULT
	}
	return 0
}

// endJob closes the current request: a program that asks for the next one
// without answering this one gets a 500 for it.
func (x *exchange) endJob() {
	if x.job != nil {
		x.job.finish(nil, &Failure{500, "the program asked for the next request without answering"})
	}
	x.job = nil
	clear(x.handles)
}

// fail ends the current request with a failure (the instance died or ran
// out of time) and forgets it.
func (x *exchange) fail(f *Failure) {
	if x.job != nil {
		x.job.finish(nil, f)
	}
	x.job = nil
	clear(x.handles)
}

func (x *exchange) fetch(m Memory, fa, ra uint64) int64 {
	if x.job == nil {
		return -eINVAL
	}
	f, e := decodeFetch(m, fa)
	if e != 0 {
		return e
	}
	if !strings.HasPrefix(f.URL, "/") || strings.HasPrefix(f.URL, "//") {
		return -ePERM // only self-requests: a program reaches no other host
	}
	if len(x.handles) >= 64 {
		return -eNOMEM
	}
	ctx, cancel := context.WithDeadline(x.job.ctx, x.job.deadline)
	if f.TimeoutMS > 0 {
		ctx2, cancel2 := context.WithTimeout(ctx, time.Duration(f.TimeoutMS)*time.Millisecond)
		defer cancel2()
		ctx = ctx2
	}
	defer cancel()
	fetch := x.t.fetch
	if fetch == nil {
		return -eNOSYS
	}
	res, err := fetch(ctx, x.job.info.Depth, x.job.info.TxID, f)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return -eTIMEDOUT
		}
		if errors.Is(err, ErrNoSelf) {
			return -eNOSYS
		}
		x.t.log.Warn("program's fetch failed", "tenant", x.t.name, "url", f.URL, "error", err)
		return -eNOENT
	}
	if writeMem(m, ra, encodeFetchResult(res)) != nil {
		return -eFAULT
	}
	x.lastHandle++
	x.handles[x.lastHandle] = res.Body
	return int64(x.lastHandle)
}
