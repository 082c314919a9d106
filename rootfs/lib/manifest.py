#!/usr/bin/env python3
"""Pack specs (rootfs/packs/<name>/pack.json, format in docs/packs.md) and the packs.json
manifest. Called by rootfs/build.sh only:
  manifest.py check PACK_DIR            validate the spec (exit 1 with a message naming the field)
  manifest.py get PACK_DIR KEY          print one fact of a valid spec for the build:
      interpreter   the argv as one JSON line     interp0        its first entry
      base          the Debian suite              packages       names, comma-separated
      customize     absolute path of the hook, or nothing
      image-inputs  what the image is built from (one line each; the stamp hashes it)
      smoke-code    the smoke test's code         smoke-stdout   its expected stdout (both raw)
      entry SHA256 IMAGE   the pack's packs.json entry (JSON) for an image at IMAGE
  manifest.py install-files PACK_DIR ROOT   copy the spec's `files` into the root tree
  manifest.py write OUT BZIMAGE VMLINUX RELEASE NAME=SHA256 ...
                                        merge the specs with built-image facts, plus the imported
                                        user packs of OUT's directory (userpacks.py); BZIMAGE and
                                        VMLINUX are the kernel's paths relative to OUT's directory
Never reads or hashes images itself: the caller vouches for the hashes it passes."""

import hashlib
import json
import os
import re
import shutil
import stat
import sys

MANIFEST_VERSION = 1
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
SUITE_RE = re.compile(r"^[a-z][a-z0-9-]{1,31}$")
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
FILE_PATH_RE = re.compile(r"^(/[A-Za-z0-9._+@-]+)+$")
# Sanity bounds that catch typos (ms vs s, bytes vs MiB); the daemon enforces its own limits.
DEFAULT_BOUNDS = {
    "exec_timeout_ms": (1, 3_600_000),
    "output_limit_bytes": (1, 1 << 30),
    "memory_mib": (64, 65536),
    "vcpus": (1, 64),
    "overlay_mib": (1, 65536),
}
REQUIRED_KEYS = ("name", "description", "base", "packages", "interpreter", "code", "defaults",
                 "smoke")
OPTIONAL_KEYS = ("files", "customize")
CODE_MODES = ("file", "argument")
SMOKE_KEYS = ("code", "stdout")
FILE_KEYS = ("source", "path", "mode")
MAX_PACKAGES = 256
MAX_FILES = 64
MAX_FILE_BYTES = 16 << 20
MAX_SMOKE_BYTES = 4096


class PackError(Exception):
    pass


