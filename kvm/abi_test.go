package kvm

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// abiProbe prints the kernel ABI as the C headers define it, one "name value"
// a line; TestABI compares it with the Go mirror in abi.go.
const abiProbe = `
#include <stdio.h>
#include <stddef.h>
#include <linux/kvm.h>
#define P(n, v) printf("%s %lu\n", n, (unsigned long)(v))
int main(void) {
	P("sizeof.kvm_regs", sizeof(struct kvm_regs));
	P("sizeof.kvm_segment", sizeof(struct kvm_segment));
	P("sizeof.kvm_dtable", sizeof(struct kvm_dtable));
	P("sizeof.kvm_sregs", sizeof(struct kvm_sregs));
	P("sizeof.kvm_fpu", sizeof(struct kvm_fpu));
	P("sizeof.kvm_vcpu_events", sizeof(struct kvm_vcpu_events));
	P("sizeof.kvm_xsave", sizeof(struct kvm_xsave));
	P("sizeof.kvm_msr_entry", sizeof(struct kvm_msr_entry));
	P("sizeof.kvm_msrs", sizeof(struct kvm_msrs));
	P("sizeof.kvm_cpuid_entry2", sizeof(struct kvm_cpuid_entry2));
	P("sizeof.kvm_cpuid2", sizeof(struct kvm_cpuid2));
	P("sizeof.kvm_userspace_memory_region", sizeof(struct kvm_userspace_memory_region));
	P("sizeof.kvm_dirty_log", sizeof(struct kvm_dirty_log));
	P("offsetof.kvm_regs.rip", offsetof(struct kvm_regs, rip));
	P("offsetof.kvm_segment.type", offsetof(struct kvm_segment, type));
	P("offsetof.kvm_segment.unusable", offsetof(struct kvm_segment, unusable));
	P("offsetof.kvm_sregs.gdt", offsetof(struct kvm_sregs, gdt));
	P("offsetof.kvm_sregs.cr0", offsetof(struct kvm_sregs, cr0));
	P("offsetof.kvm_sregs.efer", offsetof(struct kvm_sregs, efer));
	P("offsetof.kvm_sregs.interrupt_bitmap", offsetof(struct kvm_sregs, interrupt_bitmap));
	P("offsetof.kvm_fpu.last_ip", offsetof(struct kvm_fpu, last_ip));
	P("offsetof.kvm_fpu.xmm", offsetof(struct kvm_fpu, xmm));
	P("offsetof.kvm_fpu.mxcsr", offsetof(struct kvm_fpu, mxcsr));
	P("offsetof.kvm_vcpu_events.sipi_vector", offsetof(struct kvm_vcpu_events, sipi_vector));
	P("offsetof.kvm_vcpu_events.smi", offsetof(struct kvm_vcpu_events, smi));
	P("offsetof.kvm_vcpu_events.exception_has_payload", offsetof(struct kvm_vcpu_events, exception_has_payload));
	P("offsetof.kvm_vcpu_events.exception_payload", offsetof(struct kvm_vcpu_events, exception_payload));
	P("offsetof.kvm_cpuid_entry2.edx", offsetof(struct kvm_cpuid_entry2, edx));
	P("offsetof.kvm_userspace_memory_region.userspace_addr", offsetof(struct kvm_userspace_memory_region, userspace_addr));
	P("offsetof.kvm_run.immediate_exit", offsetof(struct kvm_run, immediate_exit));
	P("offsetof.kvm_run.exit_reason", offsetof(struct kvm_run, exit_reason));
	P("offsetof.kvm_run.io", offsetof(struct kvm_run, io));
	P("offsetof.kvm_run.io.size", offsetof(struct kvm_run, io.size));
	P("offsetof.kvm_run.io.port", offsetof(struct kvm_run, io.port));
	P("offsetof.kvm_run.io.count", offsetof(struct kvm_run, io.count));
	P("offsetof.kvm_run.io.data_offset", offsetof(struct kvm_run, io.data_offset));
	P("offsetof.kvm_run.mmio.is_write", offsetof(struct kvm_run, mmio.is_write));
	P("offsetof.kvm_run.kvm_valid_regs", offsetof(struct kvm_run, kvm_valid_regs));
	P("offsetof.kvm_run.kvm_dirty_regs", offsetof(struct kvm_run, kvm_dirty_regs));
	P("offsetof.kvm_run.s.regs.regs", offsetof(struct kvm_run, s.regs.regs));
	P("offsetof.kvm_run.s.regs.sregs", offsetof(struct kvm_run, s.regs.sregs));
	P("offsetof.kvm_run.s.regs.events", offsetof(struct kvm_run, s.regs.events));
	P("KVM_GET_API_VERSION", KVM_GET_API_VERSION);
	P("KVM_CREATE_VM", KVM_CREATE_VM);
	P("KVM_CHECK_EXTENSION", KVM_CHECK_EXTENSION);
	P("KVM_GET_VCPU_MMAP_SIZE", KVM_GET_VCPU_MMAP_SIZE);
	P("KVM_GET_SUPPORTED_CPUID", KVM_GET_SUPPORTED_CPUID);
	P("KVM_CREATE_VCPU", KVM_CREATE_VCPU);
	P("KVM_GET_DIRTY_LOG", KVM_GET_DIRTY_LOG);
	P("KVM_SET_USER_MEMORY_REGION", KVM_SET_USER_MEMORY_REGION);
	P("KVM_SET_TSS_ADDR", KVM_SET_TSS_ADDR);
	P("KVM_RUN", KVM_RUN);
	P("KVM_GET_REGS", KVM_GET_REGS);
	P("KVM_SET_REGS", KVM_SET_REGS);
	P("KVM_GET_SREGS", KVM_GET_SREGS);
	P("KVM_SET_SREGS", KVM_SET_SREGS);
	P("KVM_SET_MSRS", KVM_SET_MSRS);
	P("KVM_GET_FPU", KVM_GET_FPU);
	P("KVM_SET_FPU", KVM_SET_FPU);
	P("KVM_SET_CPUID2", KVM_SET_CPUID2);
	P("KVM_GET_VCPU_EVENTS", KVM_GET_VCPU_EVENTS);
	P("KVM_SET_VCPU_EVENTS", KVM_SET_VCPU_EVENTS);
	P("KVM_GET_XSAVE", KVM_GET_XSAVE);
	P("KVM_SET_XSAVE", KVM_SET_XSAVE);
	P("KVM_CAP_XSAVE", KVM_CAP_XSAVE);
	P("KVM_CAP_USER_MEMORY", KVM_CAP_USER_MEMORY);
	P("KVM_CAP_SET_TSS_ADDR", KVM_CAP_SET_TSS_ADDR);
	P("KVM_CAP_EXT_CPUID", KVM_CAP_EXT_CPUID);
	P("KVM_CAP_VCPU_EVENTS", KVM_CAP_VCPU_EVENTS);
	P("KVM_CAP_SYNC_REGS", KVM_CAP_SYNC_REGS);
	P("KVM_CAP_IMMEDIATE_EXIT", KVM_CAP_IMMEDIATE_EXIT);
	P("KVM_EXIT_IO", KVM_EXIT_IO);
	P("KVM_EXIT_HLT", KVM_EXIT_HLT);
	P("KVM_EXIT_MMIO", KVM_EXIT_MMIO);
	P("KVM_EXIT_SHUTDOWN", KVM_EXIT_SHUTDOWN);
	P("KVM_EXIT_FAIL_ENTRY", KVM_EXIT_FAIL_ENTRY);
	P("KVM_EXIT_INTR", KVM_EXIT_INTR);
	P("KVM_EXIT_INTERNAL_ERROR", KVM_EXIT_INTERNAL_ERROR);
	P("KVM_SYNC_X86_REGS", KVM_SYNC_X86_REGS);
	P("KVM_SYNC_X86_SREGS", KVM_SYNC_X86_SREGS);
	P("KVM_SYNC_X86_EVENTS", KVM_SYNC_X86_EVENTS);
	P("KVM_MEM_LOG_DIRTY_PAGES", KVM_MEM_LOG_DIRTY_PAGES);
	return 0;
}
`

