#!/bin/sh
# Builds the test guests: build.sh OUTDIR [NAME...] (all when none named).
# Used by the kvm package's tests and by scripts/test-kvm.sh, so both run
# the same binaries. A musl guest is skipped when musl-gcc is missing.
set -eu
out=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
all="hello hello-pie hello-musl hello-dyn malloc spin fault isolation dirty calls sys"
[ $# -gt 0 ] || set -- $all
mkdir -p "$out"
CC=${CC:-gcc}
for n in "$@"; do
	case $n in
	hello-pie)  $CC -O2 -static-pie -fPIE -o "$out/$n" "$here/hello.c" ;;
	hello-dyn)  $CC -O2 -o "$out/$n" "$here/hello.c" ;;
	hello-musl)
		if command -v musl-gcc >/dev/null 2>&1; then
			musl-gcc -O2 -static -o "$out/$n" "$here/hello.c"
		else
			echo "build.sh: musl-gcc not installed, skipping $n" >&2
		fi ;;
	*)          $CC -O2 -static -o "$out/$n" "$here/$n.c" ;;
	esac
done
