#!/usr/bin/env bash
# Runs the kvm package's tests where there is no /dev/kvm: boots a Debian
# kernel under QEMU's software emulation with an AMD CPU that has SVM
# (-cpu max), loads kvm-amd inside it and runs the package's test binary
# (CGO_ENABLED=0 go test -c) against the nested /dev/kvm. Exit status 0 means
# every test passed; the guest's test output is printed.
#
#   scripts/test-kvm.sh                     all tests
#   scripts/test-kvm.sh -run TestHello      only those
#   scripts/test-kvm.sh -bench .            tests, then benchmarks (emulated
#                                           timings: correctness only there)
#   KVM_BENCHTIME=200x, KVM_COUNT=3         passed to the test binary
#
# Installs what it needs (qemu-system-x86 busybox-static cpio musl-tools …)
# and caches the kernel under ${TMPDIR:-/tmp}/edgehost-kvm.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${EDGEHOST_KVM_WORK:-${TMPDIR:-/tmp}/edgehost-kvm}
QEMU_TIMEOUT=${QEMU_TIMEOUT:-540}
RUN=""
BENCH=${KVM_BENCH:-}
while [ $# -gt 0 ]; do
	case $1 in
	-run) RUN=$2; shift 2 ;;
	-bench) BENCH=$2; shift 2 ;;
	*) echo "usage: $0 [-run REGEX] [-bench REGEX]" >&2; exit 2 ;;
	esac
done
T0=$(date +%s)
log() { echo "test-kvm: [$(( $(date +%s) - T0 ))s] $*"; }
mkdir -p "$WORK"

# 1. Tools. busybox must be the static build: the initramfs has no libc.
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
apt_updated=""
apt_update() {
	[ -n "$apt_updated" ] && return
	$SUDO apt-get update -qq
	apt_updated=1
}
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v xz >/dev/null || need+=(xz-utils)
command -v zstd >/dev/null || need+=(zstd)
command -v musl-gcc >/dev/null || need+=(musl-tools)
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	apt_update
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# 2. A kernel with the KVM modules: the one Debian's linux-image-amd64 names.
kernel_pkg() {
	echo "${KVM_KERNEL_PKG:-$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')}"
}
KPKG=$(kernel_pkg)
if [ -z "$KPKG" ]; then
	apt_update
	KPKG=$(kernel_pkg)
fi
KPKG=${KPKG:-linux-image-6.1.0-56-amd64}
KDIR=$WORK/kernel-$KPKG
if [ ! -d "$KDIR/boot" ]; then
	log "fetching $KPKG"
	rm -rf "$KDIR" "$KDIR.tmp" "$WORK/deb" && mkdir -p "$WORK/deb"
	fetch() { (cd "$WORK/deb" && apt-get download -qq -o APT::Sandbox::User=root "$KPKG"); }
	fetch || { apt_update && fetch; }
	dpkg -x "$WORK"/deb/"$KPKG"_*.deb "$KDIR.tmp" && mv "$KDIR.tmp" "$KDIR"
	rm -rf "$WORK/deb"
fi
KVER=$(ls "$KDIR/lib/modules")
VMLINUZ=$KDIR/boot/vmlinuz-$KVER

# 3. The test binary and the guests.
log "building the kvm test binary and guests"
IRFS=$WORK/irfs
rm -rf "$IRFS" && mkdir -p "$IRFS"/{bin,proc,sys,dev,tmp,lib/modules,tests/guests}
(cd "$ROOT" && CGO_ENABLED=0 go test -c -o "$IRFS/tests/kvm.test" ./kvm/)
sh "$ROOT/kvm/testdata/guests/build.sh" "$IRFS/tests/guests" 2>"$WORK/guests.log" || { cat "$WORK/guests.log"; exit 1; }

