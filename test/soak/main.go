// Command soak runs the real edgehost binary against the demo origin under
// a mixed load (issue 13): hits on small objects, misses on unique URLs,
// large objects, slow readers, idle and slowloris connections, purges and
// bans, and a kill -9 and restart every SOAK_KILL_EVERY. It samples
// edgehost's RSS every second, checks every body against the origin's, and
// after each restart checks which objects stored before the kill survived
// (README, "Persistence": kill -9 loses at most the queued writes, 256,
// and the batch being committed, 64; an object stored a second before the
// kill survives). It prints a report and exits 1 past a bound.
//
//	make soak                      # SOAK_DURATION=5m
//	SOAK_DURATION=3m make soak     # at most 10m
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edgehost/edgehost/host/demoorigin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// Bounds and load. memory is storage.memory; the RssAnon bound is twice
// it, 1 MiB per connection the load holds, and 64 MiB for the runtime and
// the garbage the collector has not returned yet.
const (
	memory      = 64 << 20
	maxDuration = 10 * time.Minute
	queueLoss   = 256 + 64 // README: queued writes + the batch being committed
	smallKeys   = 200
	largeKeys   = 4
	largeSize   = "24m"

	hitWorkers, missWorkers, largeWorkers, slowWorkers = 6, 3, 2, 4
	idleConns, slowlorisConns                          = 20, 10
	connections                                        = hitWorkers + missWorkers + largeWorkers + slowWorkers + idleConns + slowlorisConns + 2
	rssBound                                           = 2*memory + connections<<20 + 64<<20
)

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	bin := fs.String("bin", "bin/edgehost", "the edgehost binary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	duration, err := envDuration("SOAK_DURATION", 5*time.Minute)
	if err != nil {
		return err
	}
	if duration > maxDuration {
		duration = maxDuration
	}
	killEvery, err := envDuration("SOAK_KILL_EVERY", time.Minute)
	if err != nil {
		return err
	}
	binPath, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "edgehost-soak")
	if err != nil {
		return err
	}

	origin := httptest.NewServer(demoorigin.New(slog.New(slog.DiscardHandler)))
	defer origin.Close()
	s := &soak{origin: origin.URL, dir: dir, bin: binPath, digests: map[string][32]byte{}, stored: map[string]time.Time{}}
	if s.addr, err = freePort(); err != nil {
		return err
	}
	if s.admin, err = freePort(); err != nil {
		return err
	}
	if err := s.writeConfig(); err != nil {
		return err
	}
	if err := s.start(); err != nil {
		return err
	}
	defer s.kill()

	fmt.Printf("soak: edgehost %s for %s, kill -9 every %s, storage.memory %d MiB, RssAnon bound %d MiB\n",
		binPath, duration, killEvery, memory>>20, rssBound>>20)
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	var wg sync.WaitGroup
	spawn := func(n int, fn func(ctx context.Context, id int)) {
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); fn(ctx, i) }()
		}
	}
	spawn(1, s.sampleRSS)
	spawn(hitWorkers, s.hits)
	spawn(missWorkers, s.misses)
	spawn(largeWorkers, func(ctx context.Context, _ int) { s.large(ctx, 0) })
	spawn(slowWorkers, func(ctx context.Context, _ int) { s.large(ctx, 512<<10) })
	spawn(idleConns, s.idle)
	spawn(slowlorisConns, s.slowloris)
	spawn(1, s.purges)
	spawn(1, s.bans)
	spawn(1, func(ctx context.Context, _ int) { s.killer(ctx, killEvery) })
	wg.Wait()
	s.kill()
	if err := s.report(); err != nil {
		return err // the state directory stays, with edgehost's log
	}
	return os.RemoveAll(dir)
}

type soak struct {
	origin, dir, bin, addr, admin string

	// gate: every request of the load holds it shared; the killer takes
	// it after a kill, so that no request runs during a restart's
	// survival check (a hit worker would refetch a lost object first).
	gate  sync.RWMutex
	epoch atomic.Int64 // kills so far: a request that saw one was interrupted, not failed
	down  atomic.Bool  // between a kill and the restart: every failure is an interruption

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}        // closed when cmd has exited
	digests  map[string][32]byte  // origin path → sha256 of its body
	stored   map[string]time.Time // edgehost path → when a response said stored
	errs     []string
	nerrs    int
	restarts []restart
	rss      []rssSample

	requests, interrupted, hitsSeen, purgesDone, bansDone atomic.Int64
	slowlorisClosed, idleClosed                           atomic.Int64
}

type restart struct {
	stored, lost, lostOld int
	took                  time.Duration
}

type rssSample struct{ rss, anon int64 }