def strict_object(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise PackError(f"duplicate key `{key}`")
        obj[key] = value
    return obj


def reject_constant(name):
    raise PackError(f"`{name}` is not JSON")


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def check_keys(obj, required, optional, bad, where):
    unknown = sorted(set(obj) - set(required) - set(optional))
    if unknown:
        allowed = ", ".join(required + optional)
        raise bad(f"{where}{unknown[0]}", f"unknown key (allowed: {allowed})")
    for key in required:
        if key not in obj:
            raise bad(f"{where}{key}", "missing")


def check_interpreter(argv, code, bad):
    if not isinstance(argv, list) or not argv or len(argv) > 16:
        raise bad("interpreter", "must be a non-empty array of at most 16 strings")
    for i, arg in enumerate(argv):
        if not isinstance(arg, str) or not arg or "\0" in arg or len(arg) > 256:
            raise bad(f"interpreter[{i}]", "must be a non-empty string without NUL, <= 256 bytes")
    if not argv[0].startswith("/"):
        raise bad("interpreter[0]", f"must be an absolute path, got `{argv[0]}`")
    if code not in CODE_MODES:
        raise bad("code", f"must be one of {', '.join(CODE_MODES)} (how code reaches the "
                          f"interpreter: the path of a file holding it, or the code itself as the "
                          f"last argument), got {json.dumps(code)}")


def check_description(desc, bad):
    if not isinstance(desc, str) or not desc.strip() or len(desc) > 200 or "\n" in desc:
        raise bad("description", "must be one non-empty line of at most 200 characters")


def check_defaults(defaults, bad):
    if not isinstance(defaults, dict):
        raise bad("defaults", "must be an object")
    check_keys(defaults, tuple(DEFAULT_BOUNDS), (), bad, "defaults.")
    for key, (low, high) in DEFAULT_BOUNDS.items():
        value = defaults[key]
        if not is_int(value) or not low <= value <= high:
            raise bad(f"defaults.{key}",
                      f"must be an integer in {low}..{high}, got {json.dumps(value)}")


def check_packages(packages, bad):
    if not isinstance(packages, dict) or len(packages) > MAX_PACKAGES:
        raise bad("packages", f"must be an object of at most {MAX_PACKAGES} Debian package names, "
                              "each mapped to why the pack needs it ({} for none)")
    for name, why in packages.items():
        if not PACKAGE_RE.match(name):
            raise bad(f"packages.{name}", "is not a Debian package name")
        if not isinstance(why, str) or not why.strip() or "\n" in why or len(why) > 200:
            raise bad(f"packages.{name}", "must map to one line (<= 200 chars) saying why")


def check_files(pack_dir, files, bad):
    if not isinstance(files, list) or len(files) > MAX_FILES:
        raise bad("files", f"must be an array of at most {MAX_FILES} objects")
    seen = set()
    for i, entry in enumerate(files):
        where = f"files[{i}]"
        if not isinstance(entry, dict):
            raise bad(where, "must be an object {source, path, mode}")
        check_keys(entry, FILE_KEYS, (), bad, f"{where}.")
        source, path, mode = entry["source"], entry["path"], entry["mode"]
        if (not isinstance(source, str) or source.startswith("/")
                or any(part in ("", ".", "..") for part in source.split("/"))):
            raise bad(f"{where}.source", "must be a plain path relative to the pack directory")
        full = os.path.join(pack_dir, source)
        try:
            st = os.lstat(full)
        except OSError as e:
            raise bad(f"{where}.source", f"cannot read `{full}`: {e.strerror}") from None
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_FILE_BYTES:
            raise bad(f"{where}.source", f"`{full}` must be a regular file of at most "
                                         f"{MAX_FILE_BYTES} bytes (not a symlink)")
        if (not isinstance(path, str) or not FILE_PATH_RE.match(path) or len(path) > 255
                or any(part in (".", "..") for part in path.split("/"))):
            raise bad(f"{where}.path", "must be an absolute path of plain names in the image")
        if path in seen:
            raise bad(f"{where}.path", f"`{path}` is listed twice")
        seen.add(path)
        if not isinstance(mode, str) or not re.fullmatch(r"0[0-7]{3}", mode):
            raise bad(f"{where}.mode", f"must be an octal string like \"0644\", got {json.dumps(mode)}")


def check_smoke(smoke, bad):
    if not isinstance(smoke, dict):
        raise bad("smoke", "must be an object {code, stdout}")
    check_keys(smoke, SMOKE_KEYS, (), bad, "smoke.")
    for key in SMOKE_KEYS:
        value = smoke[key]
        if not isinstance(value, str) or "\0" in value or len(value.encode()) > MAX_SMOKE_BYTES:
            raise bad(f"smoke.{key}", f"must be a string of at most {MAX_SMOKE_BYTES} bytes")
    if not smoke["code"].strip() or not smoke["stdout"]:
        raise bad("smoke", "needs code and a non-empty expected stdout")


def load_pack(pack_dir):
    """Returns the validated pack.json of pack_dir, or raises PackError naming file and field."""
    path = os.path.join(pack_dir, "pack.json")
    dir_name = os.path.basename(os.path.normpath(pack_dir))

    def bad(field, message):
        return PackError(f"{path}: field `{field}`: {message}")

    try:
        with open(path, encoding="utf-8") as f:
            pack = json.load(f, object_pairs_hook=strict_object, parse_constant=reject_constant)
    except OSError as e:
        raise PackError(f"{path}: cannot read: {e.strerror}") from None
    except (ValueError, PackError) as e:
        raise PackError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(pack, dict):
        raise PackError(f"{path}: must be a JSON object")
    check_keys(pack, REQUIRED_KEYS, OPTIONAL_KEYS, bad, "")

    name = pack["name"]
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise bad("name", f"must match {NAME_RE.pattern}, got {json.dumps(name)}")
    if name != dir_name:
        raise bad("name", f"is `{name}` but the directory is `{dir_name}`")
    check_description(pack["description"], bad)
    if not isinstance(pack["base"], str) or not SUITE_RE.match(pack["base"]):
        raise bad("base", f"must be a Debian suite name such as \"bookworm\", got "
                          f"{json.dumps(pack['base'])}")
    check_packages(pack["packages"], bad)
    check_interpreter(pack["interpreter"], pack["code"], bad)
    check_defaults(pack["defaults"], bad)
    check_smoke(pack["smoke"], bad)
    check_files(pack_dir, pack.get("files", []), bad)
    customize = pack.get("customize")
    if customize is not None:
        if customize != "customize.sh":
            raise bad("customize", "must be \"customize.sh\" (the hook file beside pack.json)")
        hook = os.path.join(pack_dir, customize)
        if not os.path.isfile(hook) or not os.access(hook, os.X_OK):
            raise bad("customize", f"`{hook}` must be an executable file (chmod +x it)")
    elif os.path.exists(os.path.join(pack_dir, "customize.sh")):
        raise bad("customize", "missing: customize.sh exists beside pack.json but the spec does "
                               "not name it (\"customize\": \"customize.sh\")")
    return pack


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def image_inputs(pack_dir, pack):
    """What the image is made of: anything else in the spec (description, defaults, smoke) can
    change without rebuilding it."""
    lines = [f"base={pack['base']}",
             f"packages={','.join(sorted(pack['packages']))}",
             f"interpreter={json.dumps(pack['interpreter'])}"]
    for entry in pack.get("files", []):
        lines.append(f"file={entry['path']} {entry['mode']} "
                     f"{sha_file(os.path.join(pack_dir, entry['source']))}")
    if "customize" in pack:
        lines.append(f"customize.sh={sha_file(os.path.join(pack_dir, pack['customize']))}")
    return "\n".join(lines)


def catalog_entry(pack, sha, image):
    return {
        "name": pack["name"],
        "image": image,
        "sha256": sha,
        "interpreter": pack["interpreter"],
        "code": pack["code"],
        "description": pack["description"],
        "defaults": {key: pack["defaults"][key] for key in DEFAULT_BOUNDS},
    }


def cmd_get(pack_dir, key, args):
    pack = load_pack(pack_dir)
    simple = {
        "interpreter": lambda: json.dumps(pack["interpreter"]) + "\n",
        "interp0": lambda: pack["interpreter"][0] + "\n",
        "base": lambda: pack["base"] + "\n",
        "packages": lambda: ",".join(pack["packages"]) + "\n",
        "customize": lambda: (os.path.abspath(os.path.join(pack_dir, pack["customize"])) + "\n"
                              if "customize" in pack else ""),
        "image-inputs": lambda: image_inputs(pack_dir, pack) + "\n",
        "smoke-code": lambda: pack["smoke"]["code"],
        "smoke-stdout": lambda: pack["smoke"]["stdout"],
    }
    if key == "entry" and len(args) == 2:
        sha, image = args
        if not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise PackError(f"bad sha256 `{sha}`")
        check_relative("image", image)
        sys.stdout.write(json.dumps(catalog_entry(pack, sha, image)) + "\n")
    elif key in simple and not args:
        sys.stdout.write(simple[key]())
    else:
        raise PackError(f"unknown `get` key `{key}` (or wrong arguments)")


def inside_root(root, path):
    """root + path, refusing a symlink on the way: a file must land where its path says."""
    cur = root
    for part in path.strip("/").split("/")[:-1]:
        cur = os.path.join(cur, part)
        if os.path.islink(cur):
            raise PackError(f"`{path}`: `{cur[len(root):]}` is a symlink in the image; name the "
                            f"path it points to instead")
        if not os.path.exists(cur):
            os.mkdir(cur, 0o755)
        elif not os.path.isdir(cur):
            raise PackError(f"`{path}`: `{cur[len(root):]}` is not a directory in the image")
    return os.path.join(root, path.lstrip("/"))


def cmd_install_files(pack_dir, root):
    pack = load_pack(pack_dir)
    if not os.path.isabs(root) or not os.path.isdir(os.path.join(root, "etc")):
        raise PackError(f"`{root}` is not an absolute path to a root tree")
    for entry in pack.get("files", []):
        dest = inside_root(root, entry["path"])
        if os.path.islink(dest) or os.path.isdir(dest):
            raise PackError(f"`{entry['path']}` is a symlink or directory in the image")
        tmp = f"{dest}.emberd-tmp"
        shutil.copyfile(os.path.join(pack_dir, entry["source"]), tmp, follow_symlinks=False)
        os.chown(tmp, 0, 0)
        os.chmod(tmp, int(entry["mode"], 8))
        os.replace(tmp, dest)
        print(f"installed {entry['path']} ({entry['mode']})")


def check_relative(what, path):
    if (not re.fullmatch(r"[A-Za-z0-9._/-]{1,255}", path) or path.startswith("/")
            or any(part in ("", ".", "..") for part in path.split("/"))):
        raise PackError(f"bad {what} path `{path}` (want a plain path relative to IMAGES_DIR)")


def user_entries(images_dir, builtin_names):
    """The imported user packs (rootfs/lib/userpacks.py), when that module is there."""
    try:
        import userpacks  # pylint: disable=import-outside-toplevel
    except ImportError:
        return []
    try:
        entries = userpacks.user_entries(images_dir)
    except userpacks.manifest.PackError as e:  # that module's copy of this one when run as a script
        raise PackError(str(e)) from None
    for entry in entries:
        if entry["name"] in builtin_names:
            raise PackError(f"user pack `{entry['name']}` has the name of a built-in pack; "
                            f"remove it (emberctl pack remove {entry['name']})")
    return entries


def cmd_write(out, kernel, pack_args, packs_root):
    bzimage, vmlinux, release = kernel
    check_relative("bzImage", bzimage)
    check_relative("vmlinux", vmlinux)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}", release):
        raise PackError(f"bad kernel release `{release}`")
    packs = []
    for arg in pack_args:
        name, sep, sha = arg.partition("=")
        if not sep or not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise PackError(f"bad pack argument `{arg}` (want NAME=SHA256)")
        pack = load_pack(os.path.join(packs_root, name))
        packs.append(catalog_entry(pack, sha, f"packs/{name}.squashfs"))
    if not packs:
        raise PackError("no pack images to list")
    builtin = {entry for entry in os.listdir(packs_root)
               if os.path.isfile(os.path.join(packs_root, entry, "pack.json"))}
    packs += user_entries(os.path.dirname(os.path.abspath(out)), builtin)
    packs.sort(key=lambda p: p["name"])
    manifest = {
        "version": MANIFEST_VERSION,
        "kernel": {"bzimage": bzimage, "vmlinux": vmlinux, "release": release},
        "initramfs": "initramfs.cpio.gz",
        "packs": packs,
    }
    text = json.dumps(manifest, indent=2) + "\n"
    try:
        with open(out, encoding="utf-8") as f:
            if f.read() == text:
                print("unchanged")
                return
    except FileNotFoundError:
        pass
    tmp = f"{out}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    print("written")


def main(argv):
    try:
        if len(argv) == 3 and argv[1] == "check":
            load_pack(argv[2])
        elif len(argv) >= 4 and argv[1] == "get":
            cmd_get(argv[2], argv[3], argv[4:])
        elif len(argv) == 4 and argv[1] == "install-files":
            cmd_install_files(argv[2], argv[3])
        elif len(argv) >= 6 and argv[1] == "write":
            packs_root = os.environ.get("EMBER_PACKS_DIR") or os.path.join(
                os.path.dirname(os.path.abspath(__file__)), "..", "packs")
            cmd_write(argv[2], argv[3:6], argv[6:], os.path.normpath(packs_root))
        else:
            raise PackError("usage: manifest.py check PACK_DIR | get PACK_DIR KEY [ARGS] | "
                            "install-files PACK_DIR ROOT | "
                            "write OUT BZIMAGE VMLINUX RELEASE NAME=SHA256...")
    except PackError as e:
        print(f"manifest.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
