#!/usr/bin/env bash
# Builds the Debian package (debian/) with `dpkg-buildpackage -us -uc -b` on a copy of the tree
# in OUT_DIR/emberd-<version>/, because dpkg-buildpackage cleans its tree and writes its output
# beside it (../*.deb): the checkout itself is never written. Called by `make deb`
# (OUT_DIR build/deb) and tests/e2e/test_install.py (a temporary directory).
#   usage: scripts/build-deb.sh OUT_DIR     -> OUT_DIR/emberd_<version>_amd64.deb
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: scripts/build-deb.sh OUT_DIR" >&2; exit 2; }
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
for tool in dpkg-buildpackage dh help2man; do
	command -v "$tool" >/dev/null ||
		{ echo "build-deb: $tool is missing: run scripts/install-deps.sh" >&2; exit 1; }
done

version=$(dpkg-parsechangelog -l "$REPO_DIR/debian/changelog" -S Version)
make_version=$(sed -n 's/^VERSION := //p' "$REPO_DIR/Makefile")
[ "$version" = "$make_version" ] ||
	{ echo "build-deb: debian/changelog: $version, Makefile VERSION: $make_version" >&2; exit 1; }

mkdir -p "$1"
out=$(cd "$1" && pwd -P)
src=$out/emberd-$version
rm -rf "$src"
mkdir -p "$src"
# The files git knows (tracked, and new ones not ignored): no build/, bin/ or node_modules.
(
	cd "$REPO_DIR"
	git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done |
		tar --null -T - -cf -
) | tar -xf - -C "$src"

jobs=${DEB_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}
(cd "$src" && dpkg-buildpackage -us -uc -b -j"$jobs")
rm -rf "$src"
ls "$out"/emberd_"$version"_*.deb