func envDuration(name string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a duration such as 3m", name, v)
	}
	return d, nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (s *soak) writeConfig() error {
	cfg := fmt.Sprintf(`
state_dir = "./var"

listen {
  http  = %q
  self  = "./var/self.sock"
  admin = %q
}

admin {
  token = "soak"
}

limits {
  header_timeout = "2s"
  idle_timeout   = "10s"
}

storage {
  memory = "%dMiB"
  disk   = "2GiB"
}

backend "origin" {
  url = %q
  first_byte_timeout    = "10s"
  between_bytes_timeout = "10s"
}

route "/" {
  backend     = backend.origin
  default_ttl = "1h"
}
`, s.addr, s.admin, memory>>20, s.origin)
	return os.WriteFile(filepath.Join(s.dir, "config.hcl"), []byte(cfg), 0o644)
}

// start runs edgehost and waits until it answers.
func (s *soak) start() error {
	logf, err := os.OpenFile(filepath.Join(s.dir, "edgehost.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, "run", "-config", "config.hcl")
	cmd.Dir, cmd.Stdout, cmd.Stderr = s.dir, logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", s.addr); err == nil {
			c.Close()
			return nil
		}
	}
	return fmt.Errorf("edgehost not listening 30s after start (log: %s)", filepath.Join(s.dir, "edgehost.log"))
}

// kill sends SIGKILL and waits until the process is gone.
func (s *soak) kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

func (s *soak) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd.Process.Pid
}

func (s *soak) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nerrs++
	if len(s.errs) < 20 {
		s.errs = append(s.errs, fmt.Sprintf(format, args...))
	}
}

var client = &http.Client{
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true, ResponseHeaderTimeout: 30 * time.Second},
	Timeout:   2 * time.Minute,
}

// digest returns the sha256 of the origin's body for path, fetched from
// the origin directly once.
func (s *soak) digest(path string) ([32]byte, error) {
	s.mu.Lock()
	d, ok := s.digests[path]
	s.mu.Unlock()
	if ok {
		return d, nil
	}
	resp, err := client.Get(s.origin + path)
	if err != nil {
		return d, err
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		return d, err
	}
	copy(d[:], h.Sum(nil))
	s.mu.Lock()
	s.digests[path] = d
	s.mu.Unlock()
	return d, nil
}

// originPath is the origin's path of the same content: the /bytes body
// depends on its size and seed only, not on the load's own parameters.
func originPath(path string) string {
	base, q, _ := strings.Cut(path, "?")
	for _, kv := range strings.Split(q, "&") {
		if strings.HasPrefix(kv, "seed=") {
			return base + "?" + kv
		}
	}
	return base
}

// get fetches path through edgehost (reading the first slowBytes at
// 64 KiB per 125 ms when slowBytes > 0), checks status and body against
// the origin, and returns the Cache-Status. ok is false when the request
// failed; a failure across a kill is counted as interrupted, not as an
// error.
func (s *soak) get(ctx context.Context, path string, slowBytes int64) (cacheStatus string, ok bool) {
	s.gate.RLock()
	defer s.gate.RUnlock()
	epoch := s.epoch.Load()
	s.requests.Add(1)
	fail := func(format string, args ...any) (string, bool) {
		if s.epoch.Load() != epoch || s.down.Load() || ctx.Err() != nil {
			s.interrupted.Add(1)
			return "", false
		}
		s.fail(path+": "+format, args...)
		return "", false
	}
	want, err := s.digest(originPath(path))
	if err != nil {
		return fail("origin: %v", err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr+path, nil)
	resp, err := client.Do(req)
	if err != nil {
		return fail("%v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail("status %d (Cache-Status %q)", resp.StatusCode, resp.Header.Get("Cache-Status"))
	}
	h := sha256.New()
	var n int64
	for n < slowBytes {
		m, err := io.CopyN(h, resp.Body, 64<<10)
		n += m
		if err != nil {
			break
		}
		select {
		case <-ctx.Done():
			return fail("cancelled")
		case <-time.After(125 * time.Millisecond):
		}
	}
	m, err := io.Copy(h, resp.Body)
	n += m
	if err != nil {
		return fail("body after %d bytes: %v", n, err)
	}
	if got := h.Sum(nil); string(got) != string(want[:]) {
		return fail("body of %d bytes differs from the origin's (Content-Length %d)", n, resp.ContentLength)
	}
	cs := resp.Header.Get("Cache-Status")
	if strings.Contains(cs, "stored") && !strings.Contains(path, "&p=") && !strings.Contains(path, "&b=") {
		// Purge and ban victims are meant to go.
		s.mu.Lock()
		s.stored[path] = time.Now()
		s.mu.Unlock()
	}
	if strings.Contains(cs, "hit") {
		s.hitsSeen.Add(1)
	}
	return cs, true
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func (s *soak) hits(ctx context.Context, _ int) {
	for ctx.Err() == nil {
		s.get(ctx, fmt.Sprintf("/bytes/4k?seed=%d", 1+rand.IntN(smallKeys)), 0)
		sleep(ctx, 10*time.Millisecond)
	}
}

var unique atomic.Int64

func (s *soak) misses(ctx context.Context, _ int) {
	for ctx.Err() == nil {
		s.get(ctx, fmt.Sprintf("/bytes/8k?seed=%d&u=%d", rand.IntN(100), unique.Add(1)), 0)
		sleep(ctx, 50*time.Millisecond)
	}
}

func (s *soak) large(ctx context.Context, slowBytes int64) {
	for ctx.Err() == nil {
		s.get(ctx, fmt.Sprintf("/bytes/%s?seed=%d", largeSize, 1+rand.IntN(largeKeys)), slowBytes)
	}
}

// idle holds a connection without a request until edgehost closes it
// (idle_timeout), then opens another.
func (s *soak) idle(ctx context.Context, _ int) {
	for ctx.Err() == nil {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Until(deadline(ctx))))
		if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
			s.idleClosed.Add(1)
		}
		c.Close()
	}
}

