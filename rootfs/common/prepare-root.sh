#!/bin/sh
# Shared pack setup that a pack's customize.sh may rely on: the unprivileged `sandbox` user that
# emberd-init runs user code as, and its E2B alias `user` (docs/e2b.md "Users"). Run by
# rootfs/build.sh as `prepare-root.sh ROOT` inside mmdebstrap, before the pack's own customize.sh.
# Must not depend on any package beyond the essential set.
set -eu
root=$1

uid=1000
gid=1000
for f in passwd group; do
	[ -f "$root/etc/$f" ] || { echo "prepare-root: $root/etc/$f is missing" >&2; exit 1; }
done
# Someone else holding 1000 would silently hand our user their files: refuse instead.
if awk -F: -v id=$uid '$1 != "sandbox" && $1 != "user" && $3 == id { found = 1 } END { exit !found }' "$root/etc/passwd"; then
	echo "prepare-root: uid $uid is already taken in /etc/passwd" >&2; exit 1
fi
if awk -F: -v id=$gid '$1 != "sandbox" && $1 != "user" && $3 == id { found = 1 } END { exit !found }' "$root/etc/group"; then
	echo "prepare-root: gid $gid is already taken in /etc/group" >&2; exit 1
fi

add_line() { # file name line: append unless an entry for name exists
	grep -q "^$2:" "$1" || printf '%s\n' "$3" >>"$1"
}
add_line "$root/etc/group" sandbox "sandbox:x:$gid:"
add_line "$root/etc/passwd" sandbox "sandbox:x:$uid:$gid:emberd sandbox:/home/sandbox:/bin/sh"
# The E2B SDKs run commands as `user` (/bin/bash -l, home /home/user): the same uid and gid under
# a second name, after `sandbox` so that getpwuid(1000) still answers `sandbox` (USER, ps, ls -l
# of the native API stay as they were). /bin/bash is in every Debian pack (bash is Essential).
add_line "$root/etc/group" user "user:x:$gid:"
add_line "$root/etc/passwd" user "user:x:$uid:$gid:emberd sandbox (E2B name):/home/user:/bin/bash"
# The essential set has no shadow files (they come with `passwd`); keep them consistent if a pack
# pulls that in. The account is locked either way: nothing ever logs in.
for name in sandbox user; do
	if [ -f "$root/etc/shadow" ]; then add_line "$root/etc/shadow" $name "$name:!:0:0:99999:7:::"; fi
	if [ -f "$root/etc/gshadow" ]; then add_line "$root/etc/gshadow" $name "$name:!::"; fi
done

mkdir -p "$root/home/sandbox"
chown $uid:$gid "$root/home/sandbox"
chmod 0755 "$root/home/sandbox"
# /home/user is a relative symlink to it, not the other way round: HOME=/home/sandbox, the exec
# cwd, the guest's boot (src/guest/boot.c makes /home/sandbox in a pack without it) and the
# python-data pack's caches all name /home/sandbox, and E2B code's /home/user/... paths then
# reach the same files. getcwd() there says /home/sandbox.
if [ ! -e "$root/home/user" ] && [ ! -L "$root/home/user" ]; then ln -s sandbox "$root/home/user"; fi
