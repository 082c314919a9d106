#!/usr/bin/env bash
# Builds everything a guest boots from into $IMAGES_DIR: kernels (emberd's minimal one and Debian's
# stock fallback), initramfs, one squashfs per language pack and the packs.json manifest the
# daemon reads. Called by `make images`; see --help
# and docs/images.md. Never installs packages on the host and never writes inside the git tree.
set -euo pipefail
umask 022
export LC_ALL=C.UTF-8

ROOTFS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_DIR=$(dirname "$ROOTFS_DIR")

usage() {
	cat <<'EOF'
Usage: rootfs/build.sh            (as root; normally via `make images`)

Builds the guest kernels, initramfs and language-pack images emberd boots, plus the manifest
packs.json. Each artifact is rebuilt only when its inputs changed (see docs/images.md).

Environment:
  IMAGES_DIR      output directory (default /var/lib/emberd/images; never inside the git tree)
  INIT_BIN        static guest PID 1 to put in the initramfs as /init
                  (default: bin/emberd-init of this checkout)
  DEBIAN_MIRROR   Debian mirror for the packs (default: the `URIs:` of the DEBIAN_SUITE entry in
                  /etc/apt/sources.list.d/debian.sources, else http://deb.debian.org/debian)
  DEBIAN_SUITE    Debian suite of every pack (default: each pack's `base`, see docs/packs.md)
  PACKS           space- or comma-separated packs to (re)build (default: every pack of PACKS_DIR)
  PACKS_DIR       where the pack specs are, one <name>/pack.json each (default rootfs/packs;
                  docs/packs.md has the format)
  FORCE=1         rebuild even when the stamps say up to date: everything, or with PACKS set
                  only those packs (kernel and initramfs are then rebuilt only if stale)
  KERNEL          which kernel packs.json points at: `minimal` (default: emberd's own kernel,
                  built from KERNEL_SOURCE_PACKAGE with rootfs/kernel/minimal.config; 5-12 min on 2
                  cores the first time) or `stock` (Debian's kernel; the minimal one is then
                  neither built nor needed). The stock kernel is built either way.
  KERNEL_PACKAGE  Debian kernel metapackage of the stock kernel (default linux-image-cloud-amd64)
  KERNEL_SOURCE_PACKAGE  Debian kernel source of the minimal kernel (default linux-source-6.1)
  KERNEL_JOBS     parallel jobs for the kernel build (default: nproc)
  SOURCE_DATE_EPOCH  timestamp stored for every file in the images (default 1704067200)

Outputs, relative to IMAGES_DIR:
  kernel/minimal/bzImage  minimal kernel (QEMU)  kernel/minimal/vmlinux  its ELF (PVH entry)
  kernel/minimal/release  its `uname -r`         kernel/minimal/config   its full .config
  kernel/vmlinuz       stock bzImage (QEMU)    kernel/vmlinux   uncompressed ELF (Firecracker)
  kernel/release       the stock kernel's `uname -r`
  initramfs.cpio.gz    /init (INIT_BIN) + the modules in rootfs/initramfs/modules.list and their
                       dependencies, with a trimmed modules.dep
  packs/<name>.squashfs  one read-only root per rootfs/packs/<name>/
  packs.json           the manifest (format in docs/images.md)
  cache/               the downloaded .debs, the unpacked kernel source (kernel-src/) and the
                       kernel's build tree (kernel-build/, incremental)
  logs/                one log per artifact, last build
  *.stamp              what each artifact was built from; delete one (or FORCE=1) to rebuild it
EOF
}

case ${1:-} in
-h | --help) usage; exit 0 ;;
"") ;;
*) echo "build.sh: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
esac

IMAGES_DIR=${IMAGES_DIR:-/var/lib/emberd/images}
INIT_BIN=${INIT_BIN:-$REPO_DIR/bin/emberd-init}
DEBIAN_SUITE=${DEBIAN_SUITE:-}
PACKS=${PACKS:-}
PACKS_DIR=${PACKS_DIR:-$ROOTFS_DIR/packs}
export EMBER_PACKS_DIR=$PACKS_DIR # manifest.py write reads the specs from there
FORCE=${FORCE:-0}
KERNEL=${KERNEL:-minimal}
KERNEL_PACKAGE=${KERNEL_PACKAGE:-linux-image-cloud-amd64}
KERNEL_SOURCE_PACKAGE=${KERNEL_SOURCE_PACKAGE:-linux-source-6.1}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1704067200}

MERGED_USR_HOOK=/usr/share/mmdebstrap/hooks/merged-usr
# Everything dpkg should never unpack into a pack: the guest is read-only, offline and C.UTF-8
# only (that locale lives in /usr/lib/locale, untouched).
DPKG_EXCLUDES=(/usr/share/doc/ /usr/share/man/ /usr/share/info/ /usr/share/locale/
	/usr/share/lintian/ /usr/share/linda/ /usr/share/doc-base/ /usr/share/bug/)

log() { printf '[images] %s\n' "$*"; }
warn() { printf '[images] warning: %s\n' "$*" >&2; }
die() { printf '[images] error: %s\n' "$*" >&2; exit 1; }