// slowloris sends a request head a byte a second; edgehost must close it
// (header_timeout 2s). One held open 30 s is an error.
func (s *soak) slowloris(ctx context.Context, _ int) {
	for ctx.Err() == nil {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		epoch := s.epoch.Load()
		start := time.Now()
		head := "GET /bytes/4k?seed=1 HTTP/1.1\r\nHost: soak\r\nX-Slow: " + strings.Repeat("x", 100)
		closed := false
		for i := 0; i < len(head) && ctx.Err() == nil && time.Since(start) < 30*time.Second; i++ {
			if _, err := c.Write([]byte{head[i]}); err != nil {
				closed = true
				break
			}
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := c.Read(make([]byte, 512)); !isTimeout(err) {
				closed = true
				break
			}
		}
		c.Close()
		switch {
		case closed:
			s.slowlorisClosed.Add(1)
		case ctx.Err() == nil && s.epoch.Load() == epoch && !s.down.Load():
			s.fail("slowloris connection held open %s", time.Since(start).Round(time.Second))
		}
	}
}

func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// adminPost calls the admin API.
func (s *soak) adminPost(path, body string) error {
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.admin+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer soak")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, b)
	}
	return nil
}

// purges stores an object, purges it, and checks it is gone.
func (s *soak) purges(ctx context.Context, _ int) {
	for i := 0; sleep(ctx, 2*time.Second); i++ {
		path := fmt.Sprintf("/bytes/2k?seed=%d&p=%d", i%50, i)
		s.victim(ctx, path, func() error { return s.adminPost("/purge?url="+url.QueryEscape("http://"+s.addr+path), "") })
	}
}

// bans stores objects, bans one, and checks it is gone.
func (s *soak) bans(ctx context.Context, _ int) {
	for i := 0; sleep(ctx, 5*time.Second); i++ {
		path := fmt.Sprintf("/bytes/2k?seed=%d&b=%d", i%50, i)
		s.victim(ctx, path, func() error { return s.adminPost("/ban", fmt.Sprintf(`req.url ~ "b=%d$"`, i)) })
	}
}

func (s *soak) victim(ctx context.Context, path string, remove func() error) {
	epoch := s.epoch.Load()
	if _, ok := s.get(ctx, path, 0); !ok {
		return
	}
	s.gate.RLock()
	err := remove()
	s.gate.RUnlock()
	if err != nil {
		if s.epoch.Load() == epoch && !s.down.Load() && ctx.Err() == nil {
			s.fail("removing %s: %v", path, err)
		}
		return
	}
	cs, ok := s.get(ctx, path, 0)
	if ok && strings.Contains(cs, "hit") && s.epoch.Load() == epoch {
		s.fail("%s is still a hit after its purge or ban (Cache-Status %q)", path, cs)
	}
	if strings.Contains(path, "p=") {
		s.purgesDone.Add(1)
	} else {
		s.bansDone.Add(1)
	}
}

