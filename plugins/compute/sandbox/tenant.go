package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Settings are a tenant's settings (the names of the plugin's HCL block).
type Settings struct {
	Program        string        // path of the ELF file (for messages)
	Backend        string        // "auto", "process" or "kvm"
	Concurrency    int           // slots: processes or VMs (default 2)
	MaxBootTime    time.Duration // to the snapshot point (default 16 s)
	MaxRequestTime time.Duration // per request (default 8 s)
	MaxQueueTime   time.Duration // waiting for a free slot (default 1 s)
	MaxQueue       int           // requests waiting for a slot; more get 503 at once (default 64)
	MaxMemory      uint64        // bytes per slot (default 256 MiB)
	MaxResponse    uint64        // response body bytes (default 16 MiB)
	Ephemeral      bool          // every request from the snapshot (default true)
	SecondChance   bool          // a failed request goes to the program again, flagged, for 1 s
	RecycleAfter   int           // process: a new process after this many requests (0: never)
	Arguments      []string      // argv after argv[0] = the tenant's name
	Environment    []string      // NAME=value
	AllowDebug     bool          // `edgehost debug` may run requests under a GDB stub (process backend)
}

// Defaults fills zero settings in.
func (s *Settings) Defaults() {
	if s.Backend == "" {
		s.Backend = "auto"
	}
	if s.Concurrency <= 0 {
		s.Concurrency = 2
	}
	if s.MaxBootTime <= 0 {
		s.MaxBootTime = 16 * time.Second
	}
	if s.MaxRequestTime <= 0 {
		s.MaxRequestTime = 8 * time.Second
	}
	if s.MaxQueueTime <= 0 {
		s.MaxQueueTime = time.Second
	}
	if s.MaxQueue <= 0 {
		s.MaxQueue = 64
	}
	if s.MaxMemory == 0 {
		s.MaxMemory = 256 << 20
	}
	if s.MaxResponse == 0 {
		s.MaxResponse = defaultMaxBody
	}
}

func (s *Settings) maxResponse() uint64 { return s.MaxResponse }

// instance is one running copy of a program (a process or a VM) waiting
// for a request at its snapshot point.
type instance interface {
	// serve runs the request to its end. A nil error leaves the instance
	// ready for the next one (reset when ephemeral); an error means it
	// must be closed.
	serve(j *job) error
	close()
	footprint() int64
}

type backend interface {
	name() string
	boot() (instance, error)
	close()
}

// Tenant runs one program in Concurrency slots.
type Tenant struct {
	name  string
	cfg   Settings
	log   hclog.Logger
	fetch Fetcher
	be    backend
	why   string // why this backend

	// free holds the instances waiting for a request; a request takes one
	// and runs it in its own goroutine (no hand-off to a worker: two
	// goroutine wake-ups cost more than the rest of a hello request).
	free    chan instance
	stop    chan struct{}
	mu      sync.RWMutex // held (read) by requests and boots; Close takes it
	closed  bool
	booted  atomic.Int64 // instances booted, for the status
	waiting atomic.Int64 // requests waiting for a slot
	faults  atomic.Int64

	// for the status (GET /tenants)
	requests atomic.Int64
	timeouts atomic.Int64 // 504: past max_request_time
	rejected atomic.Int64 // 503: queue full, or no free slot within max_queue_time
	queued   atomic.Int64 // waiting for a slot now
	waitedUs atomic.Int64 // time spent waiting for a slot, summed
	busy     atomic.Int64 // slots serving a request now
	errMu    sync.Mutex
	lastErr  string
	lastAt   time.Time
	tail     []string // the program's last lines of output, for boot errors

	logMu     sync.Mutex
	logWindow time.Time
	logLines  int
	logLost   int

	bootTime time.Duration
}

// Status is what a tenant reports.
type Status struct {
	Backend     string
	Why         string
	Booted      int64
	Faults      int64
	BootTime    time.Duration
	Concurrency int
	Busy        int64 // slots serving a request
	Queued      int64 // requests waiting for a slot
	Requests    int64
	Timeouts    int64
	Rejected    int64         // no free slot within max_queue_time
	QueueWait   time.Duration // time requests waited for a slot, summed
	LastError   string
	LastErrorAt time.Time
}

