#!/bin/sh
# python-data pack: drops what two hard Depends pulled in but no import ever loads, makes
# matplotlib render with Agg from a font cache built here, strips the test suites, precompiles
# the bytecode and proves numpy, pandas, scipy and matplotlib work. Run by rootfs/build.sh as
# `customize.sh ROOT` (inside mmdebstrap, so ROOT has /proc, /sys and /dev/shm mounted).
set -eu
root=$1
common=$(dirname "$0")/../../common

# python3-scipy Depends on python3-pythran (an extension compiler: g++, libboost-dev,
# python3-all-dev, BLAS headers), python3-matplotlib on python3-pil.imagetk (Tk and X11), and
# python3-fonttools on sympy, mpmath and unicode-data (for fontTools.misc.symfont only) and on
# lxml (fontTools.ufoLib; with libxml2 it pulls ICU, 36 MB). None is loaded by numpy, pandas,
# scipy or matplotlib (PNG, PDF and SVG output included; pandas.read_xml needs parser="etree"). They go with --force-depends, so
# dpkg's database lists their dependants as broken: the guest never runs apt. The shared-library
# check below proves nothing left behind needed them.
drop='.*-dev|gcc(-12)?|g\+\+(-12)?|cpp(-12)?|binutils(-.*)?|libbinutils|libctf0|libctf-nobfd0'
drop="$drop"'|libgprofng0|libjansson4|libasan8|libtsan2|liblsan0|libubsan1|libhwasan0|libitm1'
drop="$drop"'|libcc1-0|libisl23|libmpc3|libmpfr6|libc-dev-bin|rpcsvc-proto|python3(\.11)?-dev'
drop="$drop"'|python3-all.*|python3-pythran|python3-beniget|python3-gast|python3-ply'
drop="$drop"'|python3-tk|python3-pil\.imagetk|tk8\.6.*|blt|libtk8\.6|libtcl8\.6|tcl8\.6'
drop="$drop"'|libx11-6|libx11-data|libxext6|libxft2|libxrender1|libxss1|libjs-jquery.*'
drop="$drop"'|javascript-common|python3-sympy|python3-mpmath|unicode-data'
drop="$drop"'|python3-lxml|libxslt1\.1|libxml2|libicu72'
# shellcheck disable=SC2016 # dpkg-query fills in ${Package}
pkgs=$(chroot "$root" dpkg-query -W -f '${Package}\n' | grep -xE "$drop" || true)
# shellcheck disable=SC2086 # one package name per word
chroot "$root" dpkg --purge --force-depends $pkgs
echo "python-data pack: dropped $(echo "$pkgs" | wc -w) packages"

# Test suites (numpy.testing and matplotlib.testing are modules and stay).
find "$root/usr/lib/python3/dist-packages" -depth -type d -name tests \
	\( -path '*/numpy/*' -o -path '*/scipy/*' -o -path '*/pandas/*' -o -path '*/matplotlib/*' \
	-o -path '*/mpl_toolkits/*' \) -exec rm -rf {} +

# Debian's matplotlib reads /etc/matplotlibrc, whose one active line picks TkAgg (gone above).
sed -i 's/^backend[[:space:]]*:.*/backend: Agg/' "$root/etc/matplotlibrc"
grep -qx 'backend: Agg' "$root/etc/matplotlibrc"

"$common/python-bytecode.sh" "$root"

# Every shared object must still find its libraries (the --force-depends above).
missing=$(chroot "$root" /bin/sh -c 'find /usr/lib/python3 /usr/lib/python3.11 \
	/usr/lib/x86_64-linux-gnu -name "*.so*" -type f -exec ldd {} + 2>/dev/null' | grep 'not found' || true)
if [ -n "$missing" ]; then
	echo "python-data pack: shared libraries not found:" >&2
	echo "$missing" >&2
	exit 1
fi

# The font list matplotlib builds at its first import (seconds under TCG, in every sandbox):
# built once here, in the cache directory the sandbox user gets (~/.cache/matplotlib; the home is
# on the overlay, so it stays writable).
chroot --userspec=1000:1000 "$root" env -i HOME=/home/sandbox LANG=C.UTF-8 /usr/bin/python3 -c '
import matplotlib, matplotlib.font_manager
assert matplotlib.get_backend() == "agg", matplotlib.get_backend()
print("python-data pack: font cache in", matplotlib.get_cachedir())
'
ls "$root/home/sandbox/.cache/matplotlib/"fontlist-v*.json >/dev/null

chroot --userspec=1000:1000 "$root" env -i HOME=/home/sandbox LANG=C.UTF-8 /usr/bin/python3 -I -c '
import io, numpy, pandas, scipy.linalg, scipy.stats, matplotlib.pyplot as plt
assert abs(scipy.linalg.det(numpy.eye(3) * 2) - 8) < 1e-9
assert pandas.DataFrame({"a": [1, 2, 3]})["a"].sum() == 6
fig = plt.figure(figsize=(2, 1), dpi=50)
plt.plot([1, 2, 3])
buf = io.BytesIO()
fig.savefig(buf, format="png")
assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
print("python-data pack: numpy", numpy.__version__, "pandas", pandas.__version__,
      "scipy", scipy.__version__, "matplotlib", plt.matplotlib.__version__)
'
