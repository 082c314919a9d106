#!/bin/sh
# Python pack: precompile every module into bytecode the guest never has to rewrite, then prove the
# standard library the manifest promises actually imports. Run by rootfs/build.sh as
# `customize.sh ROOT` (inside mmdebstrap, so ROOT has /proc, /sys and /dev/shm mounted).
set -eu
root=$1
common=$(dirname "$0")/../../common

"$common/python-bytecode.sh" "$root"

chroot "$root" /usr/bin/python3 -I -c '
import json, sqlite3, uuid, ssl, asyncio, zoneinfo, decimal, ctypes, hashlib
sqlite3.connect(":memory:").execute("select 1").fetchone()
zoneinfo.ZoneInfo("Europe/Paris")
hashlib.sha256(b"").hexdigest()
print("python pack: standard library imports fine")
'
