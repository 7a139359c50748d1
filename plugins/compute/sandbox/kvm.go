package sandbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/edgehost/edgehost/kvm"
)

// The kvm backend: the program boots once in a VM to its snapshot point
// (its first NEXT call pauses the VM), the VM is frozen as a snapshot, and
// every slot is a VM made from it (copy-on-write). After a request the slot
// is reset to the snapshot (ephemeral) or kept; a fault or a timeout
// resets it too. The exchange (the ABI) is the process backend's, so the
// same ELF answers byte for byte the same.

type kvmBackend struct {
	t    *Tenant
	prog *kvm.Program
	snap *kvm.Snapshot
	// the NEXT call the snapshot waits in
	snapBuf, snapCap uint64
}

func newKVMBackend(t *Tenant, elf []byte) (*kvmBackend, error) {
	if err := kvm.Probe(); err != nil {
		return nil, err
	}
	prog, err := kvm.Load(elf)
	if err != nil {
		return nil, err
	}
	return &kvmBackend{t: t, prog: prog}, nil
}

func (b *kvmBackend) name() string { return "kvm" }

func (b *kvmBackend) close() {
	if b.snap != nil {
		b.snap.Close()
	}
}

// vmMemory rounds max_memory to the kvm package's 2 MiB granule.
func vmMemory(n uint64) uint64 {
	const granule = 2 << 20
	return (n + granule - 1) / granule * granule
}

type kvmSlot struct {
	b  *kvmBackend
	vm *kvm.VM
	x  *exchange
}

func (s *kvmSlot) handler() kvm.IO {
	out := &logLines{t: s.b.t}
	return kvm.IO{
		Handler: kvm.HandlerFunc(func(mem *kvm.Memory, c kvm.Call) (kvm.Result, error) {
			ret, wait := s.x.call(mem, c.Nr, c.Args)
			return kvm.Result{Value: uint64(ret), Pause: wait}, nil
		}),
		Stdout: out,
		Stderr: out,
	}
}

// boot makes a slot: the first boots the program to its snapshot point
// and freezes it; the others start from the snapshot.
func (b *kvmBackend) boot() (instance, error) {
	t := b.t
	s := &kvmSlot{b: b, x: newExchange(t, backendKVM)}
	if b.snap == nil {
		vm, err := b.prog.NewVM(kvm.Options{
			Memory: vmMemory(t.cfg.MaxMemory),
			Args:   append([]string{t.name}, t.cfg.Arguments...),
			Env:    t.cfg.Environment,
			IO:     s.handler(),
		})
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), t.cfg.MaxBootTime)
		exit, err := vm.Run(ctx)
		cancel()
		if err != nil {
			vm.Close()
			return nil, err
		}
		if exit.Reason != kvm.ExitPaused || exit.Call.Nr != callNext {
			vm.Close()
			return nil, fmt.Errorf("program did not reach its first request: %v", exit)
		}
		snap, err := vm.Snapshot()
		vm.Close()
		if err != nil {
			return nil, err
		}
		b.snap, b.snapBuf, b.snapCap = snap, s.x.nextBuf, s.x.nextCap
	}
	vm, err := b.snap.NewVM(s.handler())
	if err != nil {
		return nil, err
	}
	s.vm = vm
	s.x.nextBuf, s.x.nextCap = b.snapBuf, b.snapCap
	return s, nil
}

func (s *kvmSlot) serve(j *job) error {
	t := s.b.t
	s.x.deliver(s.vm.Memory(), j)
	ctx, cancel := context.WithDeadline(context.Background(), j.deadline)
	exit, err := s.vm.Run(ctx)
	cancel()
	var fail error
	switch {
	case err != nil:
		s.x.fail(&Failure{500, err.Error()})
		fail = err
	case exit.Reason == kvm.ExitPaused && exit.Call.Nr == callNext:
		// the program answered and waits for the next request
	case exit.Reason == kvm.ExitTimeout:
		s.x.fail(&Failure{504, fmt.Sprintf("program ran past max_request_time (%v)", t.cfg.MaxRequestTime)})
		fail = fmt.Errorf("%w: stopped at rip %#x", errTimeout, exit.RIP)
	default:
		f := &Failure{500, "program stopped: " + exit.String()}
		s.x.fail(f)
		fail = errors.New(f.Reason)
	}
	if fail != nil || t.cfg.Ephemeral {
		s.x.fail(&Failure{500, "program reset"})
		if err := s.vm.Reset(); err != nil {
			return fmt.Errorf("reset: %w", err)
		}
		s.x.nextBuf, s.x.nextCap = s.b.snapBuf, s.b.snapCap
		if fail != nil {
			t.faults.Add(1)
			t.log.Warn("program instance reset after a failure", "tenant", t.name, "error", fail)
		}
	}
	return nil
}

func (s *kvmSlot) close() { s.vm.Close() }

func (s *kvmSlot) footprint() int64 {
	n, _ := s.vm.Footprint()
	return n
}