# Seconds since $1 (an $EPOCHREALTIME value), one decimal.
elapsed() {
	local now=$EPOCHREALTIME
	local us=$((10#${now/./} - 10#${1/./}))
	printf '%d.%d' $((us / 1000000)) $((us / 100000 % 10))
}

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# run_step LABEL HINT CMD...: runs CMD (errexit on, output to the current artifact's log), then
# prints one progress line (plus whatever CMD wrote to $WORK/step.note). On failure prints the
# log's tail, the log's path and HINT, and exits.
run_step() {
	local label=$1 hint=$2 t0=$EPOCHREALTIME rc
	shift 2
	printf '=== %s\n' "$label" >>"$STEP_LOG"
	set +e
	(
		set -e
		"$@"
	) >>"$STEP_LOG" 2>&1 </dev/null
	rc=$?
	set -e
	if [ $rc -ne 0 ]; then
		{
			printf '[images] %s: FAILED after %ss (exit %d). Last lines of %s:\n' \
				"$label" "$(elapsed "$t0")" $rc "$STEP_LOG"
			tail -n 25 "$STEP_LOG" | sed 's/^/    /'
			printf '[images] what to do: %s\n' "$hint"
		} >&2
		exit $rc
	fi
	local note=
	if [ -s "$WORK/step.note" ]; then note=": $(cat "$WORK/step.note")"; fi
	rm -f "$WORK/step.note"
	log "$label$note ($(elapsed "$t0")s)"
}

# ---------------------------------------------------------------------------------------------
# Stamps: <artifact>.stamp holds `key=<sha256 of the inputs>`, then `sha256 <hex> <path>` for each
# output, then the inputs themselves as comments. An artifact is up to date when the key matches
# and every output still hashes to what the stamp recorded.

# stamp_reason FORCED STAMP KEY OUTPUT...: prints why a rebuild is needed, or nothing when up to
# date. FORCED is 1 when FORCE=1 applies to this artifact.
stamp_reason() {
	local forced=$1 stamp=$2 key=$3 out
	shift 3
	if [ "$forced" = 1 ]; then echo "FORCE=1"; return; fi
	if [ ! -f "$stamp" ]; then echo "not built yet"; return; fi
	if ! grep -qxF "key=$key" "$stamp"; then echo "inputs changed"; return; fi
	for out; do
		if [ ! -f "$IMAGES_DIR/$out" ]; then echo "$out is missing"; return; fi
		if ! grep -qxF "sha256 $(sha_of "$IMAGES_DIR/$out") $out" "$stamp"; then
			echo "$out was modified since it was built"
			return
		fi
	done
}

# write_stamp STAMP KEY INPUTS OUTPUT...
write_stamp() {
	local stamp=$1 key=$2 inputs=$3 out
	shift 3
	{
		echo "key=$key"
		for out; do echo "sha256 $(sha_of "$IMAGES_DIR/$out") $out"; done
		# shellcheck disable=SC2001 # prefix every line
		sed 's/^/# /' <<<"$inputs"
	} >"$stamp.tmp.$$"
	mv -f "$stamp.tmp.$$" "$stamp"
}

stamp_sha() { # STAMP OUTPUT: the sha256 the stamp recorded for OUTPUT
	awk -v out="$2" '$1 == "sha256" && $3 == out { print $2 }' "$1"
}

# ---------------------------------------------------------------------------------------------
# Preflight

detect_mirror() {
	local f=/etc/apt/sources.list.d/debian.sources uri=
	if [ -r "$f" ]; then
		uri=$(awk -v suite="${DEBIAN_SUITE:-bookworm}" '
			function flush() {
				if (types ~ /(^|[ \t])deb([ \t]|$)/ && (" " suites " ") ~ ("[ \t]" suite "[ \t]") && uris != "") {
					split(uris, u, /[ \t]+/); print u[1]; found = 1; exit
				}
				types = uris = suites = ""
			}
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			/^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0; next }
			/^URIs:/ { sub(/^URIs:[ \t]*/, ""); uris = $0; next }
			/^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0; next }
			END { if (!found) flush() }' "$f")
	fi
	if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
		uri=$(awk -v suite="${DEBIAN_SUITE:-bookworm}" '$1 == "deb" {
			i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
			if ($(i + 1) == suite) { print $i; exit } }' /etc/apt/sources.list)
	fi
	case $uri in
	http://* | https://* | file:/*) echo "${uri%/}" ;;
	*) echo http://deb.debian.org/debian ;;
	esac
}

