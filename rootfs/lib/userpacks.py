#!/usr/bin/env python3
"""User packs (imported with `emberctl pack import`) and their place in packs.json.
Called by rootfs/lib/packctl.py (import, remove) and by manifest.py `write` (so that `make images`
keeps imported packs); never builds or hashes an image and never touches a built-in pack's files.

A user pack NAME is two files under IMAGES_DIR: packs/user/NAME.squashfs and user-packs/NAME.json,
the latter holding exactly the pack's packs.json entry. packs.json lists the built-in packs (those
whose image is not under packs/user/) and every user-packs/*.json, sorted by name."""

import json
import os
import re

# `import manifest`, not `from manifest import ...`: manifest.py imports this module too, and a
# module-level from-import would see it half-initialized when manifest is imported first.
import manifest

USER_DIR = "user-packs"
USER_IMAGE_DIR = "packs/user"
ENTRY_KEYS = ("name", "image", "sha256", "interpreter", "code", "description", "defaults")
OPTIONAL_KEYS = ("env", "cwd")  # the image config's Env and WorkingDir
ENV_MAX = 32  # the daemon's CATALOG_ENV_MAX
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def env_entry_ok(item):
    """A NAME=value string the daemon takes into a pack's env."""
    return (isinstance(item, str) and ENV_NAME_RE.match(item) is not None and "\0" not in item
            and len(item.encode()) <= 4096)
ENTRY_MAX_BYTES = 64 * 1024  # an entry is a few hundred bytes; this only bounds a stray file


def image_path(name):
    """The image of user pack `name`, relative to IMAGES_DIR."""
    return f"{USER_IMAGE_DIR}/{name}.squashfs"


def is_user_image(image):
    return isinstance(image, str) and image.startswith(USER_IMAGE_DIR + "/")


def validate_entry(entry, where):
    """Raises PackError naming `where` and the field unless entry is a well-formed pack entry."""

    def bad(field, message):
        return manifest.PackError(f"{where}: field `{field}`: {message}")

    if not isinstance(entry, dict):
        raise manifest.PackError(f"{where}: must be a JSON object")
    if not set(ENTRY_KEYS) <= set(entry) <= set(ENTRY_KEYS + OPTIONAL_KEYS):
        extra = sorted(set(entry) - set(ENTRY_KEYS) - set(OPTIONAL_KEYS))
        missing = sorted(set(ENTRY_KEYS) - set(entry))
        raise bad(extra[0] if extra else missing[0], "unknown key" if extra else "missing")
    name = entry["name"]
    if not isinstance(name, str) or not manifest.NAME_RE.match(name):
        raise bad("name", f"must match {manifest.NAME_RE.pattern}, got {json.dumps(name)}")
    if entry["image"] != image_path(name):
        raise bad("image", f"must be `{image_path(name)}`, got {json.dumps(entry['image'])}")
    if not isinstance(entry["sha256"], str) or not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]):
        raise bad("sha256", "must be 64 lowercase hex digits")
    manifest.check_interpreter(entry["interpreter"], entry["code"], bad)
    env = entry.get("env", [])
    if not isinstance(env, list) or len(env) > ENV_MAX or not all(map(env_entry_ok, env)):
        raise bad("env", f"must be at most {ENV_MAX} NAME=value strings of <= 4096 bytes")
    cwd = entry.get("cwd", "/")
    if not isinstance(cwd, str) or not cwd.startswith("/") or ".." in cwd.split("/") \
            or len(cwd) > 255:
        raise bad("cwd", "must be an absolute path without `..`, <= 255 bytes")
    manifest.check_description(entry["description"], bad)
    manifest.check_defaults(entry["defaults"], bad)


def load_json(path, limit=ENTRY_MAX_BYTES):
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise manifest.PackError(f"{path}: cannot read: {e.strerror}") from None
    if len(data) > limit:
        raise manifest.PackError(f"{path}: larger than {limit} bytes")
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=manifest.strict_object,
                          parse_constant=manifest.reject_constant)
    except (ValueError, manifest.PackError) as e:
        raise manifest.PackError(f"{path}: not valid JSON: {e}") from None


def user_entries(images_dir):
    """Every user pack's validated catalog entry, sorted by name; [] when there are none.
    Raises PackError naming the file when one is malformed or its image is missing."""
    directory = os.path.join(images_dir, USER_DIR)
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    entries = []
    for file_name in names:
        if file_name.startswith(".") or not file_name.endswith(".json"):
            continue  # our own temporaries (.NAME.json.tmp.PID) and anything else
        path = os.path.join(directory, file_name)
        entry = load_json(path)
        validate_entry(entry, path)
        if entry["name"] + ".json" != file_name:
            raise manifest.PackError(f"{path}: field `name`: is `{entry['name']}` but the file "
                                     f"is `{file_name}`")
        if not os.path.isfile(os.path.join(images_dir, entry["image"])):
            raise manifest.PackError(f"{path}: its image {entry['image']} is missing")
        entries.append(entry)
    return entries


def merged_manifest(catalog, entries):
    """catalog (a parsed packs.json) with its user packs replaced by entries."""
    builtin = [p for p in catalog.get("packs", []) if not is_user_image(p.get("image"))]
    taken = {p["name"] for p in builtin}
    for entry in entries:
        if entry["name"] in taken:
            raise manifest.PackError(f"user pack `{entry['name']}` has the name of a built-in "
                                     "pack")
    merged = dict(catalog)
    merged["packs"] = sorted(builtin + list(entries), key=lambda p: p["name"])
    return merged


def write_atomic(path, text):
    """tmp + fsync + rename + fsync of the directory: readers see the old or the new file."""
    tmp = f"{os.path.join(os.path.dirname(path), '.' + os.path.basename(path))}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(os.path.dirname(path))


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def manifest_text(catalog):
    return json.dumps(catalog, indent=2) + "\n"


def rewrite_catalog(images_dir, entries=None):
    """Rewrites IMAGES_DIR/packs.json as its built-in packs + entries (default: user_entries).
    Returns True when the file changed."""
    path = os.path.join(images_dir, "packs.json")
    catalog = load_json(path, limit=1 << 20)
    if not isinstance(catalog, dict) or not isinstance(catalog.get("packs"), list):
        raise manifest.PackError(f"{path}: not a packs.json manifest")
    if entries is None:
        entries = user_entries(images_dir)
    text = manifest_text(merged_manifest(catalog, entries))
    with open(path, encoding="utf-8") as f:
        if f.read() == text:
            return False
    write_atomic(path, text)
    return True