// NewTenant loads a program and boots its first instance (the snapshot);
// the program's failure to boot is the error. Close it when done.
func NewTenant(name string, elf []byte, cfg Settings, fetch Fetcher, log hclog.Logger) (*Tenant, error) {
	cfg.Defaults()
	if log == nil {
		log = hclog.NewNullLogger()
	}
	t := &Tenant{name: name, cfg: cfg, log: log, fetch: fetch, free: make(chan instance, cfg.Concurrency), stop: make(chan struct{})}
	be, why, err := chooseBackend(t, elf)
	if err != nil {
		return nil, err
	}
	t.be, t.why = be, why
	start := time.Now()
	first, err := be.boot()
	if err != nil {
		be.close()
		if tail := t.outputTail(); tail != "" {
			err = fmt.Errorf("%w; the program's last output: %s", err, tail)
		}
		return nil, fmt.Errorf("tenant %s: program %s: %w", name, cfg.Program, err)
	}
	t.bootTime = time.Since(start)
	t.booted.Add(1)
	log.Info("tenant ready", "tenant", name, "backend", be.name(), "why", why, "boot", t.bootTime, "concurrency", cfg.Concurrency)
	t.free <- first
	for i := 1; i < cfg.Concurrency; i++ {
		go t.replace()
	}
	return t, nil
}

// dequeued ends a request's wait for a slot (served, refused or given up).
func (t *Tenant) dequeued(since time.Time) {
	t.queued.Add(-1)
	t.waitedUs.Add(time.Since(since).Microseconds())
}

// Status says how the tenant runs.
func (t *Tenant) Status() Status {
	t.errMu.Lock()
	last, at := t.lastErr, t.lastAt
	t.errMu.Unlock()
	return Status{Backend: t.be.name(), Why: t.why, Booted: t.booted.Load(), Faults: t.faults.Load(), BootTime: t.bootTime,
		Concurrency: t.cfg.Concurrency, Busy: t.busy.Load(), Queued: t.queued.Load(), Requests: t.requests.Load(),
		Timeouts: t.timeouts.Load(), Rejected: t.rejected.Load(), QueueWait: time.Duration(t.waitedUs.Load()) * time.Microsecond,
		LastError: last, LastErrorAt: at}
}

func (t *Tenant) noteErr(err error) {
	t.errMu.Lock()
	t.lastErr, t.lastAt = err.Error(), time.Now()
	t.errMu.Unlock()
}

// outputTail is the program's last lines of output, quoted, oldest first.
func (t *Tenant) outputTail() string {
	t.logMu.Lock()
	defer t.logMu.Unlock()
	if len(t.tail) == 0 {
		return ""
	}
	return fmt.Sprintf("%q", strings.Join(t.tail, "\n"))
}

// secondChanceTime is what a second chance may take.
const secondChanceTime = time.Second

// secondChance gives the program the failed request again, flagged with
// why it failed, to answer within secondChanceTime (NOTES: on_error). Nil
// when it does not answer.
func (t *Tenant) secondChance(ctx context.Context, info RequestInfo, body []byte, f *Failure) *Reply {
	ctx, cancel := context.WithTimeout(ctx, secondChanceTime)
	defer cancel()
	info.Error = f.Reason
	r, err := t.handle(ctx, info, body)
	if err != nil {
		t.log.Warn("program's second chance failed", "tenant", t.name, "error", err)
		return nil
	}
	t.log.Info("program answered a failed request on its second chance", "tenant", t.name, "status", r.Status, "why", f.Reason)
	return r
}

