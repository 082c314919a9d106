#!/usr/bin/env python3
"""User packs from OCI images: `emberctl pack import|list|remove` (docs/packs.md).
Called by emberctl (cmd/emberctl/pack.c), which has already checked the flags' shape; runs as root
(umoci keeps the image's file owners, prepare-root.sh chowns the sandbox home).
Never executes anything from the image on the host, never writes outside IMAGES_DIR and $TMPDIR,
and never changes packs.json or an existing pack before the candidate passed its smoke test.

  packctl.py import NAME --oci PATH[:TAG] [--interpreter ARG]... [--description TEXT]
             [--memory-mib N] [--vcpus N] [--overlay-mib N] [--exec-timeout-ms N]
             [--output-limit-bytes N] [--smoke-code CODE --smoke-stdout TEXT]
             [--max-unpacked-mib N] [--max-members N] [--images DIR] [--replace]
  packctl.py list [--images DIR]
  packctl.py remove NAME [--images DIR]"""

import argparse
import fcntl
import gzip
import hashlib
import json
import os
import posixpath
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time

from manifest import CODE_MODES, DEFAULT_BOUNDS, NAME_RE, PackError, load_pack, sha_file
import smoke
import userpacks

HERE = os.path.dirname(os.path.abspath(__file__))
ROOTFS_DIR = os.path.dirname(HERE)
SOURCE_DATE_EPOCH = "1704067200"  # rootfs/build.sh's default: the same bytes for the same image
# Defaults bounding what an image may unpack to: a pack lives in guest page cache and on the
# images disk; 4 GiB and 500k entries are far above any sane interpreter image (python-data is
# ~400 MiB and 30k files) and far below what fills a disk.
MAX_UNPACKED_MIB = 4096
MAX_MEMBERS = 500_000
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SYMLINK_HOPS = 40  # as Linux's MAXSYMLINKS
# The default smoke test by the interpreter's name, when no --smoke-code is given.
DEFAULT_SMOKE = (
    (("sh", "bash", "dash", "ash", "busybox", "zsh", "ksh", "mksh"), "echo ok", "ok\n"),
    (("python", "python3"), "print('ok')", "ok\n"),
    (("node", "nodejs"), "console.log('ok')", "ok\n"),
)
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def progress(message):
    print(f"[pack] {message}", flush=True)


def fail(message):
    raise PackError(message)


# ------------------------------------------------------------------------------------------------
# Source: an OCI layout directory (PATH or PATH:TAG) or a docker/podman save (or OCI archive)
# tarball, copied by skopeo into our own OCI layout so nothing is ever written into the user's.


def source_ref(path):
    """The skopeo reference for the user's PATH[:TAG]."""
    tag = ""
    if not os.path.exists(path) and ":" in path:
        path, tag = path.rsplit(":", 1)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "oci-layout")):
            fail(f"{path} is a directory but not an OCI image layout (no oci-layout file)")
        return f"oci:{path}" + (f":{tag}" if tag else "")
    if not os.path.isfile(path):
        fail(f"{path}: no such file or directory")
    if tag:
        fail(f"{path}: a :TAG applies to an OCI layout directory, not to a tarball")
    try:
        with tarfile.open(path, "r:*") as tar:
            names = set()
            for member in tar:
                names.add(member.name.lstrip("./"))
                if "oci-layout" in names or "manifest.json" in names:
                    break
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as e:
        fail(f"{path}: not a readable tarball: {e}")
    if "manifest.json" in names:
        return f"docker-archive:{path}"
    if "oci-layout" in names:
        return f"oci-archive:{path}"
    fail(f"{path}: a tarball but neither a `docker save` archive (manifest.json) nor an OCI "
         "archive (oci-layout)")
    return None


def run_tool(argv, what):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-1500:]
        fail(f"{what} failed (exit {proc.returncode}): {tail}")
    return proc.stdout


def copy_to_layout(ref, layout):
    # --insecure-policy: the source is a local file the caller chose; there is no signature to
    # check and the host may have no /etc/containers/policy.json.
    run_tool(["skopeo", "--insecure-policy", "copy", "--quiet", ref, f"oci:{layout}:import"],
             f"skopeo copy {ref}")


# ------------------------------------------------------------------------------------------------
# The layout's manifest, config and layers


