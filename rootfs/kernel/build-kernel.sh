#!/usr/bin/env bash
# Configures and builds emberd's minimal guest kernel from an unpacked kernel source tree.
# Called by rootfs/build.sh only (it fetches the source, caches, stamps and installs the outputs):
#   build-kernel.sh SRC_DIR BUILD_DIR FRAGMENT OUT_DIR
# Never writes into SRC_DIR (out-of-tree build in BUILD_DIR, kept between runs so an interrupted
# or config-only rebuild is incremental) and never installs anything.
set -euo pipefail
export LC_ALL=C.UTF-8

[ $# -eq 4 ] || { echo "usage: build-kernel.sh SRC_DIR BUILD_DIR FRAGMENT OUT_DIR" >&2; exit 2; }
SRC=$(realpath -e "$1")
BUILD=$(realpath -m "$2")
FRAGMENT=$(realpath -e "$3")
OUT=$4
KCONFIG_PY=$(cd "$(dirname "${BASH_SOURCE[0]}")/../lib" && pwd -P)/kconfig.py
JOBS=${KERNEL_JOBS:-$(nproc)}
# Progress lines go to this fd (rootfs/build.sh passes the terminal); make's output to stdout.
PROGRESS_FD=${EMBER_PROGRESS_FD:-2}
PROGRESS_EVERY=${EMBER_PROGRESS_SECONDS:-30}

# The kernel's build must not depend on who calls it: no make flags or variables inherited from an
# outer `make CC=… images`, no cross compiler, extra flags or output directory from the environment.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES ARCH SUBARCH CROSS_COMPILE CC LD LLVM KCFLAGS \
	KCPPFLAGS KAFLAGS KBUILD_OUTPUT KCONFIG_CONFIG KBUILD_EXTRA_SYMBOLS
# Reproducible: no build time, user, host or build counter in the image (`uname -v`).
KBUILD_BUILD_TIMESTAMP=$(date -u -d "@${SOURCE_DATE_EPOCH:-1704067200}" '+%a %b %e %H:%M:%S UTC %Y')
export KBUILD_BUILD_TIMESTAMP KBUILD_BUILD_USER=emberd KBUILD_BUILD_HOST=emberd KBUILD_BUILD_VERSION=1

# Die with the signal's status instead of carrying on with the next step.
trap 'exit 130' INT
trap 'exit 143' TERM

progress() { printf '[images]   minimal kernel: %s\n' "$*" >&"$PROGRESS_FD"; }

# LOCALVERSION= (set, empty): without it scripts/setlocalversion may append `+` when the tree
# happens to sit inside some git checkout. The release is 6.1.N + CONFIG_LOCALVERSION.
kmake() { make -C "$SRC" O="$BUILD" ARCH=x86 LOCALVERSION= "$@"; }

configure() {
	mkdir -p "$BUILD"
	# allnoconfig turns every option off except what the fragment asks for (and what that
	# selects); olddefconfig then settles any symbol left without a value.
	kmake KCONFIG_ALLCONFIG="$FRAGMENT" allnoconfig
	kmake olddefconfig
	python3 "$KCONFIG_PY" check "$FRAGMENT" "$BUILD/.config"
}

# Runs `make bzImage` in the background and prints a progress line every PROGRESS_EVERY seconds:
# elapsed time, files compiled so far, the latest one. Returns make's status (never exits).
compile() {
	local log=$BUILD/.emberd-make.log pid rc=0 t0=$SECONDS next=$PROGRESS_EVERY last n
	: >"$log"
	kmake -j"$JOBS" bzImage >"$log" 2>&1 &
	pid=$!
	# Killed or interrupted: take make (and through it the compilers) down too.
	# shellcheck disable=SC2064 # expand now: the pid is known
	trap "kill $pid 2>/dev/null; wait $pid 2>/dev/null" EXIT
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		if [ $((SECONDS - t0)) -ge "$next" ]; then
			next=$((next + PROGRESS_EVERY))
			n=$(grep -c '^  CC ' "$log" || true)
			last=$(grep '^  [A-Z]' "$log" | tail -n 1 | sed 's/^ *//; s/  */ /')
			progress "$(((SECONDS - t0) / 60))m$(((SECONDS - t0) % 60))s, $n files compiled (${last:-starting})"
		fi
	done
	wait "$pid" || rc=$?
	trap - EXIT
	cat "$log"
	return $rc
}

hex_at() { od -An -tx1 -j "$2" -N"$3" "$1" | tr -d ' \n'; }

check_outputs() {
	local bz=$BUILD/arch/x86/boot/bzImage elf=$BUILD/vmlinux
	[ "$(hex_at "$bz" $((0x202)) 4)" = 48647253 ] || { echo "$bz has no bzImage header (HdrS)" >&2; return 1; }
	readelf -h "$elf" | grep -q 'Machine:.*X86-64' || { echo "$elf is not an x86-64 ELF" >&2; return 1; }
	# XEN_ELFNOTE_PHYS32_ENTRY (18): the PVH entry point QEMU and Firecracker jump to.
	readelf -n "$elf" | grep -Eq 'Xen[[:space:]]+0x[0-9a-f]+[[:space:]]+(Unknown note type: \(0x00000012\)|.*PHYS32)' ||
		{ echo "$elf has no PVH entry note (CONFIG_PVH)" >&2; return 1; }
}

main() {
	local reused=0 rc=0 release
	if [ -f "$BUILD/.config" ]; then reused=1; fi
	# A failing configure (an option that did not take) exits here, through errexit.
	configure
	compile || rc=$?
	if [ $rc -ne 0 ]; then
		# A build killed mid-write can leave a truncated object that make thinks is current:
		# one retry from an empty directory. A fresh build that fails, fails.
		[ "$reused" = 1 ] || exit $rc
		progress "incremental build failed (exit $rc); retrying in an empty build directory"
		echo "=== incremental build failed; wiping $BUILD and building from scratch"
		rm -rf --one-file-system -- "$BUILD"
		configure
		compile
	fi
	check_outputs
	release=$(kmake -s kernelrelease)
	[[ $release =~ ^[0-9]+\.[0-9]+\.[0-9]+-[A-Za-z0-9._+-]+$ ]] || { echo "unexpected kernel release \`$release\`" >&2; return 1; }
	mkdir -p "$OUT"
	cp "$BUILD/arch/x86/boot/bzImage" "$OUT/bzImage"
	cp "$BUILD/vmlinux" "$OUT/vmlinux"
	cp "$BUILD/.config" "$OUT/config"
	printf '%s\n' "$release" >"$OUT/release"
	echo "release $release, bzImage $(du -h --apparent-size "$OUT/bzImage" | cut -f1), vmlinux $(du -h --apparent-size "$OUT/vmlinux" | cut -f1)"
}

# One line: bash reads a script as it runs it, so an edit during a build cannot run half a file.
main; exit
