#!/bin/sh
# Python pack: precompile every module into bytecode the guest never has to rewrite, then prove the
# standard library the manifest promises actually imports. Run by rootfs/build.sh as
# `customize.sh ROOT` (inside mmdebstrap, so ROOT has /proc, /sys and /dev/shm mounted).
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

chroot "$root" /usr/bin/python3 -I -c '
import json, sqlite3, uuid, ssl, asyncio, zoneinfo, decimal, ctypes, hashlib
sqlite3.connect(":memory:").execute("select 1").fetchone()
zoneinfo.ZoneInfo("Europe/Paris")
hashlib.sha256(b"").hexdigest()
print("python pack: standard library imports fine")
'
