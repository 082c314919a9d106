#!/bin/sh
# Shared pack setup that a pack's customize.sh may rely on: the unprivileged `sandbox` user that
# emberd-init runs user code as. Run by rootfs/build.sh as `prepare-root.sh ROOT` inside mmdebstrap,
# before the pack's own customize.sh. Must not depend on any package beyond the essential set.
set -eu
root=$1

uid=1000
gid=1000
for f in passwd group; do
	[ -f "$root/etc/$f" ] || { echo "prepare-root: $root/etc/$f is missing" >&2; exit 1; }
done
# Someone else holding 1000 would silently hand our user their files: refuse instead.
if awk -F: -v id=$uid '$1 != "sandbox" && $3 == id { found = 1 } END { exit !found }' "$root/etc/passwd"; then
	echo "prepare-root: uid $uid is already taken in /etc/passwd" >&2; exit 1
fi
if awk -F: -v id=$gid '$1 != "sandbox" && $3 == id { found = 1 } END { exit !found }' "$root/etc/group"; then
	echo "prepare-root: gid $gid is already taken in /etc/group" >&2; exit 1
fi

add_line() { # file name line: append unless an entry for name exists
	grep -q "^$2:" "$1" || printf '%s\n' "$3" >>"$1"
}
add_line "$root/etc/group" sandbox "sandbox:x:$gid:"
add_line "$root/etc/passwd" sandbox "sandbox:x:$uid:$gid:emberd sandbox:/home/sandbox:/bin/sh"
# The essential set has no shadow files (they come with `passwd`); keep them consistent if a pack
# pulls that in. The account is locked either way: nothing ever logs in.
if [ -f "$root/etc/shadow" ]; then add_line "$root/etc/shadow" sandbox "sandbox:!:0:0:99999:7:::"; fi
if [ -f "$root/etc/gshadow" ]; then add_line "$root/etc/gshadow" sandbox "sandbox:!::"; fi

mkdir -p "$root/home/sandbox"
chown $uid:$gid "$root/home/sandbox"
chmod 0755 "$root/home/sandbox"
