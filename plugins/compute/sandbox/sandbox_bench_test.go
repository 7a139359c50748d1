package sandbox

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func benchTenant(b *testing.B, prog, backend string, ephemeral bool) *Tenant {
	tn, err := NewTenant(prog, program(b, prog), Settings{Backend: backend, Ephemeral: ephemeral, Concurrency: 1}, nil, hclog.NewNullLogger())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(tn.Close)
	return tn
}

// BenchmarkRoundTrip is one request through the hello program, from
// Handle to the reply, in the plugin (no gRPC): the backend's overhead
// per request, reset included when ephemeral (it runs while the next
// request queues, so it shows in the throughput).
func BenchmarkRoundTrip(b *testing.B) {
	for _, be := range []string{"process", "kvm"} {
		for _, eph := range []bool{true, false} {
			b.Run(fmt.Sprintf("%s/ephemeral=%v", be, eph), func(b *testing.B) {
				if be == "kvm" {
					kvmUsable(b)
				}
				tn := benchTenant(b, "hello", be, eph)
				ctx := context.Background()
				info := RequestInfo{Method: "GET", URL: "/bench", Host: "example.test"}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := tn.Handle(ctx, info, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkReset is the process backend's reset alone: the layout check
// and the write-back of the pages that one request dirtied.
func BenchmarkReset(b *testing.B) {
	tn := benchTenant(b, "hello", "process", false)
	be := tn.be.(*processBackend)
	tn.cfg.Ephemeral = true
	inst, err := be.boot()
	if err != nil {
		b.Fatal(err)
	}
	defer inst.close()
	p := inst.(*proc)
	b.ReportMetric(float64(len(p.snap.regions)), "regions")
	var size int
	for _, r := range p.snap.regions {
		size += len(r.data)
	}
	b.ReportMetric(float64(size)/1024, "KiB-snapshot")
	j := newJob(context.Background(), RequestInfo{Method: "GET", URL: "/"}, nil, time.Now().Add(time.Second))
	if err := p.serve(j); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.snap.restore(p.pid); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBoot is the time to a new slot waiting at the snapshot point:
// a process booted from nothing, or a VM made from the tenant's snapshot
// (the tenant's first boot made it). KiB/slot is the slot's memory: RSS
// for a process, guest pages touched for a VM.
func BenchmarkBoot(b *testing.B) {
	for _, be := range []string{"process", "kvm"} {
		b.Run(be, func(b *testing.B) {
			if be == "kvm" {
				kvmUsable(b)
			}
			tn := benchTenant(b, "hello", be, true)
			for i := 0; i < b.N; i++ {
				inst, err := tn.be.boot()
				if err != nil {
					b.Fatal(err)
				}
				if i == 0 {
					b.ReportMetric(float64(inst.footprint())/1024, "KiB/slot")
				}
				inst.close()
			}
			b.ReportMetric(float64(tn.bootTime.Microseconds()), "µs-first-boot")
		})
	}
}

// BenchmarkCall is one ABI call's round trip (the probe program).
func BenchmarkCall(b *testing.B) {
	for _, be := range []string{"process", "kvm"} {
		b.Run(be, func(b *testing.B) {
			if be == "kvm" {
				kvmUsable(b)
			}
			var total time.Duration
			for i := 0; i < b.N; i++ {
				d, err := CallCost(be)
				if err != nil {
					b.Fatal(err)
				}
				total += d
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N)/1000, "µs/call")
		})
	}
}