# 4. The initramfs: busybox, /init, the modules, the tests.
cp /bin/busybox "$IRFS/bin/"
cp "$ROOT/scripts/kvm/guest-init.sh" "$IRFS/init" && chmod +x "$IRFS/init"
M=$KDIR/lib/modules/$KVER/kernel
for ko in virt/lib/irqbypass arch/x86/kvm/kvm drivers/crypto/ccp/ccp arch/x86/kvm/kvm-amd; do
	n=$(basename $ko).ko
	if [ -f "$M/$ko.ko" ]; then cp "$M/$ko.ko" "$IRFS/lib/modules/$n"
	elif [ -f "$M/$ko.ko.xz" ]; then xz -dc "$M/$ko.ko.xz" >"$IRFS/lib/modules/$n"
	elif [ -f "$M/$ko.ko.zst" ]; then zstd -qdc "$M/$ko.ko.zst" >"$IRFS/lib/modules/$n"
	else echo "test-kvm: kernel module $ko missing in $KPKG" >&2; exit 1; fi
done
(cd "$IRFS" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/initramfs.gz"

# 5. Boot. -cpu max gives the emulated CPU SVM and NPT; isa-debug-exit turns
# the guest's verdict into QEMU's exit status: (rc<<1)|1.
APPEND="console=ttyS0 panic=-1 loglevel=${KVM_LOGLEVEL:-3} tsc=reliable KVM_RUN=${RUN} KVM_BENCH=${BENCH} KVM_BENCHTIME=${KVM_BENCHTIME:-1s} KVM_COUNT=${KVM_COUNT:-1}"
# The emulated machine has been seen to freeze outright, rarely, after
# hundreds of VMs (no kernel message, no progress: an emulation problem, not
# a test failure). A boot whose output stalls for KVM_STALL seconds is
# killed and, once, booted again; a failing test is never retried.
boot() {
	: >"$WORK/guest.log"
	timeout --kill-after=10 "$QEMU_TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1536 \
		-nographic -no-reboot -nodefaults -serial stdio \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		-kernel "$VMLINUZ" -initrd "$WORK/initramfs.gz" -append "$APPEND" \
		</dev/null >"$WORK/qemu.out" 2>&1 &
	local qpid=$! size=-1 still=0
	tail -n +1 -f --pid=$qpid "$WORK/qemu.out" 2>/dev/null | sed -u 's/\r$//' | tee "$WORK/guest.log" &
	local tpid=$!
	while kill -0 $qpid 2>/dev/null; do
		sleep 5
		local now
		now=$(stat -c %s "$WORK/qemu.out" 2>/dev/null || echo 0)
		if [ "$now" = "$size" ]; then still=$((still + 5)); else still=0 size=$now; fi
		if [ $still -ge "${KVM_STALL:-150}" ]; then
			log "no output for ${still}s: the emulated machine froze; stopping it"
			kill $qpid 2>/dev/null || true # timeout(1) passes it on to QEMU
			wait $qpid 2>/dev/null
			wait $tpid 2>/dev/null
			return 200
		fi
	done
	wait $qpid
	local rc=$?
	wait $tpid 2>/dev/null
	return $rc
}
log "booting $KVER under QEMU (TCG); test output follows"
set +e
boot
RC=$?
if [ "$RC" = 200 ] && ! grep -q '^--- FAIL' "$WORK/guest.log"; then
	log "booting again after the freeze"
	boot
	RC=$?
fi
set -e
log "QEMU exited with $RC"
if [ "$RC" = 1 ] && grep -q '^@@RESULT rc=0' "$WORK/guest.log"; then
	log "PASS ($(grep -c '^--- PASS' "$WORK/guest.log") passed, $(grep -c '^--- SKIP' "$WORK/guest.log") skipped)"
	exit 0
fi
case $RC in
124 | 137) log "FAIL: QEMU ran past ${QEMU_TIMEOUT}s" ;;
200) log "FAIL: the emulated machine froze twice" ;;
*) log "FAIL: see the output above (also in $WORK/guest.log)" ;;
esac
exit 1
