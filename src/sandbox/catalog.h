/* catalog.h - the image catalog: kernel, initramfs and language packs described by
 * $IMAGES_DIR/packs.json (written by rootfs/build.sh). Loaded by the daemon at startup (and
 * again on each reload, sandbox/catalogs.h) and by ember-vm; read by the manager and the
 * template store. The parser is strict and bounded
 * (fuzzed): a bad manifest stops startup with a message naming the field, it is never
 * half-loaded, and a path in it never points outside the images directory.
 * Ownership: a struct catalog owns its strings and packs (catalog_release frees them); everyone
 * else borrows it and it outlives them. */
#ifndef EMBER_SANDBOX_CATALOG_H
#define EMBER_SANDBOX_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/ctxmsg.h"
#include "proto/messages.h"
#include "util/error.h"

#define CATALOG_MANIFEST "packs.json"
#define CATALOG_MANIFEST_MAX (1024 * 1024)
#define CATALOG_PACKS_MAX 64
#define CATALOG_NAME_MAX 32
#define CATALOG_ENV_MAX 32                /* a pack's own environment entries */

struct pack_defaults {
	uint32_t exec_timeout_ms;
	uint64_t output_limit_bytes;
	uint32_t memory_mib;
	uint32_t vcpus;
	uint32_t overlay_mib;
};

struct pack {
	char name[CATALOG_NAME_MAX + 1];
	char *image;                        /* absolute path */
	char sha256[65];
	char description[256];
	char *interpreter[PROTO_ARGV_MAX + 1];
	size_t interpreter_argc;
	char *env[CATALOG_ENV_MAX + 1];     /* NAME=value every exec starts with (an imported
					     * image's Env); the request's env wins on a name */
	size_t envc;
	char *cwd;                          /* an exec's directory when it names none (an image's
					     * WorkingDir); NULL: the sandbox user's home */
	bool code_argument;                 /* "code":"argument": interpreter + [code] itself
					     * (e.g. ["/bin/sh","-c"]); else + [code file] */
	struct pack_defaults defaults;
};

struct catalog {
	char *images_dir;
	char *bzimage;                      /* absolute paths */
	char *vmlinux;
	char *initramfs;
	char kernel_release[128];
	struct pack *packs;
	size_t count;
};

/* Parses a manifest text; paths are resolved against images_dir. */
int catalog_parse(const char *images_dir, const char *text, size_t len, struct catalog *cat,
		  struct ember_error **err);
/* Reads $images_dir/packs.json and parses it. */
int catalog_load(const char *images_dir, struct catalog *cat, struct ember_error **err);
/* Checks that every file the catalog names exists and is readable; the message names what is
 * missing and how to build it. need_vmlinux for Firecracker. */
int catalog_check_files(const struct catalog *cat, int need_vmlinux, struct ember_error **err);
const struct pack *catalog_find(const struct catalog *cat, const char *name);
/* The language of the pack's interpreter, from its basename: python* is PROTO_LANG_PYTHON,
 * node and nodejs* PROTO_LANG_NODE, sh, bash and dash PROTO_LANG_SHELL; anything else
 * PROTO_LANG_NONE (it runs plain execs, and shell contexts through the image's /bin/sh). */
enum proto_context_language pack_language(const struct pack *pack);
/* A comma-separated list of pack names (--pool-packs): each entry a valid pack name, none twice;
 * EMBER_E_INVALID naming the entry otherwise. */
int pack_list_check(const char *list, struct ember_error **err);
/* Every entry of a checked list names a pack of cat (EMBER_E_INVALID naming the first that does
 * not, with what the catalog has); a NULL list passes. */
int catalog_check_pack_list(const struct catalog *cat, const char *list, const char *what,
			    struct ember_error **err);
/* Whether name is an entry of list (comma-separated); a NULL list holds every name. */
bool pack_list_has(const char *list, const char *name);
/* "python, shell" into out. */
void catalog_names(const struct catalog *cat, char *out, size_t size);
void catalog_release(struct catalog *cat);

#endif