// replace boots an instance for a slot whose instance failed (or for a
// slot not booted yet), with backoff while booting fails.
func (t *Tenant) replace() {
	backoff := 10 * time.Millisecond
	for {
		t.mu.RLock()
		if t.closed {
			t.mu.RUnlock()
			return
		}
		inst, err := t.be.boot()
		if err == nil {
			t.booted.Add(1)
			t.free <- inst
			t.mu.RUnlock()
			return
		}
		t.mu.RUnlock()
		t.log.Error("program failed to boot", "tenant", t.name, "error", err)
		select {
		case <-t.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// ErrClosed: the tenant was closed.
var ErrClosed = errors.New("tenant closed")

// Handle runs a request through the program. A *Failure error carries the
// status the client should get.
func (t *Tenant) Handle(ctx context.Context, info RequestInfo, body []byte) (*Reply, error) {
	r, err := t.handle(ctx, info, body)
	var f *Failure
	if err != nil && t.cfg.SecondChance && errors.As(err, &f) && (f.Status == 500 || f.Status == 504) {
		if r := t.secondChance(ctx, info, body, f); r != nil {
			return r, nil
		}
	}
	if err != nil {
		t.noteErr(err)
	}
	if err != nil && errors.As(err, &f) {
		if f.Status == 504 {
			t.timeouts.Add(1)
		}
		t.log.Warn("program request failed", "tenant", t.name, "status", f.Status, "why", f.Reason, "url", info.URL)
	}
	return r, err
}

func (t *Tenant) handle(ctx context.Context, info RequestInfo, body []byte) (*Reply, error) {
	info.Tenant = t.name
	now := time.Now()
	deadline := now.Add(t.cfg.MaxRequestTime)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	j := newJob(ctx, info, body, deadline)
	t.requests.Add(1)
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return nil, ErrClosed
	}
	var inst instance
	select {
	case inst = <-t.free:
	default:
		if t.waiting.Add(1) > int64(t.cfg.MaxQueue) {
			t.waiting.Add(-1)
			t.rejected.Add(1)
			return nil, &Failure{503, "queue full (max_queue)"}
		}
		defer t.waiting.Add(-1)
		t.queued.Add(1)
		queuedAt := time.Now()
		qt := time.NewTimer(min(t.cfg.MaxQueueTime, time.Until(deadline)))
		select {
		case inst = <-t.free:
			qt.Stop()
			t.dequeued(queuedAt)
		case <-qt.C:
			t.dequeued(queuedAt)
			t.rejected.Add(1)
			return nil, &Failure{503, "no free slot within max_queue_time"}
		case <-ctx.Done():
			qt.Stop()
			t.dequeued(queuedAt)
			return nil, ctx.Err()
		case <-t.stop:
			qt.Stop()
			t.dequeued(queuedAt)
			return nil, ErrClosed
		}
	}
	t.busy.Add(1)
	defer t.busy.Add(-1)
	if err := inst.serve(j); err != nil {
		if !errors.Is(err, errRecycle) {
			t.faults.Add(1)
			t.log.Warn("program instance replaced", "tenant", t.name, "error", err)
		}
		inst.close()
		go t.replace()
	} else {
		t.free <- inst
	}
	<-j.done
	return j.reply, j.err
}

// Close stops the slots and their instances.
func (t *Tenant) Close() {
	select {
	case <-t.stop:
		return
	default:
	}
	close(t.stop)
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	for {
		select {
		case inst := <-t.free:
			inst.close()
			continue
		default:
		}
		break
	}
	t.be.close()
}

// programLog logs a line of the program's stdout or stderr, at most
// logBurst lines a second.
func (t *Tenant) programLog(line string) {
	const logBurst = 50
	t.logMu.Lock()
	now := time.Now()
	if now.Sub(t.logWindow) > time.Second {
		if t.logLost > 0 {
			t.log.Warn("program output dropped", "tenant", t.name, "lines", t.logLost)
		}
		t.logWindow, t.logLines, t.logLost = now, 0, 0
	}
	const tailLines, tailWidth = 8, 240
	tl := line
	if len(tl) > tailWidth {
		tl = tl[:tailWidth] + "…"
	}
	if len(t.tail) == tailLines {
		t.tail = append(t.tail[:0], t.tail[1:]...)
	}
	t.tail = append(t.tail, tl)
	t.logLines++
	ok := t.logLines <= logBurst
	if !ok {
		t.logLost++
	}
	t.logMu.Unlock()
	if ok {
		t.log.Info("program output", "tenant", t.name, "line", line)
	}
}
