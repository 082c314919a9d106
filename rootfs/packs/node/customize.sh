#!/bin/sh
# Node pack: prove the interpreter starts and its bundled modules load in the finished root, so a
# broken libnode/ICU combination fails the build instead of the first sandbox. Run by
# rootfs/build.sh as `customize.sh ROOT` (inside mmdebstrap, with /proc, /sys and /dev/shm mounted).
set -eu
root=$1

out=$(chroot "$root" /usr/bin/node -e '
const assert = require("assert");
require("vm"); require("util"); require("zlib"); require("crypto").createHash("sha256");
assert.strictEqual(new Intl.NumberFormat("de-DE").format(1234.5), "1.234,5");
console.log(6 * 7);
')
if [ "$out" != 42 ]; then
	echo "node pack: smoke test printed \`$out\`, want 42" >&2
	exit 1
fi
echo "node pack: $(chroot "$root" /usr/bin/node --version) runs"