// TestABI checks the Go mirror of the KVM ABI against the kernel headers,
// compiled with gcc. It needs no /dev/kvm.
func TestABI(t *testing.T) {
	if _, err := os.Stat("/usr/include/linux/kvm.h"); err != nil {
		t.Skip("no /usr/include/linux/kvm.h (install linux-libc-dev) to compare the ABI against")
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc to compile the ABI probe")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "abi.c")
	bin := filepath.Join(dir, "abi")
	if err := os.WriteFile(src, []byte(abiProbe), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("compile abi probe: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	c := map[string]uint64{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		c[f[0]] = v
	}
	var (
		r  kvmRegs
		sg kvmSegment
		sr kvmSregs
		fp kvmFPU
		ev kvmVCPUEvents
		ce kvmCPUIDEntry2
		mr kvmUserspaceMemoryRegion
	)
	tests := []struct {
		name string
		got  uintptr
	}{
		{"sizeof.kvm_regs", unsafe.Sizeof(r)},
		{"sizeof.kvm_segment", unsafe.Sizeof(sg)},
		{"sizeof.kvm_dtable", unsafe.Sizeof(kvmDtable{})},
		{"sizeof.kvm_sregs", unsafe.Sizeof(sr)},
		{"sizeof.kvm_fpu", unsafe.Sizeof(fp)},
		{"sizeof.kvm_vcpu_events", unsafe.Sizeof(ev)},
		{"sizeof.kvm_xsave", unsafe.Sizeof(kvmXSAVE{})},
		{"sizeof.kvm_msr_entry", unsafe.Sizeof(kvmMSREntry{})},
		{"sizeof.kvm_msrs", unsafe.Sizeof(kvmMSRs{})},
		{"sizeof.kvm_cpuid_entry2", unsafe.Sizeof(ce)},
		{"sizeof.kvm_cpuid2", unsafe.Sizeof(kvmCPUID2{})},
		{"sizeof.kvm_userspace_memory_region", unsafe.Sizeof(mr)},
		{"sizeof.kvm_dirty_log", unsafe.Sizeof(kvmDirtyLog{})},
		{"offsetof.kvm_regs.rip", unsafe.Offsetof(r.RIP)},
		{"offsetof.kvm_segment.type", unsafe.Offsetof(sg.Type)},
		{"offsetof.kvm_segment.unusable", unsafe.Offsetof(sg.Unusable)},
		{"offsetof.kvm_sregs.gdt", unsafe.Offsetof(sr.GDT)},
		{"offsetof.kvm_sregs.cr0", unsafe.Offsetof(sr.CR0)},
		{"offsetof.kvm_sregs.efer", unsafe.Offsetof(sr.EFER)},
		{"offsetof.kvm_sregs.interrupt_bitmap", unsafe.Offsetof(sr.InterruptBitmap)},
		{"offsetof.kvm_fpu.last_ip", unsafe.Offsetof(fp.LastIP)},
		{"offsetof.kvm_fpu.xmm", unsafe.Offsetof(fp.XMM)},
		{"offsetof.kvm_fpu.mxcsr", unsafe.Offsetof(fp.MXCSR)},
		{"offsetof.kvm_vcpu_events.sipi_vector", unsafe.Offsetof(ev.SIPIVector)},
		{"offsetof.kvm_vcpu_events.smi", unsafe.Offsetof(ev.SMI)},
		{"offsetof.kvm_vcpu_events.exception_has_payload", unsafe.Offsetof(ev.ExceptionHasPayload)},
		{"offsetof.kvm_vcpu_events.exception_payload", unsafe.Offsetof(ev.ExceptionPayload)},
		{"offsetof.kvm_cpuid_entry2.edx", unsafe.Offsetof(ce.EDX)},
		{"offsetof.kvm_userspace_memory_region.userspace_addr", unsafe.Offsetof(mr.UserspaceAddr)},
		{"offsetof.kvm_run.immediate_exit", runImmediateExit},
		{"offsetof.kvm_run.exit_reason", runExitReason},
		{"offsetof.kvm_run.io", runIODirection},
		{"offsetof.kvm_run.io.size", runIOSize},
		{"offsetof.kvm_run.io.port", runIOPort},
		{"offsetof.kvm_run.io.count", runIOCount},
		{"offsetof.kvm_run.io.data_offset", runIODataOffset},
		{"offsetof.kvm_run.mmio.is_write", runMMIOIsWrite},
		{"offsetof.kvm_run.kvm_valid_regs", runValidRegs},
		{"offsetof.kvm_run.kvm_dirty_regs", runDirtyRegs},
		{"offsetof.kvm_run.s.regs.regs", runSyncRegs},
		{"offsetof.kvm_run.s.regs.sregs", runSyncSregs},
		{"offsetof.kvm_run.s.regs.events", runSyncEvents},
		{"KVM_GET_API_VERSION", kvmGetAPIVersion},
		{"KVM_CREATE_VM", kvmCreateVM},
		{"KVM_CHECK_EXTENSION", kvmCheckExtension},
		{"KVM_GET_VCPU_MMAP_SIZE", kvmGetVCPUMmapSize},
		{"KVM_GET_SUPPORTED_CPUID", kvmGetSupportedCPUID},
		{"KVM_CREATE_VCPU", kvmCreateVCPU},
		{"KVM_GET_DIRTY_LOG", kvmGetDirtyLog},
		{"KVM_SET_USER_MEMORY_REGION", kvmSetUserMemoryRegion},
		{"KVM_SET_TSS_ADDR", kvmSetTSSAddr},
		{"KVM_RUN", kvmRun},
		{"KVM_GET_REGS", kvmGetRegs},
		{"KVM_SET_REGS", kvmSetRegs},
		{"KVM_GET_SREGS", kvmGetSregs},
		{"KVM_SET_SREGS", kvmSetSregs},
		{"KVM_SET_MSRS", kvmSetMSRs},
		{"KVM_GET_FPU", kvmGetFPU},
		{"KVM_SET_FPU", kvmSetFPU},
		{"KVM_SET_CPUID2", kvmSetCPUID2},
		{"KVM_GET_VCPU_EVENTS", kvmGetVCPUEvents},
		{"KVM_SET_VCPU_EVENTS", kvmSetVCPUEvents},
		{"KVM_GET_XSAVE", kvmGetXSAVE},
		{"KVM_SET_XSAVE", kvmSetXSAVE},
		{"KVM_CAP_XSAVE", capXSAVE},
		{"KVM_CAP_USER_MEMORY", capUserMemory},
		{"KVM_CAP_SET_TSS_ADDR", capSetTSSAddr},
		{"KVM_CAP_EXT_CPUID", capExtCPUID},
		{"KVM_CAP_VCPU_EVENTS", capVCPUEvents},
		{"KVM_CAP_SYNC_REGS", capSyncRegs},
		{"KVM_CAP_IMMEDIATE_EXIT", capImmediateExit},
		{"KVM_EXIT_IO", exitIO},
		{"KVM_EXIT_HLT", exitHLT},
		{"KVM_EXIT_MMIO", exitMMIO},
		{"KVM_EXIT_SHUTDOWN", exitShutdown},
		{"KVM_EXIT_FAIL_ENTRY", exitFailEntry},
		{"KVM_EXIT_INTR", exitIntr},
		{"KVM_EXIT_INTERNAL_ERROR", exitInternalError},
		{"KVM_SYNC_X86_REGS", syncRegs},
		{"KVM_SYNC_X86_SREGS", syncSregs},
		{"KVM_SYNC_X86_EVENTS", syncEvents},
		{"KVM_MEM_LOG_DIRTY_PAGES", memLogDirtyPages},
	}
	for _, tt := range tests {
		want, ok := c[tt.name]
		if !ok {
			t.Errorf("%s: not printed by the probe", tt.name)
			continue
		}
		if uint64(tt.got) != want {
			t.Errorf("%s = %d (%#x), want %d (%#x)", tt.name, tt.got, tt.got, want, want)
		}
	}
}
