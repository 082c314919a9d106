#!/bin/sh
# Shared by the python packs' customize.sh: precompiles every module under /usr/lib/python3* into
# bytecode the guest never has to rewrite. Run as `python-bytecode.sh ROOT` inside mmdebstrap
# (ROOT has /proc, /sys and /dev/shm mounted); must run after anything that adds or removes modules.
set -eu
root=$1

# Debian's postinst writes timestamp-checked .pyc files; the image stores every mtime as
# SOURCE_DATE_EPOCH, so those would all look stale and each guest would recompile (and write) the
# stdlib into its tmpfs on every import. Unchecked-hash pycs are valid whatever the mtimes are and
# cost nothing to validate; the image is read-only, so the sources can never drift from them.
dirs=$(cd "$root" && for d in usr/lib/python3 usr/lib/python3.*; do
	if [ -d "$d" ]; then printf '/%s ' "$d"; fi
done)
# shellcheck disable=SC2086 # $dirs is a list of plain paths
chroot "$root" /usr/bin/python3 -m compileall -q -f -j 0 --invalidation-mode unchecked-hash $dirs