// killer kills edgehost every interval, restarts it, and checks the
// objects stored before the kill: lost ones are misses now.
func (s *soak) killer(ctx context.Context, every time.Duration) {
	for sleep(ctx, every) {
		s.down.Store(true) // first: a request failing from now on was interrupted
		s.epoch.Add(1)
		s.kill()
		killed := time.Now()
		s.gate.Lock()
		s.mu.Lock()
		stored := s.stored
		s.stored = map[string]time.Time{}
		s.mu.Unlock()
		client.CloseIdleConnections() // to the killed process
		if err := s.start(); err != nil {
			s.fail("restart: %v", err)
			s.gate.Unlock()
			return
		}
		s.down.Store(false)
		r := restart{stored: len(stored), took: time.Since(killed)}
		paths := make(chan string)
		var lost, lostOld atomic.Int64
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for p := range paths {
					resp, err := client.Get("http://" + s.addr + p)
					if err != nil {
						s.fail("survival check %s: %v", p, err)
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
						lost.Add(1)
						if killed.Sub(stored[p]) >= time.Second {
							lostOld.Add(1)
						}
					}
				}
			}()
		}
		for p := range stored {
			paths <- p
		}
		close(paths)
		wg.Wait()
		r.lost, r.lostOld = int(lost.Load()), int(lostOld.Load())
		s.mu.Lock()
		s.restarts = append(s.restarts, r)
		// What the check fetched again is stored anew.
		for p, t := range stored {
			if _, ok := s.stored[p]; !ok {
				s.stored[p] = t
			}
		}
		s.mu.Unlock()
		fmt.Printf("soak: kill -9 %d: %d objects stored before it, %d lost (%d stored ≥1s before the kill), restart %s\n",
			len(s.restarts), r.stored, r.lost, r.lostOld, r.took.Round(time.Millisecond))
		s.gate.Unlock()
	}
}

// sampleRSS reads edgehost's VmRSS and RssAnon every second.
func (s *soak) sampleRSS(ctx context.Context, _ int) {
	for sleep(ctx, time.Second) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid()))
		if err != nil {
			continue // between a kill and a restart
		}
		var smp rssSample
		for _, line := range strings.Split(string(b), "\n") {
			var kb int64
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
				smp.rss = kb << 10
			} else if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
				fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
				smp.anon = kb << 10
			}
		}
		if smp.rss > 0 {
			s.mu.Lock()
			s.rss = append(s.rss, smp)
			s.mu.Unlock()
		}
	}
}

// report prints the figures and returns an error past a bound.
func (s *soak) report() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var bad []string
	fmt.Printf("\nsoak report\n")
	fmt.Printf("  requests %d (hits %d), interrupted by kills %d, purges checked %d, bans checked %d\n",
		s.requests.Load(), s.hitsSeen.Load(), s.interrupted.Load(), s.purgesDone.Load(), s.bansDone.Load())
	fmt.Printf("  slowloris connections closed by edgehost %d, idle connections closed %d\n", s.slowlorisClosed.Load(), s.idleClosed.Load())
	if len(s.rss) == 0 {
		bad = append(bad, "no RSS samples")
	} else {
		rss := make([]int64, len(s.rss))
		anon := make([]int64, len(s.rss))
		for i, smp := range s.rss {
			rss[i], anon[i] = smp.rss, smp.anon
		}
		fmt.Printf("  RSS over %d samples (1/s): VmRSS min %s median %s max %s; RssAnon min %s median %s max %s (bound %d MiB)\n",
			len(rss), mib(slices.Min(rss)), mib(median(rss)), mib(slices.Max(rss)),
			mib(slices.Min(anon)), mib(median(anon)), mib(slices.Max(anon)), rssBound>>20)
		fmt.Printf("  RssAnon every 10 s (MiB):")
		for i := 0; i < len(anon); i += 10 {
			fmt.Printf(" %d", anon[i]>>20)
		}
		fmt.Println()
		if m := slices.Max(anon); m > rssBound {
			bad = append(bad, fmt.Sprintf("RssAnon %s past the bound %d MiB", mib(m), rssBound>>20))
		}
	}
	for i, r := range s.restarts {
		fmt.Printf("  kill -9 %d: stored %d, lost %d (bound %d), lost stored ≥1s before the kill %d (bound 0), restart %s\n",
			i+1, r.stored, r.lost, queueLoss, r.lostOld, r.took.Round(time.Millisecond))
		if r.lost > queueLoss || r.lostOld > 0 {
			bad = append(bad, fmt.Sprintf("kill -9 %d lost %d objects, %d of them stored ≥1s before it", i+1, r.lost, r.lostOld))
		}
	}
	fmt.Printf("  errors %d\n", s.nerrs)
	for _, e := range s.errs {
		fmt.Printf("    %s\n", e)
	}
	if s.nerrs > 0 {
		bad = append(bad, fmt.Sprintf("%d errors", s.nerrs))
	}
	if len(bad) > 0 {
		return fmt.Errorf("past bounds: %s (edgehost log: %s)", strings.Join(bad, "; "), filepath.Join(s.dir, "edgehost.log"))
	}
	fmt.Println("  within bounds")
	return nil
}

func median(v []int64) int64 {
	w := slices.Clone(v)
	slices.Sort(w)
	return w[len(w)/2]
}

func mib(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }
