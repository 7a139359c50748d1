package kvm

import (
	"context"
	"fmt"
	"testing"
)

// Run these where /dev/kvm is real for real figures; scripts/test-kvm.sh
// -bench . runs them under QEMU's emulation, where they are only emulated
// figures (a VM exit costs tens of microseconds there, about one on
// hardware).

// BenchmarkNewVMFromSnapshot: a ready VM from a snapshot (KVM_CREATE_VM,
// copy-on-write memory, vCPU with CPUID and state). Close is not timed.
func BenchmarkNewVMFromSnapshot(b *testing.B) {
	requireKVM(b)
	_, s := snapshotAtWait(b, "isolation", &testHandler{})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v, err := s.NewVM(IO{Handler: &testHandler{}})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		v.Close()
		b.StartTimer()
	}
}

// BenchmarkCall measures one call round trip.
//   - run: Run enters the guest, which returns from its last call and
//     makes the next; the handler pauses, Run returns (host → guest → host).
//   - guest: the guest calls the handler b.N times without Run returning
//     (guest → host → guest).
func BenchmarkCall(b *testing.B) {
	requireKVM(b)
	b.Run("run", func(b *testing.B) {
		h := &testHandler{pauseNop: true}
		v := newTestVM(b, "calls", Options{IO: IO{Handler: h}})
		ctx := context.Background()
		if _, err := v.Run(ctx); err != nil { // startup
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			e, err := v.Run(ctx)
			if err != nil || e.Reason != ExitPaused {
				b.Fatalf("%v %v", e, err)
			}
		}
	})
	b.Run("guest", func(b *testing.B) {
		n := 0
		stopAt := 0
		h := HandlerFunc(func(mem *Memory, c Call) (Result, error) {
			n++
			return Result{Value: c.Args[0] + 1, Pause: n >= stopAt}, nil
		})
		v := newTestVM(b, "calls", Options{IO: IO{Handler: h}})
		stopAt = 1
		if _, err := v.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		n, stopAt = 0, b.N
		b.ResetTimer()
		e, err := v.Run(context.Background())
		if err != nil || e.Reason != ExitPaused || n != b.N {
			b.Fatalf("%v %v after %d calls", e, err, n)
		}
	})
}

// BenchmarkReset: reset after a request that wrote to 1, 16 or 256 pages
// (the request itself is not timed).
func BenchmarkReset(b *testing.B) {
	requireKVM(b)
	for _, k := range []uint64{1, 16, 256} {
		b.Run(fmt.Sprintf("dirty=%d", k), func(b *testing.B) {
			h := &testHandler{arg: k}
			v, _ := snapshotAtWait(b, "dirty", h)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if e, err := v.Run(ctx); err != nil || e.Reason != ExitPaused {
					b.Fatalf("%v %v", e, err)
				}
				b.StartTimer()
				if err := v.Reset(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRequest: what one request costs a VM made from a snapshot,
// apart from the program's own work: reset, resume, one call for the input
// (EH_ARG), a write to one page, and the pause at the next wait.
func BenchmarkRequest(b *testing.B) {
	requireKVM(b)
	h := &testHandler{arg: 1}
	v, _ := snapshotAtWait(b, "dirty", h)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := v.Reset(); err != nil {
			b.Fatal(err)
		}
		if e, err := v.Run(ctx); err != nil || e.Reason != ExitPaused {
			b.Fatalf("%v %v", e, err)
		}
	}
}