def read_blob_json(layout, descriptor, what):
    digest = descriptor.get("digest", "")
    algo, _, hexdigest = digest.partition(":")
    if algo != "sha256" or len(hexdigest) != 64:
        fail(f"{what}: unsupported digest `{digest}`")
    path = os.path.join(layout, "blobs", "sha256", hexdigest)
    with open(path, "rb") as f:
        data = f.read(4 << 20)
    if hashlib.sha256(data).hexdigest() != hexdigest:
        fail(f"{what} {digest}: content does not match its digest")
    return json.loads(data)


def read_image(layout):
    """(config, [(layer descriptor, blob path)]) of the image tagged `import` in layout."""
    with open(os.path.join(layout, "index.json"), encoding="utf-8") as f:
        index = json.load(f)
    found = [m for m in index.get("manifests", [])
             if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "import"]
    if not found:
        fail("skopeo's copy has no image tagged `import`")
    manifest = read_blob_json(layout, found[0], "image manifest")
    if manifest.get("mediaType") == OCI_INDEX or "layers" not in manifest:
        fail("the image is a multi-platform index; pick one platform's image (skopeo copy "
             "--override-arch) first")
    config = read_blob_json(layout, manifest["config"], "image config")
    layers = []
    for i, layer in enumerate(manifest["layers"]):
        algo, _, hexdigest = layer.get("digest", "").partition(":")
        if algo != "sha256" or len(hexdigest) != 64:
            fail(f"layer {i}: unsupported digest `{layer.get('digest')}`")
        layers.append((layer, os.path.join(layout, "blobs", "sha256", hexdigest)))
    return config, layers


class CountingReader:
    """A read-only stream that counts the bytes it handed out (the layer's tar bytes)."""

    def __init__(self, stream):
        self.stream = stream
        self.count = 0

    def read(self, size=-1):
        data = self.stream.read(size)
        self.count += len(data)
        return data

    def at_eof(self):
        return self.stream.read(1) == b""


def open_layer(path):
    """(the layer's uncompressed tar as a CountingReader, the file, the zstd process or None),
    by the blob's magic bytes: skopeo may keep a docker archive's layers uncompressed."""
    blob = open(path, "rb")
    magic = blob.read(4)
    blob.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return CountingReader(gzip.GzipFile(fileobj=blob, mode="rb")), blob, None
    if magic == b"\x28\xb5\x2f\xfd":
        proc = subprocess.Popen(["zstd", "-dcq", "--", path], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return CountingReader(proc.stdout), blob, proc
    return CountingReader(blob), blob, None


def escapes(base, target):
    """True when relative symlink target, resolved lexically from directory base, climbs above /."""
    depth = len([p for p in base.split("/") if p])
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def check_member(member):
    """Why the tar member must be refused, or None."""
    name = member.name
    if name.startswith("/"):
        return "has an absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "has a `..` component"
    if member.ischr() or member.isblk():
        return "is a device node"
    if member.islnk():
        target = member.linkname
        if target.startswith("/") or ".." in target.split("/"):
            return f"is a hard link to `{target}`, outside the layer"
    if member.issym():
        target = member.linkname
        if not target.startswith("/") and escapes(posixpath.dirname(name.rstrip("/")), target):
            return f"is a symlink to `{target}`, which climbs above the root"
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()
            or member.isfifo()):
        return f"has an unsupported type `{member.type!r}`"
    return None


