#!/usr/bin/env bash
# Installs the Debian packages emberd needs to build, test and run. Idempotent: installs only
# what is missing, so it is cheap to call from every `make run` / `make test`.
set -euo pipefail

PACKAGES=(
	build-essential clang libclang-rt-14-dev pkg-config
	libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev libcmocka-dev libssl-dev
	qemu-system-x86 mmdebstrap squashfs-tools cpio kmod lz4 zstd
	bc bison flex libelf-dev xz-utils perl
	python3 curl bubblewrap ca-certificates
)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#PACKAGES[@]} packages present"
	exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
