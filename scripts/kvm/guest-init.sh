#!/bin/busybox sh
# /init of the initramfs that scripts/test-kvm.sh boots under QEMU: loads the
# KVM modules, runs the kvm package's test binary against /dev/kvm, prints
# "@@RESULT rc=N" and reports N to QEMU through isa-debug-exit (port 0xf4).
# Settings arrive as kernel command-line variables (the kernel hands unknown
# NAME=value words to /init's environment): KVM_RUN, KVM_BENCH,
# KVM_BENCHTIME, KVM_COUNT.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
echo "@@INIT kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs, uptime $(cut -d' ' -f1 /proc/uptime)s"
# nx_huge_pages=off: KVM's NX huge page recovery thread, spinning on
# emulated CPUs, can lock up the emulated kernel (seen as soft lockups of
# kvm-nx-lpage-recovery and migration/N while a guest spins).
for m in irqbypass "kvm nx_huge_pages=off" ccp kvm-amd; do
	set -- $m
	n=$1; shift
	insmod /lib/modules/$n.ko "$@" 2>/tmp/insmod.err || echo "@@INSMOD_FAIL $n: $(cat /tmp/insmod.err)"
done
RC=1
if [ -e /dev/kvm ]; then
	echo "@@DEVKVM yes"
	set -- -test.v -test.timeout=${KVM_TIMEOUT:-400s} -test.count=${KVM_COUNT:-1}
	[ -n "$KVM_RUN" ] && set -- "$@" -test.run="$KVM_RUN"
	if [ -n "$KVM_BENCH" ]; then
		set -- "$@" -test.bench="$KVM_BENCH" -test.benchtime=${KVM_BENCHTIME:-1s} -test.benchmem
	fi
	cd /tests
	EDGEHOST_KVM_GUESTS=/tests/guests EDGEHOST_KVM_REQUIRE=1 ./kvm.test "$@"
	RC=$?
	echo "@@GOTEST_RC $RC"
else
	echo "@@DEVKVM no"
	dmesg | grep -iE 'kvm|svm' | tail -n 20
fi
echo "@@RESULT rc=$RC uptime $(cut -d' ' -f1 /proc/uptime)s"
printf "\\$(printf %03o $RC)" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
poweroff -f