def scan_layers(layers, max_bytes, max_members):
    """Refuses the image unless every layer is a readable tar of safe members within bounds.
    Checks each blob's digest on the way (a truncated or altered blob is refused)."""
    total_bytes = 0
    total_members = 0
    for i, (descriptor, path) in enumerate(layers):
        label = f"layer {i} ({descriptor['digest'][:19]})"
        want = descriptor["digest"].partition(":")[2]
        with open(path, "rb") as f:
            h = hashlib.sha256()
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != want:
            fail(f"{label}: content does not match its digest (truncated or altered)")
        stream, blob, proc = open_layer(path)
        last = None
        try:
            try:
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    for member in tar:
                        last = member
                        why = check_member(member)
                        if why is not None:
                            fail(f"{label}: member `{member.name}` {why}")
                        total_members += 1
                        if total_members > max_members:
                            fail(f"{label}: the image has more than {max_members} entries "
                                 "(--max-members)")
                        total_bytes += max(member.size, 0)
                        if total_bytes > max_bytes:
                            fail(f"{label}: the image unpacks to more than {max_bytes >> 20} "
                                 "MiB (--max-unpacked-mib)")
            except tarfile.ReadError as e:
                # umoci (and other Go writers) may end a layer right after the last file's data,
                # without its padding or the end-of-archive blocks: complete, so accepted. A cut
                # inside a header or a file's data is not.
                complete = (last is not None and str(e) == "unexpected end of data"
                            and stream.count >= last.offset_data + last.size
                            and stream.at_eof())
                if not complete:
                    raise
        except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile, ValueError) as e:
            fail(f"{label}: corrupt or truncated archive: {e}")
        finally:
            blob.close()
            if proc is not None:
                proc.stdout.close()
                if proc.wait() != 0 and not sys.exc_info()[0]:
                    fail(f"{label}: corrupt or truncated archive: zstd: "
                         f"{proc.stderr.read().decode(errors='replace').strip()}")
                proc.stderr.close()
    return total_bytes, total_members


# ------------------------------------------------------------------------------------------------
# The root: unpack, add emberd's guest pieces, find the interpreter


