package sandbox

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A hostile program must be harmless: every refused call fails in the
// program, every fault costs only its own request, and the tenant serves
// on.
func TestHostileProcess(t *testing.T) { testHostile(t, "process") }

func testHostile(t *testing.T, backend string) {
	tn := newTenant(t, "hostile", "hostile", Settings{
		Backend: backend, Ephemeral: true, Concurrency: 1,
		MaxMemory: 32 << 20, MaxRequestTime: time.Second,
	})
	for _, tc := range []struct {
		path       string
		wantBody   string // prefix
		wantStatus int    // a Failure's status, when no reply
	}{
		{"/fork", "fork=-1 errno=38", 0},
		{"/open", "open=-1 errno=38", 0},
		{"/socket", "socket=-1 errno=38", 0},
		{"/exec", "exec=-1 errno=38", 0},
		{"/kill", "kill=-1 errno=", 0}, // ENOSYS (process), ESRCH (kvm: no other process exists)
		{"/malloc", "malloc=", 0},
		{"/crash", "", 500},
		{"/loop", "", 504},
		{"/exit", "", 500},
		{"/stdout", "ok", 0},
	} {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			r, err := get(t, tn, tc.path)
			if tc.wantStatus != 0 {
				var f *Failure
				if !errors.As(err, &f) || f.Status != tc.wantStatus {
					t.Fatalf("got %v %v, want a %d failure", r, err, tc.wantStatus)
				}
				if f.Status == 504 && backend == "process" && !strings.Contains(f.Reason, " pc 0x") {
					t.Errorf("a timeout's reason says not where the program was: %q", f.Reason)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(string(r.Body), tc.wantBody) {
					t.Fatalf("got %q, want %q…", r.Body, tc.wantBody)
				}
				t.Logf("%s: %s", tc.path, r.Body)
			}
			// The tenant serves on, from its snapshot.
			r, err = get(t, tn, "/stdout")
			if err != nil || string(r.Body) != "ok" {
				t.Fatalf("after %s: %v %v", tc.path, r, err)
			}
		})
	}
}

// A program that answers nothing within max_boot_time does not boot.
func TestBootTimeout(t *testing.T) {
	_, err := NewTenant("spin", probeELF(1<<31), Settings{Backend: "process", MaxBootTime: 200 * time.Millisecond}, nil, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("got %v, want a boot timeout", err)
	}
}

// Requests queue for a busy slot at most max_queue_time, then get 503.
func TestQueueFull(t *testing.T) {
	tn := newTenant(t, "spin", "spin", Settings{Backend: "process", Concurrency: 1,
		MaxRequestTime: 2 * time.Second, MaxQueueTime: 50 * time.Millisecond})
	go get(t, tn, "/")
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	_, err := get(t, tn, "/")
	var f *Failure
	if !errors.As(err, &f) || f.Status != 503 {
		t.Fatalf("got %v, want 503", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("503 after %v", d)
	}
	// The wait is summed for edgehost_tenant_queue_wait_seconds_total.
	if st := tn.Status(); st.QueueWait < 50*time.Millisecond || st.Rejected != 1 || st.Queued != 0 {
		t.Errorf("status: queue wait %v, rejected %d, queued %d; want ≥ 50ms, 1, 0", st.QueueWait, st.Rejected, st.Queued)
	}
}

// A full queue answers 503 at once.
func TestQueueLength(t *testing.T) {
	tn := newTenant(t, "spin", "spin", Settings{Backend: "process", Concurrency: 1, MaxQueue: 1,
		MaxRequestTime: 2 * time.Second, MaxQueueTime: 2 * time.Second})
	go get(t, tn, "/") // runs
	time.Sleep(100 * time.Millisecond)
	go get(t, tn, "/") // waits
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	_, err := get(t, tn, "/")
	var f *Failure
	if !errors.As(err, &f) || f.Status != 503 || !strings.Contains(f.Reason, "queue full") {
		t.Fatalf("got %v, want 503 queue full", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("503 after %v", d)
	}
}

// arguments and environment reach the program; argv[0] is the tenant.
func TestArgumentsProcess(t *testing.T) { testArguments(t, "process") }

func testArguments(t *testing.T, backend string) {
	tn := newTenant(t, "shop", "hostile", Settings{Backend: backend, Arguments: []string{"a1", "a 2"}, Environment: []string{"X=y=z"}})
	r, err := get(t, tn, "/env")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(r.Body), "argv=shop,a1,a 2 X=y=z"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// A second chance: the program, reset, answers the request that ran out of
// time, told why.
func TestSecondChanceProcess(t *testing.T) { testSecondChance(t, "process") }

func testSecondChance(t *testing.T, backend string) {
	tn := newTenant(t, "spin", "spin", Settings{Backend: backend, SecondChance: true, MaxRequestTime: 200 * time.Millisecond})
	r, err := get(t, tn, "/")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != 503 || !strings.HasPrefix(string(r.Body), "spin gave up: program ran past max_request_time") {
		t.Errorf("got %d %q", r.Status, r.Body)
	}
}
