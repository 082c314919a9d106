#!/bin/sh
# `make bench`: the fast-create benchmark (bench/fastcreate.py), the workspace benchmark
# (bench/workspace.py: files, streamed exec, background processes), the exec-path benchmark
# (bench/exec.py: contexts, the fork server, pooled first execs, against bwrap), the network
# egress benchmark (bench/network.py: creates with and without a network, HTTP and DNS through
# the host's filter to the test lab; skipped, saying why, where the lab cannot run), the per-pack
# benchmark (bench/packs.py: image sizes, cold/clone/pooled create, first exec per pack), the
# E2B benchmark (bench/e2b.py: the E2B SDK's create + commands.run + kill next to the native
# create + exec + delete; needs tools/e2b, scripts/install-deps.sh), the mount benchmark
# (bench/mounts.py: files through an rw mount against the files API), the pause benchmark
# (bench/pause.py: pause, resume, fork and snapshots against cold and pooled creates) and the
# density benchmark (bench/density.py: many sandboxes on one host), against the release build
# in bin/. Prints their Markdown reports on stdout (progress on stderr) and saves them as
# bench/results/<YYYY-MM-DD>.md, -workspace.md, -exec.md, -network.md, -packs.md, -e2b.md,
# -mounts.md, -pause.md and -density.md. Arguments (or $BENCH_ARGS) go to bench/fastcreate.py,
# $WORKSPACE_ARGS to bench/workspace.py, $EXEC_ARGS to bench/exec.py, $NETWORK_ARGS to
# bench/network.py, $PACKS_ARGS to bench/packs.py, $E2B_ARGS to bench/e2b.py, $MOUNTS_ARGS to
# bench/mounts.py, $PAUSE_ARGS to bench/pause.py, $DENSITY_ARGS to bench/density.py.
set -eu
cd "$(dirname "$0")/.."
IMAGES_DIR=${IMAGES_DIR:-/var/lib/emberd/images}
if [ ! -f "$IMAGES_DIR/packs.json" ]; then
	echo "bench: no packs.json in $IMAGES_DIR: run \`make images\` first (or set IMAGES_DIR)" >&2
	exit 1
fi
for f in bin/emberd bin/ember-vm; do
	if [ ! -x "$f" ]; then
		echo "bench: $f is missing: run \`make\`" >&2
		exit 1
	fi
done
# Debian's python3 (the one the guests' pack has too); any python3 >= 3.8 will do.
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
# shellcheck disable=SC2086 # BENCH_ARGS is a list of arguments
"$PYTHON" bench/fastcreate.py --images "$IMAGES_DIR" ${BENCH_ARGS:-} "$@"
# shellcheck disable=SC2086 # WORKSPACE_ARGS is a list of arguments
"$PYTHON" bench/workspace.py --images "$IMAGES_DIR" ${WORKSPACE_ARGS:-}
# shellcheck disable=SC2086 # EXEC_ARGS is a list of arguments
"$PYTHON" bench/exec.py --images "$IMAGES_DIR" ${EXEC_ARGS:-}
# shellcheck disable=SC2086 # NETWORK_ARGS is a list of arguments
"$PYTHON" bench/network.py --images "$IMAGES_DIR" ${NETWORK_ARGS:-}
# shellcheck disable=SC2086 # PACKS_ARGS is a list of arguments
"$PYTHON" bench/packs.py --images "$IMAGES_DIR" ${PACKS_ARGS:-}
# shellcheck disable=SC2086 # E2B_ARGS is a list of arguments
"$PYTHON" bench/e2b.py --images "$IMAGES_DIR" ${E2B_ARGS:-}
# shellcheck disable=SC2086 # MOUNTS_ARGS is a list of arguments
"$PYTHON" bench/mounts.py --images "$IMAGES_DIR" ${MOUNTS_ARGS:-}
# shellcheck disable=SC2086 # PAUSE_ARGS is a list of arguments
"$PYTHON" bench/pause.py --images "$IMAGES_DIR" ${PAUSE_ARGS:-}
# shellcheck disable=SC2086 # DENSITY_ARGS is a list of arguments
exec "$PYTHON" bench/density.py --images "$IMAGES_DIR" ${DENSITY_ARGS:-}