def inside(root, path):
    """Resolves absolute path in root as the guest will (symlinks, absolute or relative, stay in
    root); returns the host path of the final file, or None when a component is missing."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        host = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(host)
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > SYMLINK_HOPS:
                return None
            target = os.readlink(host)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def is_executable_in(root, path):
    host = inside(root, path)
    if host is None:
        return False
    st = os.lstat(host)
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


def which_in(root, command, env_path):
    for directory in env_path.split(":"):
        if directory.startswith("/"):
            candidate = posixpath.join(directory, command)
            if is_executable_in(root, candidate):
                return candidate
    return None


def unpack(layout, bundle):
    run_tool(["umoci", "unpack", "--image", f"{layout}:import", bundle], "umoci unpack")
    root = os.path.join(bundle, "rootfs")
    if not os.path.isdir(root):
        fail("umoci unpack made no rootfs")
    return root


# What prepare-root.sh and finish-root.sh write, append to, chown or look into, parents first.
# They run on the host with host paths: a symlink among these (`var/cache -> /var/cache`, normal
# in the guest, where it resolves inside the root) would make them change the host's files.
GUEST_PIECES_DIRS = ("etc", "home", "usr", "usr/share", "var", "var/cache", "var/log", "var/lib",
                     "var/lib/apt", "var/lib/dpkg")
GUEST_PIECES_FILES = ("etc/passwd", "etc/group", "etc/shadow", "etc/gshadow", "home/sandbox")
# Written by finish-root.sh; a symlink there is replaced, not followed.
GUEST_IDENTITY_FILES = ("etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/machine-id")


def refuse_host_escapes(root):
    for rel in GUEST_PIECES_DIRS + GUEST_PIECES_FILES:
        path = os.path.join(root, rel)
        if os.path.islink(path):
            fail(f"the image's /{rel} is a symlink (to `{os.readlink(path)}`); emberd's guest "
                 "pieces are added with host tools, which would follow it: refused")
        if rel in GUEST_PIECES_DIRS and os.path.lexists(path) and not os.path.isdir(path):
            fail(f"the image's /{rel} is not a directory")
    for rel in GUEST_IDENTITY_FILES:
        if os.path.islink(os.path.join(root, rel)):
            os.unlink(os.path.join(root, rel))


def add_guest_pieces(root):
    """emberd's guest pieces: the sandbox user (prepare-root.sh), identity files and mount points
    (finish-root.sh). Minimal images (busybox, distroless) may have no /etc/passwd or group."""
    refuse_host_escapes(root)
    etc = os.path.join(root, "etc")
    os.makedirs(etc, exist_ok=True)
    for name, line in (("passwd", "root:x:0:0:root:/root:/bin/sh\n"), ("group", "root:x:0:\n")):
        path = os.path.join(etc, name)
        if not os.path.exists(path):
            with open(path, "w", encoding="utf-8") as f:
                f.write(line)
    for script in ("prepare-root.sh", "finish-root.sh"):
        run_tool([os.path.join(ROOTFS_DIR, "common", script), root], script)


def squash(root, out):
    env = dict(os.environ)
    env.pop("SOURCE_DATE_EPOCH", None)  # mksquashfs >= 4.5 refuses it next to explicit times
    proc = subprocess.run(["mksquashfs", root, out, "-comp", "zstd", "-noappend", "-quiet",
                           "-no-progress", "-mkfs-time", SOURCE_DATE_EPOCH, "-all-time",
                           SOURCE_DATE_EPOCH], capture_output=True, text=True, env=env,
                          check=False)
    if proc.returncode != 0:
        fail(f"mksquashfs failed: {proc.stderr.strip()[-1500:]}")
    os.chmod(out, 0o644)


# ------------------------------------------------------------------------------------------------
# Deciding the entry


def interpreter_from(args, config, root):
    cfg = config.get("config") or {}
    env = cfg.get("Env") or []
    env_path = DEFAULT_PATH
    for item in env:
        if isinstance(item, str) and item.startswith("PATH="):
            env_path = item[5:]
    if args.interpreter:
        argv, source = list(args.interpreter), "--interpreter"
    else:
        argv = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
        source = "the image config's Entrypoint+Cmd"
        if not argv:
            fail("the image config has no Entrypoint or Cmd: give --interpreter")
    if not all(isinstance(a, str) and a and "\0" not in a for a in argv) or len(argv) > 16:
        fail(f"{source}: {json.dumps(argv)} is not 1 to 16 non-empty strings")
    if not argv[0].startswith("/"):
        found = which_in(root, argv[0], env_path)
        if found is None:
            fail(f"{source}: `{argv[0]}` is not an executable file in the image's PATH "
                 f"({env_path})")
        argv[0] = found
    elif not is_executable_in(root, argv[0]):
        fail(f"{source}: {argv[0]} is not an executable file in the image")
    return argv, source


def environment_from(config, root):
    """The image config's Env and WorkingDir as the pack's `env` and `cwd`: every exec starts
    with them (its own env entries win). An entry that is not NAME=value, or a WorkingDir that is
    not a directory in the image, is left out with a note."""
    cfg = config.get("config") or {}
    env = []
    for item in cfg.get("Env") or []:
        if userpacks.env_entry_ok(item):
            env.append(item)
        else:
            progress(f"note: the image config's Env entry {json.dumps(item)[:80]} is not "
                     "NAME=value (<= 4096 bytes); left out")
    if len(env) > userpacks.ENV_MAX:
        fail(f"the image config's Env has {len(env)} entries; a pack takes at most "
             f"{userpacks.ENV_MAX}")
    cwd = cfg.get("WorkingDir") or None
    if cwd is not None:
        host = inside(root, cwd) if isinstance(cwd, str) and cwd.startswith("/") else None
        if host is None or not os.path.isdir(host) or ".." in cwd.split("/") or len(cwd) > 255:
            progress(f"note: the image config's WorkingDir {json.dumps(cwd)[:80]} is not a "
                     "directory in the image; execs start in the sandbox user's home")
            cwd = None
    if env or cwd:
        progress(f"environment: {len(env)} Env entries, directory {cwd or '(home)'}, from the "
                 "image config")
    return env, cwd


def default_smoke(argv):
    names = {os.path.basename(argv[0])}
    for names_of, code, expected in DEFAULT_SMOKE:
        if names & set(names_of):
            return code, expected
    fail(f"no default smoke test for interpreter {argv[0]}: give --smoke-code and --smoke-stdout "
         "(code the interpreter runs and its exact stdout)")
    return None


def make_entry(args, argv, sha, env=(), cwd=None):
    shell = load_pack(os.path.join(ROOTFS_DIR, "packs", "shell"))
    defaults = dict(shell["defaults"])
    for key in DEFAULT_BOUNDS:
        value = getattr(args, key)
        if value is not None:
            defaults[key] = value
    description = args.description or f"imported from OCI image {os.path.basename(args.oci)}"
    entry = {
        "name": args.name,
        "image": userpacks.image_path(args.name),
        "sha256": sha,
        "interpreter": argv,
        "code": args.code,
        "description": description[:200],
        "defaults": {key: defaults[key] for key in DEFAULT_BOUNDS},
    }
    if env:
        entry["env"] = list(env)
    if cwd:
        entry["cwd"] = cwd
    userpacks.validate_entry(entry, "the new pack")
    return entry


# ------------------------------------------------------------------------------------------------
# Lock and publish


def images_dir_of(args):
    images = os.path.abspath(args.images or os.environ.get("IMAGES_DIR")
                             or "/var/lib/emberd/images")
    if not os.path.isfile(os.path.join(images, "packs.json")):
        fail(f"{images} has no packs.json (build the images first: make images)")
    return images


def lock(images):
    """rootfs/build.sh's lock (flock on IMAGES_DIR/.lock): one writer of the images at a time."""
    fd = os.open(os.path.join(images, ".lock"), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        progress(f"another build or import holds {images}/.lock; waiting for it")
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def check_name(images, name, replace):
    if not NAME_RE.match(name):
        fail(f"pack name `{name}` must match {NAME_RE.pattern}")
    if os.path.isdir(os.path.join(ROOTFS_DIR, "packs", name)):
        fail(f"`{name}` is a built-in pack (rootfs/packs/{name}); pick another name")
    with open(os.path.join(images, "packs.json"), encoding="utf-8") as f:
        for pack in json.load(f).get("packs", []):
            if pack.get("name") == name and not userpacks.is_user_image(pack.get("image")):
                fail(f"`{name}` is a built-in pack of {images}/packs.json; pick another name")
    exists = os.path.exists(os.path.join(images, userpacks.USER_DIR, name + ".json"))
    if exists and not replace:
        fail(f"user pack `{name}` exists; give --replace to replace it")


def publish(images, entry, candidate):
    """Moves the candidate into place and rewrites the catalog; on any failure puts back what was
    there (old image, old entry, old packs.json), byte for byte."""
    name = entry["name"]
    image = os.path.join(images, entry["image"])
    entry_path = os.path.join(images, userpacks.USER_DIR, name + ".json")
    catalog = os.path.join(images, "packs.json")
    backups = []  # (path, bytes or None when it did not exist)
    for path in (image, entry_path, catalog):
        try:
            with open(path, "rb") as f:
                backups.append((path, f.read() if path != image else None))
        except FileNotFoundError:
            backups.append((path, None))
    old_image = image + f".old.tmp.{os.getpid()}"
    had_image = os.path.exists(image)
    try:
        others = [e for e in userpacks.user_entries(images) if e["name"] != name]
        os.makedirs(os.path.dirname(entry_path), exist_ok=True)
        if had_image:
            os.link(image, old_image)
        os.replace(candidate, image)
        userpacks.write_atomic(entry_path, json.dumps(entry, indent=2) + "\n")
        userpacks.rewrite_catalog(images, sorted(others + [entry], key=lambda e: e["name"]))
    except BaseException:
        for path, data in backups:
            if path == image:
                continue
            if data is None:
                if os.path.exists(path):
                    os.unlink(path)
            else:
                userpacks.write_atomic(path, data.decode("utf-8"))
        if had_image:
            os.replace(old_image, image)
        elif os.path.exists(image):
            os.unlink(image)
        raise
    finally:
        if os.path.exists(old_image):
            os.unlink(old_image)


# ------------------------------------------------------------------------------------------------
# Commands


def require_root():
    if os.geteuid() != 0:
        fail("must run as root: image files keep their owners and the images directory is "
             "root's (sudo emberctl pack ...)")


def cmd_import(args):
    require_root()
    images = images_dir_of(args)
    check_name(images, args.name, args.replace)
    if (args.smoke_code is None) != (args.smoke_stdout is None):
        fail("--smoke-code and --smoke-stdout go together")
    ref = source_ref(args.oci)
    lock_fd = lock(images)
    check_name(images, args.name, args.replace)  # again, now that nobody else writes
    user_image_dir = os.path.join(images, userpacks.USER_IMAGE_DIR)
    os.makedirs(user_image_dir, exist_ok=True)
    # build.sh removes .work.* left by a killed run the next time it holds the lock.
    work = tempfile.mkdtemp(prefix=".work.import-", dir=images)
    candidate = os.path.join(user_image_dir, f".{args.name}.squashfs.tmp.{os.getpid()}")
    try:
        t0 = time.monotonic()
        progress(f"reading {ref}")
        layout = os.path.join(work, "layout")
        copy_to_layout(ref, layout)
        config, layers = read_image(layout)
        progress(f"checking {len(layers)} layer(s)")
        size, members = scan_layers(layers, args.max_unpacked_mib << 20, args.max_members)
        progress(f"{len(layers)} layer(s) ok: {members} entries, {size >> 20} MiB; unpacking")
        root = unpack(layout, os.path.join(work, "bundle"))
        argv, source = interpreter_from(args, config, root)
        progress(f"interpreter {json.dumps(argv)} (from {source})")
        env, cwd = environment_from(config, root)
        add_guest_pieces(root)
        progress("building the squashfs")
        squash(root, candidate)
        sha = sha_file(candidate)
        entry = make_entry(args, argv, sha, env, cwd)
        if args.smoke_code is not None:
            code, expected = args.smoke_code, args.smoke_stdout
        else:
            code, expected = default_smoke(argv)
        entry_file = os.path.join(work, "entry.json")
        with open(entry_file, "w", encoding="utf-8") as f:
            json.dump(entry, f)
        progress(f"smoke test in a VM: {json.dumps(code)} must print {json.dumps(expected)}")
        try:
            smoke.smoke(images, entry_file, candidate, code, expected)
        except smoke.SmokeError as e:
            fail(f"{e}\nnot published: the catalog is unchanged")
        publish(images, entry, candidate)
        mib = os.path.getsize(os.path.join(images, entry["image"])) / (1 << 20)
        progress(f"published `{args.name}` ({entry['image']}, {mib:.1f} MiB, "
                 f"{time.monotonic() - t0:.1f}s) in {images}/packs.json")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if os.path.exists(candidate):
            os.unlink(candidate)
        os.close(lock_fd)
    return 0


def cmd_list(args):
    images = images_dir_of(args)
    for entry in userpacks.user_entries(images):
        print(f"{entry['name']}\t{json.dumps(entry['interpreter'])}\t{entry['description']}")
    return 0


def cmd_remove(args):
    require_root()
    images = images_dir_of(args)
    if not NAME_RE.match(args.name):
        fail(f"pack name `{args.name}` must match {NAME_RE.pattern}")
    lock_fd = lock(images)
    try:
        entry_path = os.path.join(images, userpacks.USER_DIR, args.name + ".json")
        try:
            with open(entry_path, encoding="utf-8") as f:
                saved = f.read()
        except FileNotFoundError:
            fail(f"no user pack `{args.name}` in {images}")
        others = [e for e in userpacks.user_entries(images) if e["name"] != args.name]
        os.unlink(entry_path)
        try:
            userpacks.fsync_dir(os.path.dirname(entry_path))
            userpacks.rewrite_catalog(images, others)
        except BaseException:
            userpacks.write_atomic(entry_path, saved)
            raise
        image = os.path.join(images, userpacks.image_path(args.name))
        if os.path.exists(image):
            os.unlink(image)
        progress(f"removed `{args.name}` from {images}/packs.json")
    finally:
        os.close(lock_fd)
    return 0


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="emberctl pack", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import")
    imp.add_argument("name")
    imp.add_argument("--oci", required=True)
    imp.add_argument("--interpreter", action="append")
    imp.add_argument("--description")
    imp.add_argument("--code", choices=CODE_MODES, default="file")
    for key in DEFAULT_BOUNDS:
        imp.add_argument("--" + key.replace("_", "-"), dest=key, type=int)
    imp.add_argument("--smoke-code")
    imp.add_argument("--smoke-stdout")
    imp.add_argument("--max-unpacked-mib", type=int, default=MAX_UNPACKED_MIB)
    imp.add_argument("--max-members", type=int, default=MAX_MEMBERS)
    imp.add_argument("--images")
    imp.add_argument("--replace", action="store_true")
    lst = sub.add_parser("list")
    lst.add_argument("--images")
    rm = sub.add_parser("remove")
    rm.add_argument("name")
    rm.add_argument("--images")
    return ap.parse_args(argv)


def joined_interpreter_words(argv):
    """`--interpreter -c` as `--interpreter=-c`: argparse would take a word starting with `-`
    for a flag of its own (emberctl has already checked the flags)."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--interpreter" and i + 1 < len(argv):
            out.append(f"--interpreter={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv=None):
    args = parse_args(joined_interpreter_words(sys.argv[1:] if argv is None else argv))
    run = {"import": cmd_import, "list": cmd_list, "remove": cmd_remove}[args.command]
    try:
        return run(args)
    except PackError as e:
        print(f"emberctl pack {args.command}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"emberctl pack {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
