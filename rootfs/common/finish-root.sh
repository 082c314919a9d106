#!/bin/sh
# Last touches before a pack root is squashed: guest identity files, empty mount points, and
# removal of everything a read-only, network-less guest never reads (docs, caches, logs).
# Run by rootfs/build.sh as `finish-root.sh ROOT` after mmdebstrap has unmounted everything;
# it must only delete paths below ROOT.
set -eu
root=$1
case $root in /*) ;; *) echo "finish-root: ROOT must be absolute" >&2; exit 1 ;; esac
if [ ! -d "$root/etc" ] || [ "$root" = / ]; then echo "finish-root: $root is not a root tree" >&2; exit 1; fi

printf 'emberd\n' >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'HOSTS'
127.0.0.1	localhost
127.0.1.1	emberd
::1		localhost ip6-localhost ip6-loopback
HOSTS
# mmdebstrap copied the build host's resolver; the guest has no network.
: >"$root/etc/resolv.conf"

# dpkg's path-exclude already kept most of these out; this catches what maintainer scripts made.
rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/info" \
	"$root/usr/share/locale" "$root/usr/share/lintian" "$root/usr/share/linda" \
	"$root/usr/share/doc-base" "$root/usr/share/bug"
rm -rf "$root"/var/cache/* "$root"/var/log/* "$root"/var/lib/apt/lists \
	"$root"/var/lib/dpkg/*-old "$root/etc/machine-id"

# Mount points the guest fills at boot; anything left in them (mmdebstrap's device nodes) would
# only be shadowed, so drop it.
for d in dev proc sys run tmp; do
	rm -rf "${root:?}/$d"
	mkdir "$root/$d"
done
chmod 0755 "$root/dev" "$root/run"
chmod 0555 "$root/proc" "$root/sys"
chmod 1777 "$root/tmp"
