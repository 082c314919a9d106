#!/usr/bin/env bash
# Builds everything a fresh Debian machine needs and runs emberd in the foreground.
#   scripts/serve.sh [emberd flags...]      (make run does exactly this)
# Environment: IMAGES_DIR (default /var/lib/emberd/images), EMBERD_ADDR (default 127.0.0.1:7777).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGES_DIR=${IMAGES_DIR:-/var/lib/emberd/images}
export IMAGES_DIR

echo "[run] installing missing Debian packages"
scripts/install-deps.sh
echo "[run] building binaries"
make -j"$(nproc)" all
echo "[run] building images into $IMAGES_DIR (cached after the first run)"
make images IMAGES_DIR="$IMAGES_DIR"
echo "[run] starting emberd on ${EMBERD_ADDR:-127.0.0.1:7777} (Ctrl-C stops it and every sandbox)"
exec bin/emberd --images "$IMAGES_DIR" "$@"