preflight() {
	[ "$(id -u)" -eq 0 ] || die "must run as root (mmdebstrap --mode=root, device nodes, image ownership): sudo make images"
	[ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ] || die "only amd64 hosts are supported"
	local missing=() tool
	for tool in apt-get apt-cache dpkg-deb depmod lz4 readelf mmdebstrap mksquashfs cpio gzip \
		python3 flock chroot od dd; do
		command -v "$tool" >/dev/null || missing+=("$tool")
	done
	[ ${#missing[@]} -eq 0 ] || die "missing tools: ${missing[*]}; run scripts/install-deps.sh"
	[ -d "$MERGED_USR_HOOK" ] || die "$MERGED_USR_HOOK is missing: mmdebstrap >= 1.0 is needed (scripts/install-deps.sh)"
	case $KERNEL in
	minimal)
		for tool in make gcc ld bison flex bc perl xz tar; do
			command -v "$tool" >/dev/null || missing+=("$tool")
		done
		# objtool (built with the kernel) links against libelf.
		[ -f /usr/include/gelf.h ] || missing+=("libelf-dev (/usr/include/gelf.h)")
		[ ${#missing[@]} -eq 0 ] || die "missing tools to build the minimal kernel: ${missing[*]}; install them (apt-get install bc bison flex libelf-dev; scripts/install-deps.sh lists them), or use the stock kernel: KERNEL=stock"
		;;
	stock) ;;
	*) die "KERNEL must be \`minimal\` or \`stock\`, got \`$KERNEL\`" ;;
	esac

	case $IMAGES_DIR in /*) ;; *) die "IMAGES_DIR must be an absolute path, got \`$IMAGES_DIR\`" ;; esac
	local real
	real=$(realpath -m "$IMAGES_DIR")
	case "$real/" in "$REPO_DIR/"*) die "IMAGES_DIR ($IMAGES_DIR) is inside the git tree; pick a path outside $REPO_DIR" ;; esac
	[ "$real" != / ] || die "IMAGES_DIR must not be /"
	IMAGES_DIR=$real

	[[ $SOURCE_DATE_EPOCH =~ ^[0-9]+$ ]] || die "SOURCE_DATE_EPOCH must be a number of seconds"
	DEBIAN_MIRROR=${DEBIAN_MIRROR:-$(detect_mirror)}
	DEBIAN_MIRROR=${DEBIAN_MIRROR%/}
}

# Every rootfs/packs/<name>/ with a pack.json, validated up front so a typo fails in a second, not
# after the first mmdebstrap.
discover_packs() {
	local dir name
	ALL_PACKS=()
	declare -gA PACK_INTERP=()
	for dir in "$PACKS_DIR"/*/; do
		dir=${dir%/}
		[ -f "$dir/pack.json" ] || continue
		name=$(basename "$dir")
		manifest check "$dir" || die "fix $dir/pack.json (see above; the format is in docs/packs.md)"
		ALL_PACKS+=("$name")
		PACK_INTERP[$name]=$(manifest get "$dir" interpreter)
	done
	[ ${#ALL_PACKS[@]} -gt 0 ] || die "no packs in $PACKS_DIR (each needs a pack.json)"

	SELECTED_PACKS=()
	local want
	if [ -z "$PACKS" ]; then
		SELECTED_PACKS=("${ALL_PACKS[@]}")
	else
		for want in ${PACKS//,/ }; do
			[ -n "${PACK_INTERP[$want]+set}" ] || die "PACKS names unknown pack \`$want\` (packs: ${ALL_PACKS[*]})"
			SELECTED_PACKS+=("$want")
		done
	fi
}

manifest() { python3 "$ROOTFS_DIR/lib/manifest.py" "$@"; }

# Unmounts anything left mounted below $1 (an interrupted mmdebstrap), then removes it without
# ever crossing into another filesystem.
remove_tree() {
	local dir=$1 mnt
	[ -e "$dir" ] || return 0
	while read -r mnt; do
		umount -l "$mnt" 2>/dev/null || true
	done < <(awk -v p="$dir/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
	rm -rf --one-file-system -- "$dir"
}

# find_temporaries EXPR...: our `*.tmp.*` files (NUL-separated), never looking inside the kernel's
# trees in cache/ (their file names are the kernel's business; no -delete: it disables -prune).
find_temporaries() {
	find "$IMAGES_DIR" -maxdepth 3 \( -path "$IMAGES_DIR/cache/kernel-src" -o \
		-path "$IMAGES_DIR/cache/kernel-build" \) -prune -o -type f -name '*.tmp.*' "$@" -print0
}

cleanup() {
	[ -n "${WORK:-}" ] && remove_tree "$WORK"
	find_temporaries -newer "$LOCK_FILE" 2>/dev/null | xargs -0 -r rm -f -- || true
}

# ---------------------------------------------------------------------------------------------
# Kernel

# Resolves the metapackage to the versioned image package apt would install, without installing.
kernel_resolve() {
	KPKG=$(apt-cache depends "$KERNEL_PACKAGE" 2>/dev/null |
		awk '$1 ~ /Depends:$/ && $2 ~ /^linux-image-/ { print $2; exit }')
	[ -n "$KPKG" ] || return 1
	KVER=$(apt-cache policy "$KPKG" 2>/dev/null | awk '$1 == "Candidate:" { print $2; exit }')
	[ -n "$KVER" ] && [ "$KVER" != "(none)" ] || return 1
	KSHA=$(apt-cache show "$KPKG=$KVER" 2>/dev/null | awk '$1 == "SHA256:" { print $2; exit }')
	KREL=${KPKG#linux-image-}
	KDEB=$IMAGES_DIR/cache/${KPKG}_${KVER//:/%3a}_amd64.deb
}

deb_is_good() { # DEB SHA256 (empty when apt's index has none)
	[ -f "$1" ] && { [ -z "$2" ] || [ "$(sha_of "$1")" = "$2" ]; }
}

# download_deb PKG VERSION SHA256 DEST: `apt-get download` (nothing is installed), checked
# against apt's index, moved into place atomically.
download_deb() {
	local pkg=$1 ver=$2 sha=$3 dest=$4 dl
	dl=$(mktemp -d "$IMAGES_DIR/cache/.download.XXXXXX")
	# apt drops privileges to _apt for downloads; give it a directory it may write.
	if id _apt >/dev/null 2>&1; then chown _apt "$dl"; fi
	(cd "$dl" && apt-get download -q "$pkg=$ver")
	local got=("$dl"/*.deb)
	[ -f "${got[0]}" ] || { echo "apt-get download produced no .deb" >&2; return 1; }
	mv -f "${got[0]}" "$dest.tmp.$$"
	rm -rf "$dl"
	[ -z "$sha" ] || [ "$(sha_of "$dest.tmp.$$")" = "$sha" ] || { echo "sha256 of the download does not match apt's index" >&2; return 1; }
	mv -f "$dest.tmp.$$" "$dest"
}

download_kernel_deb() {
	download_deb "$KPKG" "$KVER" "$KSHA" "$KDEB"
	# Older kernels are never needed again.
	find "$IMAGES_DIR/cache" -maxdepth 1 -name 'linux-image-*.deb' ! -name "$(basename "$KDEB")" -delete
}

# Makes sure $KDEB is present and intact; refreshes apt's lists once if the mirror moved on.
fetch_kernel() {
	if deb_is_good "$KDEB" "$KSHA"; then
		log "kernel: $KPKG $KVER cached (cache/$(basename "$KDEB"))"
		return
	fi
	local t0=$EPOCHREALTIME
	if ! download_kernel_deb >>"$STEP_LOG" 2>&1; then
		# Security updates delete old kernels from the mirror: stale apt lists are the usual cause.
		log "kernel: download failed, refreshing apt lists and retrying"
		apt-get update -qq >>"$STEP_LOG" 2>&1 || true
		kernel_resolve || die "apt-cache cannot resolve $KERNEL_PACKAGE after apt-get update; see $STEP_LOG"
		download_kernel_deb >>"$STEP_LOG" 2>&1 ||
			die "downloading $KPKG=$KVER failed; see $STEP_LOG (network? apt sources?)"
	fi
	log "kernel: apt-get download $KPKG $KVER ($(elapsed "$t0")s)"
}

unpack_kernel() { # into $KROOT
	dpkg-deb -x "$KDEB" "$KROOT"
	[ -f "$KROOT/boot/vmlinuz-$KREL" ] || { echo "$KDEB has no boot/vmlinuz-$KREL" >&2; return 1; }
	[ -d "$KROOT/lib/modules/$KREL" ] || { echo "$KDEB has no lib/modules/$KREL" >&2; return 1; }
	# The .deb ships no modules.dep (the postinst would generate it): generate it here.
	depmod -b "$KROOT" "$KREL"
}

le32() { od -An -tu4 --endian=little -j "$2" -N4 "$1" | tr -d ' '; }
hex_at() { od -An -tx1 -j "$2" -N"$3" "$1" | tr -d ' \n'; }

check_vmlinux() { # FILE: an x86-64 ELF executable?
	[ "$(hex_at "$1" 0 4)" = 7f454c46 ] || { echo "$1: no ELF magic" >&2; return 1; }
	[ "$(hex_at "$1" 4 2)" = 0201 ] || { echo "$1: not a little-endian 64-bit ELF" >&2; return 1; }
	[ "$(hex_at "$1" 18 2)" = 3e00 ] || { echo "$1: ELF machine is not x86-64" >&2; return 1; }
	readelf -h "$1" | grep -q 'Machine:.*X86-64' || { echo "$1: readelf disagrees" >&2; return 1; }
}

# The bzImage's boot header (boot protocol >= 2.08) says where the compressed kernel is:
# payload_offset/payload_length at 0x248/0x24c, relative to the protected-mode code that follows
# (setup_sects + 1) * 512 bytes of real-mode setup. Debian compresses with LZ4 (legacy frame,
# magic 02 21 4c 18) and appends the uncompressed size as 4 little-endian bytes.
extract_vmlinux() {
	local in=$1 out=$2 setup off len want got
	[ "$(hex_at "$in" $((0x202)) 4)" = 48647253 ] || { echo "$in is not a bzImage (no HdrS)" >&2; return 1; }
	setup=$(od -An -tu1 -j $((0x1f1)) -N1 "$in" | tr -d ' ')
	[ "$setup" -ne 0 ] || setup=4
	off=$(((setup + 1) * 512 + $(le32 "$in" $((0x248)))))
	len=$(le32 "$in" $((0x24c)))
	if [ "$(hex_at "$in" "$off" 4)" = 02214c18 ]; then
		dd if="$in" bs=1M iflag=skip_bytes,count_bytes skip="$off" count=$((len - 4)) status=none |
			lz4 -dc >"$out"
		want=$(le32 "$in" $((off + len - 4)))
		got=$(stat -c %s "$out")
		[ "$want" = "$got" ] || { echo "vmlinux is $got bytes, the bzImage says $want" >&2; return 1; }
	else
		# Header and payload disagree: do what scripts/extract-vmlinux does, try every LZ4 magic.
		echo "payload at $off starts with $(hex_at "$in" "$off" 4), scanning for the LZ4 magic"
		local o
		# shellcheck disable=SC2013 # offsets are single words
		for o in $(grep -obUaP '\x02\x21\x4c\x18' "$in" | cut -d: -f1); do
			tail -c +$((o + 1)) "$in" | lz4 -dc >"$out" 2>/dev/null || true
			if check_vmlinux "$out" 2>/dev/null; then break; fi
			: >"$out"
		done
	fi
	check_vmlinux "$out"
}

build_kernel() {
	local dir=$IMAGES_DIR/kernel
	cp "$KROOT/boot/vmlinuz-$KREL" "$dir/.vmlinuz.tmp.$$"
	extract_vmlinux "$dir/.vmlinuz.tmp.$$" "$dir/.vmlinux.tmp.$$"
	printf '%s\n' "$KREL" >"$dir/.release.tmp.$$"
	chmod 0644 "$dir"/.*.tmp.$$
	# Stamp first, outputs after: an interruption leaves no stamp, so the next run rebuilds.
	rm -f "$dir/kernel.stamp"
	mv -f "$dir/.vmlinuz.tmp.$$" "$dir/vmlinuz"
	mv -f "$dir/.vmlinux.tmp.$$" "$dir/vmlinux"
	mv -f "$dir/.release.tmp.$$" "$dir/release"
}

# ---------------------------------------------------------------------------------------------
# Initramfs

check_init_bin() {
	[ -f "$INIT_BIN" ] || die "init binary $INIT_BIN not found: run \`make bin/emberd-init\` or set INIT_BIN to a static x86-64 executable"
	if [ "$(hex_at "$INIT_BIN" 0 4)" != 7f454c46 ] || [ "$(hex_at "$INIT_BIN" 18 2)" != 3e00 ]; then
		die "$INIT_BIN is not an x86-64 ELF executable"
	fi
	if readelf -lW "$INIT_BIN" | grep -q 'Requesting program interpreter'; then
		die "$INIT_BIN is dynamically linked; the initramfs has no libc, link it with -static"
	fi
}

build_initramfs() {
	local stage=$WORK/initramfs tmp=$IMAGES_DIR/.initramfs.cpio.gz.tmp.$$
	mkdir -p "$stage"/{dev,proc,sys,newroot,mnt}
	# The kernel opens /dev/console for PID 1's stdio before /init runs; without the node PID 1
	# starts with no fds 0-2 ("unable to open an initial console").
	mknod -m 0600 "$stage/dev/console" c 5 1
	install -m 0755 "$INIT_BIN" "$stage/init"
	python3 "$ROOTFS_DIR/lib/modules.py" "$KROOT/lib/modules/$KREL" \
		"$ROOTFS_DIR/initramfs/modules.list" "$stage/lib/modules/$KREL"
	find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	(cd "$stage" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
		cpio -o -H newc --reproducible -R 0:0 --quiet) | gzip -n -9 >"$tmp"
	rm -f "$IMAGES_DIR/initramfs.cpio.gz.stamp"
	mv -f "$tmp" "$IMAGES_DIR/initramfs.cpio.gz"
}

# ---------------------------------------------------------------------------------------------
# Minimal kernel: built from Debian's kernel source package with rootfs/kernel/minimal.config.
# cache/kernel-src holds the unpacked source (never built in), cache/kernel-build the out-of-tree
# build; both are caches: deleting them costs a full rebuild, nothing else.

MINIMAL_OUTPUTS=(kernel/minimal/bzImage kernel/minimal/vmlinux kernel/minimal/release
	kernel/minimal/config)

# The source package's candidate version, from local apt lists (no network).
source_resolve() {
	SVER=$(apt-cache policy "$KERNEL_SOURCE_PACKAGE" 2>/dev/null | awk '$1 == "Candidate:" { print $2; exit }')
	[ -n "$SVER" ] && [ "$SVER" != "(none)" ] || return 1
	SSHA=$(apt-cache show "$KERNEL_SOURCE_PACKAGE=$SVER" 2>/dev/null | awk '$1 == "SHA256:" { print $2; exit }')
	SDEB=$IMAGES_DIR/cache/${KERNEL_SOURCE_PACKAGE}_${SVER//:/%3a}_all.deb
	KSRC_ROOT=$IMAGES_DIR/cache/kernel-src
	KBUILD_DIR=$IMAGES_DIR/cache/kernel-build
}

minimal_keys() {
	MINIMAL_INPUTS=$(printf 'recipe=minimal-kernel-v1\nbuild-kernel.sh=%s\nminimal.config=%s\nkconfig.py=%s\nsource=%s=%s\ncc=%s\nld=%s\nsource_date_epoch=%s\n' \
		"$(sha_of "$ROOTFS_DIR/kernel/build-kernel.sh")" "$(sha_of "$ROOTFS_DIR/kernel/minimal.config")" \
		"$(sha_of "$ROOTFS_DIR/lib/kconfig.py")" "$KERNEL_SOURCE_PACKAGE" "$SVER" \
		"$(gcc --version | head -n 1)" "$(ld --version | head -n 1)" "$SOURCE_DATE_EPOCH")
	MINIMAL_KEY=$(sha256sum <<<"$MINIMAL_INPUTS" | cut -d' ' -f1)
}

fetch_source() {
	if deb_is_good "$SDEB" "$SSHA"; then
		log "minimal kernel: $KERNEL_SOURCE_PACKAGE $SVER cached (cache/$(basename "$SDEB"))"
		return
	fi
	local t0=$EPOCHREALTIME
	if ! download_deb "$KERNEL_SOURCE_PACKAGE" "$SVER" "$SSHA" "$SDEB" >>"$STEP_LOG" 2>&1; then
		log "minimal kernel: download failed, refreshing apt lists and retrying"
		apt-get update -qq >>"$STEP_LOG" 2>&1 || true
		source_resolve || die "apt-cache cannot resolve $KERNEL_SOURCE_PACKAGE after apt-get update; see $STEP_LOG"
		download_deb "$KERNEL_SOURCE_PACKAGE" "$SVER" "$SSHA" "$SDEB" >>"$STEP_LOG" 2>&1 ||
			die "downloading $KERNEL_SOURCE_PACKAGE=$SVER failed; see $STEP_LOG (network? apt sources?)"
	fi
	find "$IMAGES_DIR/cache" -maxdepth 1 -name "${KERNEL_SOURCE_PACKAGE}_*.deb" ! -name "$(basename "$SDEB")" -delete
	log "minimal kernel: apt-get download $KERNEL_SOURCE_PACKAGE $SVER, $(size_of "$SDEB") ($(elapsed "$t0")s)"
}

# The .deb holds usr/src/linux-source-X.Y.tar.xz; unpack that into cache/kernel-src. The marker,
# written last, says which package the tree came from; anything else there is a partial unpack.
source_marker() { echo "$KERNEL_SOURCE_PACKAGE=$SVER $(sha_of "$SDEB")"; }

source_is_unpacked() {
	[ -f "$KSRC_ROOT/.emberd-source" ] && [ "$(cat "$KSRC_ROOT/.emberd-source")" = "$1" ] &&
		[ -n "$(source_tree)" ]
}

source_tree() { # the unpacked tree's top directory, or nothing
	local d
	for d in "$KSRC_ROOT"/linux-source-*/; do
		if [ -f "$d/Makefile" ] && [ -f "$d/Kconfig" ]; then echo "${d%/}"; return; fi
	done
}

unpack_source() {
	local marker=$1 tarball
	remove_tree "$KSRC_ROOT"
	# Objects built from another source are worthless.
	remove_tree "$KBUILD_DIR"
	mkdir -p "$KSRC_ROOT"
	tarball=$(dpkg-deb -c "$SDEB" | awk '{ print $NF }' | grep -E '^\./usr/src/linux-source-[0-9.]+\.tar\.xz$' | head -n 1)
	[ -n "$tarball" ] || { echo "$SDEB holds no usr/src/linux-source-*.tar.xz" >&2; return 1; }
	dpkg-deb --fsys-tarfile "$SDEB" | tar -xO "$tarball" | tar -xJ -C "$KSRC_ROOT" --no-same-owner
	[ -n "$(source_tree)" ] || { echo "$tarball did not unpack to a kernel tree" >&2; return 1; }
	echo "$marker" >"$KSRC_ROOT/.emberd-source"
	echo "$(basename "$(source_tree)"), $(du -sh "$KSRC_ROOT" | cut -f1)" >"$WORK/step.note"
}

build_minimal_kernel() {
	local out=$WORK/minimal-kernel
	EMBER_PROGRESS_FD=$PROGRESS_FD "$ROOTFS_DIR/kernel/build-kernel.sh" "$(source_tree)" \
		"$KBUILD_DIR" "$ROOTFS_DIR/kernel/minimal.config" "$out"
	echo "$(cat "$out/release"), bzImage $(size_of "$out/bzImage"), vmlinux $(size_of "$out/vmlinux")" >"$WORK/step.note"
}

install_minimal_kernel() {
	local dir=$IMAGES_DIR/kernel/minimal out=$WORK/minimal-kernel f
	mkdir -p "$dir"
	for f in bzImage vmlinux release config; do
		cp "$out/$f" "$dir/.$f.tmp.$$"
		chmod 0644 "$dir/.$f.tmp.$$"
	done
	# Stamp first, outputs after: an interruption leaves no stamp, so the next run rebuilds.
	rm -f "$dir/kernel.stamp"
	for f in bzImage vmlinux release config; do mv -f "$dir/.$f.tmp.$$" "$dir/$f"; done
}

# build_minimal FORCED: the minimal kernel step of main(), skipped when its stamp is current.
build_minimal() {
	local forced=$1 reason resolved marker
	source_resolve || die "apt-cache cannot resolve $KERNEL_SOURCE_PACKAGE: run \`apt-get update\` (or use the stock kernel: KERNEL=stock)"
	minimal_keys
	reason=$(stamp_reason "$forced" "$IMAGES_DIR/kernel/minimal/kernel.stamp" "$MINIMAL_KEY" "${MINIMAL_OUTPUTS[@]}")
	if [ -z "$reason" ]; then
		log "minimal kernel: up to date, skipped ($(cat "$IMAGES_DIR/kernel/minimal/release"))"
		skipped+=(minimal-kernel)
		return
	fi
	log "minimal kernel: rebuilding ($reason)"
	STEP_LOG=$IMAGES_DIR/logs/kernel-minimal.log
	: >"$STEP_LOG"
	resolved=$SVER
	fetch_source
	if [ "$SVER" != "$resolved" ]; then minimal_keys; fi # apt-get update found a newer source
	marker=$(source_marker)
	if source_is_unpacked "$marker"; then
		log "minimal kernel: source already unpacked (cache/kernel-src/$(basename "$(source_tree)"))"
	else
		run_step "minimal kernel: unpack $KERNEL_SOURCE_PACKAGE $SVER" \
			"disk full under $IMAGES_DIR/cache? (the tree takes ~1.5 GB); delete $SDEB to re-download it" \
			unpack_source "$marker"
	fi
	run_step "minimal kernel: configure + make bzImage (-j${KERNEL_JOBS:-$(nproc)})" \
		"a \`kconfig.py: CONFIG_…\` line means an option of rootfs/kernel/minimal.config did not take (missing dependency or typo); otherwise see the log. KERNEL=stock skips this kernel" \
		build_minimal_kernel
	install_minimal_kernel
	write_stamp "$IMAGES_DIR/kernel/minimal/kernel.stamp" "$MINIMAL_KEY" "$MINIMAL_INPUTS" "${MINIMAL_OUTPUTS[@]}"
	built+=(minimal-kernel)
}

# ---------------------------------------------------------------------------------------------
# Packs

pack_inputs() {
	local name=$1 dir=$PACKS_DIR/$1
	echo "recipe=pack-v2"
	echo "build.sh=$(sha_of "$ROOTFS_DIR/build.sh")"
	local f
	for f in "$ROOTFS_DIR"/common/*.sh; do echo "$(basename "$f")=$(sha_of "$f")"; done
	manifest get "$dir" image-inputs
	echo "mirror=$DEBIAN_MIRROR"
	echo "suite=$(pack_suite "$name")"
	echo "source_date_epoch=$SOURCE_DATE_EPOCH"
	echo "tools=$(dpkg-query -W -f='${Package}=${Version} ' mmdebstrap squashfs-tools 2>/dev/null)"
}

# The pack's Debian suite: its spec's `base`, unless DEBIAN_SUITE overrides every pack's.
pack_suite() { if [ -n "$DEBIAN_SUITE" ]; then echo "$DEBIAN_SUITE"; else manifest get "$PACKS_DIR/$1" base; fi; }

mmdebstrap_pack() {
	local name=$1 root=$2 dir=$PACKS_DIR/$1 includes pat customize
	includes=$(manifest get "$dir" packages)
	customize=$(manifest get "$dir" customize)
	local args=(--mode=root --variant=essential --format=directory --verbose
		--hook-dir="$MERGED_USR_HOOK"
		--aptopt='Acquire::Retries "3"' --dpkgopt=force-unsafe-io)
	for pat in "${DPKG_EXCLUDES[@]}"; do args+=(--dpkgopt="path-exclude=$pat*"); done
	[ -z "$includes" ] || args+=(--include="$includes")
	# Hooks get the chroot as $1 with /proc, /sys and /dev/shm mounted. Paths travel in the
	# environment so no quoting of them ends up in a shell string. Order: the sandbox user, the
	# spec's files, then its customize.sh (which may rely on both).
	# shellcheck disable=SC2016
	args+=(--customize-hook='"$EMBER_PREPARE_ROOT" "$1"')
	# shellcheck disable=SC2016
	args+=(--customize-hook='python3 "$EMBER_MANIFEST" install-files "$EMBER_PACK_DIR" "$1"')
	# shellcheck disable=SC2016
	if [ -n "$customize" ]; then args+=(--customize-hook='"$EMBER_PACK_CUSTOMIZE" "$1"'); fi
	EMBER_PREPARE_ROOT=$ROOTFS_DIR/common/prepare-root.sh EMBER_PACK_CUSTOMIZE=$customize \
		EMBER_MANIFEST=$ROOTFS_DIR/lib/manifest.py EMBER_PACK_DIR=$dir \
		mmdebstrap "${args[@]}" "$(pack_suite "$name")" "$root" "$DEBIAN_MIRROR"
}

finish_pack() {
	local name=$1 root=$2 interp
	"$ROOTFS_DIR/common/finish-root.sh" "$root"
	interp=$(manifest get "$PACKS_DIR/$name" interp0)
	# Resolve inside the root (its symlinks are relative to it), with the root's own shell.
	# shellcheck disable=SC2016
	chroot "$root" /bin/sh -c 'test -f "$1" && test -x "$1"' sh "$interp" ||
		{ echo "interpreter $interp ($PACKS_DIR/$name/pack.json) is not an executable file in the image" >&2; return 1; }
	echo "$interp ok, $(du -sh "$root" | cut -f1) unpacked" >"$WORK/step.note"
}

# Squashes the root into $WORK: nothing under IMAGES_DIR changes until the smoke test passed.
squash_pack() {
	local root=$2 tmp=$WORK/$1.squashfs
	# mksquashfs >= 4.5 also reads SOURCE_DATE_EPOCH but refuses it next to explicit times.
	env -u SOURCE_DATE_EPOCH mksquashfs "$root" "$tmp" -comp zstd -noappend -quiet -no-progress \
		-mkfs-time "$SOURCE_DATE_EPOCH" -all-time "$SOURCE_DATE_EPOCH"
	chmod 0644 "$tmp"
	size_of "$tmp" >"$WORK/step.note"
}

# Boots the new image in a real VM (bin/ember-vm, with this run's kernel and initramfs) and runs
# the spec's smoke test: its stdout must be exactly what the spec expects.
smoke_pack() {
	local name=$1 dir=$PACKS_DIR/$1 tmp=$WORK/$1.squashfs kdir=kernel bzimage=kernel/vmlinuz
	local expected
	if [ "$KERNEL" = minimal ]; then kdir=kernel/minimal bzimage=kernel/minimal/bzImage; fi
	expected=$(manifest get "$dir" smoke-stdout; echo x) # keep trailing newlines
	expected=${expected%x}
	manifest get "$dir" entry "$(sha_of "$tmp")" "packs/$name.squashfs" >"$WORK/$name.entry.json"
	python3 "$ROOTFS_DIR/lib/smoke.py" --images "$IMAGES_DIR" --bzimage "$bzimage" \
		--vmlinux "$kdir/vmlinux" --initramfs initramfs.cpio.gz --release "$(cat "$IMAGES_DIR/$kdir/release")" \
		--entry "$WORK/$name.entry.json" --squashfs "$tmp" \
		--code "$(manifest get "$dir" smoke-code)" --stdout "$expected"
	echo "stdout as expected" >"$WORK/step.note"
}

publish_pack() {
	rm -f "$IMAGES_DIR/packs/$1.squashfs.stamp"
	mv -f "$WORK/$1.squashfs" "$IMAGES_DIR/packs/$1.squashfs"
}

size_of() { du -h --apparent-size "$1" | cut -f1; }

# Inputs and keys of the kernel and initramfs stamps, for the kernel resolved in KPKG/KVER.
shared_keys() {
	local build_sha
	build_sha=$(sha_of "$ROOTFS_DIR/build.sh")
	KERNEL_INPUTS=$(printf 'recipe=kernel-v1\nbuild.sh=%s\npackage=%s=%s\n' "$build_sha" "$KPKG" "$KVER")
	KERNEL_KEY=$(sha256sum <<<"$KERNEL_INPUTS" | cut -d' ' -f1)
	INITRD_INPUTS=$(printf 'recipe=initramfs-v1\nbuild.sh=%s\nmodules.py=%s\nmodules.list=%s\ninit=%s\npackage=%s=%s\nsource_date_epoch=%s\n' \
		"$build_sha" "$(sha_of "$ROOTFS_DIR/lib/modules.py")" \
		"$(sha_of "$ROOTFS_DIR/initramfs/modules.list")" "$(sha_of "$INIT_BIN")" \
		"$KPKG" "$KVER" "$SOURCE_DATE_EPOCH")
	INITRD_KEY=$(sha256sum <<<"$INITRD_INPUTS" | cut -d' ' -f1)
}

# ---------------------------------------------------------------------------------------------

main() {
	preflight
	mkdir -p "$IMAGES_DIR"/{kernel,packs,cache,logs}
	LOCK_FILE=$IMAGES_DIR/.lock
	exec 9>"$LOCK_FILE"
	if ! flock -n 9; then
		log "another build holds $LOCK_FILE; waiting for it"
		flock 9
	fi
	touch "$LOCK_FILE"
	# Leftovers of a build that was killed: we hold the lock, so nobody else owns them.
	local stale
	for stale in "$IMAGES_DIR"/.work.* "$IMAGES_DIR"/cache/.download.*; do
		[ ! -e "$stale" ] || remove_tree "$stale"
	done
	find_temporaries ! -newer "$LOCK_FILE" | xargs -0 -r rm -f --
	# Progress lines of long steps (the kernel build) go here: run_step sends stdout to the log.
	exec {PROGRESS_FD}>&1
	WORK=$(mktemp -d "$IMAGES_DIR/.work.XXXXXX")
	KROOT=$WORK/kernel-root
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	local t_start=$EPOCHREALTIME built=() skipped=() key inputs name
	discover_packs
	log "into $IMAGES_DIR (mirror $DEBIAN_MIRROR, packs: ${SELECTED_PACKS[*]})"

	# Kernel (vmlinuz, vmlinux, release) and initramfs. apt-cache only reads local lists: no
	# network unless one of them must be rebuilt.
	kernel_resolve || die "apt-cache cannot resolve $KERNEL_PACKAGE: run \`apt-get update\` (needs Debian 12 with the main component)"
	check_init_bin
	local kernel_outputs=(kernel/vmlinuz kernel/vmlinux kernel/release) reason initrd_reason
	# With PACKS set, FORCE=1 is about those packs: the shared artifacts rebuild only if stale.
	local force_shared=0
	if [ "$FORCE" = 1 ] && [ -z "$PACKS" ]; then force_shared=1; fi
	shared_keys
	reason=$(stamp_reason $force_shared "$IMAGES_DIR/kernel/kernel.stamp" "$KERNEL_KEY" "${kernel_outputs[@]}")
	initrd_reason=$(stamp_reason $force_shared "$IMAGES_DIR/initramfs.cpio.gz.stamp" "$INITRD_KEY" initramfs.cpio.gz)

	if [ -n "$reason" ] || [ -n "$initrd_reason" ]; then
		STEP_LOG=$IMAGES_DIR/logs/kernel.log
		: >"$STEP_LOG"
		local resolved=$KPKG=$KVER
		fetch_kernel
		if [ "$KPKG=$KVER" != "$resolved" ]; then # apt-get update found a newer kernel
			shared_keys
			reason="kernel changed to $KPKG $KVER"
			initrd_reason=$reason
		fi
		run_step "kernel: dpkg-deb -x + depmod $KREL" \
			"check that $KDEB is a valid kernel package (delete it to re-download)" unpack_kernel
	fi
	if [ -n "$reason" ]; then
		log "kernel: rebuilding ($reason)"
		run_step "kernel: vmlinuz + vmlinux (LZ4) + release" \
			"the kernel's compression or boot header changed; see extract_vmlinux in rootfs/build.sh" \
			build_kernel
		write_stamp "$IMAGES_DIR/kernel/kernel.stamp" "$KERNEL_KEY" "$KERNEL_INPUTS" "${kernel_outputs[@]}"
		built+=(kernel)
	else
		log "kernel: up to date, skipped ($KREL)"
		skipped+=(kernel)
	fi

	if [ -n "$initrd_reason" ]; then
		log "initramfs: rebuilding ($initrd_reason)"
		STEP_LOG=$IMAGES_DIR/logs/initramfs.log
		: >"$STEP_LOG"
		run_step "initramfs: /init + modules" \
			"check rootfs/initramfs/modules.list against the kernel's modules (see the log)" \
			build_initramfs
		sed -n 's/^\([0-9]* modules: .*\)/[images]   \1/p' "$STEP_LOG"
		write_stamp "$IMAGES_DIR/initramfs.cpio.gz.stamp" "$INITRD_KEY" "$INITRD_INPUTS" initramfs.cpio.gz
		built+=(initramfs)
	else
		log "initramfs: up to date, skipped"
		skipped+=(initramfs)
	fi

	if [ "$KERNEL" = minimal ]; then
		build_minimal "$force_shared"
	else
		log "minimal kernel: not built (KERNEL=stock)"
	fi

	for name in "${SELECTED_PACKS[@]}"; do
		local out=packs/$name.squashfs stamp=$IMAGES_DIR/packs/$name.squashfs.stamp root=$WORK/pack-$name
		inputs=$(pack_inputs "$name")
		key=$(sha256sum <<<"$inputs" | cut -d' ' -f1)
		reason=$(stamp_reason "$FORCE" "$stamp" "$key" "$out")
		if [ -z "$reason" ]; then
			log "$name pack: up to date, skipped ($out, $(size_of "$IMAGES_DIR/$out"))"
			skipped+=("$name")
			continue
		fi
		log "$name pack: rebuilding ($reason)"
		STEP_LOG=$IMAGES_DIR/logs/pack-$name.log
		: >"$STEP_LOG"
		run_step "$name pack: mmdebstrap $(pack_suite "$name")" \
			"check network access to $DEBIAN_MIRROR (or set DEBIAN_MIRROR) and the \`packages\` and \`files\` of $PACKS_DIR/$name/pack.json; a failing customize.sh shows in the log" \
			mmdebstrap_pack "$name" "$root"
		run_step "$name pack: finish root" \
			"see rootfs/common/finish-root.sh and the interpreter in $PACKS_DIR/$name/pack.json" \
			finish_pack "$name" "$root"
		run_step "$name pack: mksquashfs zstd" "see the mksquashfs error above (disk full under $IMAGES_DIR?)" \
			squash_pack "$name" "$root"
		run_step "$name pack: smoke test in a VM" \
			"the image was not published; the VM's output is above and in the log (fix the packages or the \`smoke\` of $PACKS_DIR/$name/pack.json)" \
			smoke_pack "$name"
		publish_pack "$name"
		write_stamp "$stamp" "$key" "$inputs" "$out"
		remove_tree "$root"
		built+=("$name")
	done

	# The manifest lists every defined pack that has an image, selected this run or not.
	local manifest_args=() sha result
	for name in "${ALL_PACKS[@]}"; do
		local stamp=$IMAGES_DIR/packs/$name.squashfs.stamp
		if [ ! -f "$stamp" ] || [ ! -f "$IMAGES_DIR/packs/$name.squashfs" ]; then
			warn "$name pack has no image yet; left out of packs.json (build it with PACKS=$name)"
			continue
		fi
		sha=$(stamp_sha "$stamp" "packs/$name.squashfs")
		[ -n "$sha" ] || die "$stamp records no sha256; delete it and rebuild"
		if ! grep -qxF "key=$(pack_inputs "$name" | sha256sum | cut -d' ' -f1)" "$stamp"; then
			warn "$name pack image is older than its recipe (not in PACKS this run)"
		fi
		manifest_args+=("$name=$sha")
	done
	# The kernel: the minimal one unless KERNEL=stock (the stock one is always there as fallback).
	local kdir=kernel bzimage=kernel/vmlinuz
	if [ "$KERNEL" = minimal ]; then kdir=kernel/minimal bzimage=kernel/minimal/bzImage; fi
	result=$(python3 "$ROOTFS_DIR/lib/manifest.py" write "$IMAGES_DIR/packs.json" \
		"$bzimage" "$kdir/vmlinux" "$(cat "$IMAGES_DIR/$kdir/release")" "${manifest_args[@]}") ||
		die "writing packs.json failed (see above)"
	log "packs.json: $result (${#manifest_args[@]} packs, kernel $bzimage, $(cat "$IMAGES_DIR/$kdir/release"))"

	log "done in $(elapsed "$t_start")s; built: ${built[*]:-nothing}; skipped (up to date): ${skipped[*]:-nothing}"
}

main "$@"
