/* catalog.c - strict parser of packs.json and file checks (interface: catalog.h). */
#include "sandbox/catalog.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fdio.h"
#include "util/jsonutil.h"

#define KIND EMBER_E_INVALID

/* Relative, no "..", no leading "/", a sane alphabet: the manifest cannot point outside. */
static int resolve_path(const char *images_dir, const char *rel, const char *field, char **out,
			struct ember_error **err)
{
	const char *p;

	if (rel[0] == '\0' || rel[0] == '/' || strstr(rel, "..") != NULL)
		return ember_error_set(err, KIND, 0, "`%s` must be a relative path inside the "
				       "images directory", field);
	for (p = rel; *p != '\0'; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("._-/", *p) != NULL))
			return ember_error_set(err, KIND, 0, "`%s` has a character outside "
					       "[A-Za-z0-9._-/]", field);
	}
	if (asprintf(out, "%s/%s", images_dir, rel) < 0) {
		*out = NULL;
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	}
	return 0;
}

static int valid_name(const char *s)
{
	const char *p;

	if (s[0] == '\0')
		return 0;
	for (p = s; *p != '\0'; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
			return 0;
	}
	return 1;
}

/* A walk over the entries of a comma-separated list (the first n bytes of it): every list has
 * at least one entry, maybe empty ("" is one empty entry, "a," ends in one). */
struct list_walk {
	const char *next; /* NULL: no entry left */
	const char *end;
};

static struct list_walk list_walk(const char *list, size_t n)
{
	return (struct list_walk){ .next = list, .end = list + n };
}

/* The next entry and its length; false at the end. */
static bool list_next(struct list_walk *w, const char **entry, size_t *len)
{
	const char *comma;

	if (w->next == NULL)
		return false;
	comma = memchr(w->next, ',', (size_t)(w->end - w->next));
	*entry = w->next;
	*len = (size_t)((comma != NULL ? comma : w->end) - w->next);
	w->next = comma != NULL ? comma + 1 : NULL;
	return true;
}

/* Whether name is an entry of the first n bytes of a comma-separated list. */
static bool pack_list_has_n(const char *list, size_t n, const char *name)
{
	struct list_walk w = list_walk(list, n);
	size_t name_len = strlen(name), len;
	const char *entry;

	while (list_next(&w, &entry, &len)) {
		if (len == name_len && memcmp(entry, name, len) == 0)
			return true;
	}
	return false;
}

int pack_list_check(const char *list, struct ember_error **err)
{
	struct list_walk w = list_walk(list, strlen(list));
	const char *entry;
	size_t len;

	while (list_next(&w, &entry, &len)) {
		char name[CATALOG_NAME_MAX + 1];

		if (len == 0 || len > CATALOG_NAME_MAX)
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "`%.*s` is not a pack name (a comma-separated list "
					       "of names, none empty or longer than %d)",
					       (int)(len > 64 ? 64 : len), entry, CATALOG_NAME_MAX);
		memcpy(name, entry, len);
		name[len] = '\0';
		if (!valid_name(name))
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "`%s` is not a pack name ([a-z0-9_-])", name);
		if (entry != list && pack_list_has_n(list, (size_t)(entry - list - 1), name))
			return ember_error_set(err, EMBER_E_INVALID, 0, "`%s` is listed twice",
					       name);
	}
	return 0;
}

int catalog_check_pack_list(const struct catalog *cat, const char *list, const char *what,
			    struct ember_error **err)
{
	struct list_walk w;
	const char *entry;
	char names[512];
	size_t len;

	if (list == NULL)
		return 0; /* no list: nothing to check */
	w = list_walk(list, strlen(list));
	while (list_next(&w, &entry, &len)) {
		char name[CATALOG_NAME_MAX + 1];

		snprintf(name, sizeof(name), "%.*s", (int)len, entry);
		if (catalog_find(cat, name) == NULL) {
			catalog_names(cat, names, sizeof(names));
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "%s names pack `%s`, which the catalog does not "
					       "have (it has: %s)", what, name, names);
		}
	}
	return 0;
}

bool pack_list_has(const char *list, const char *name)
{
	return list == NULL || pack_list_has_n(list, strlen(list), name);
}

static int parse_defaults(json_t *obj, struct pack_defaults *d, struct ember_error **err)
{
	static const char *const keys[] = { "exec_timeout_ms", "output_limit_bytes", "memory_mib",
					    "vcpus", "overlay_mib", NULL };
	uint64_t timeout, limit, memory, vcpus, overlay;

	if (!json_is_object(obj))
		return ember_error_set(err, KIND, 0, "field `defaults` must be an object");
	if (json_check_keys(obj, keys, KIND, err) < 0 ||
	    json_get_uint(obj, "exec_timeout_ms", true, 1, PROTO_TIMEOUT_MS_MAX, &timeout, KIND,
			  err) < 0 ||
	    json_get_uint(obj, "output_limit_bytes", true, 0, PROTO_OUTPUT_LIMIT_MAX, &limit, KIND,
			  err) < 0 ||
	    json_get_uint(obj, "memory_mib", true, 64, 65536, &memory, KIND, err) < 0 ||
	    json_get_uint(obj, "vcpus", true, 1, 64, &vcpus, KIND, err) < 0 ||
	    json_get_uint(obj, "overlay_mib", true, 1, 65536, &overlay, KIND, err) < 0)
		return ember_error_wrap(err, "defaults");
	d->exec_timeout_ms = (uint32_t)timeout;
	d->output_limit_bytes = limit;
	d->memory_mib = (uint32_t)memory;
	d->vcpus = (uint32_t)vcpus;
	d->overlay_mib = (uint32_t)overlay;
	return 0;
}

/* The optional "env" (NAME=value strings, an imported image's Env) and "cwd" (an absolute
 * directory, its WorkingDir) every exec of the pack starts with. */
static int parse_environment(json_t *obj, struct pack *p, struct ember_error **err)
{
	const char *cwd = NULL;
	size_t cwd_len = 0;

	if (json_object_get(obj, "env") != NULL &&
	    proto_json_copy_strings(obj, "env", CATALOG_ENV_MAX, false, true, p->env, &p->envc,
				    err) < 0)
		return -1;
	if (json_get_string(obj, "cwd", false, 255, &cwd, &cwd_len, KIND, err) < 0)
		return -1;
	if (cwd == NULL)
		return 0;
	if (cwd[0] != '/' || strstr(cwd, "/../") != NULL ||
	    (cwd_len >= 3 && strcmp(cwd + cwd_len - 3, "/..") == 0))
		return ember_error_set(err, KIND, 0, "`cwd` must be an absolute path without `..`");
	p->cwd = strdup(cwd);
	if (p->cwd == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	return 0;
}

static int parse_pack(const char *images_dir, json_t *obj, struct pack *p,
		      struct ember_error **err)
{
	static const char *const keys[] = { "name", "image", "sha256", "interpreter",
					    "description", "defaults", "code", "env", "cwd", NULL };
	const char *name, *image, *sha, *desc, *code = "file";
	size_t name_len, sha_len, desc_len, i;
	json_t *interp;

	if (!json_is_object(obj))
		return ember_error_set(err, KIND, 0, "each pack must be an object");
	if (json_check_keys(obj, keys, KIND, err) < 0 ||
	    json_get_string(obj, "name", true, CATALOG_NAME_MAX, &name, &name_len, KIND, err) < 0)
		return -1;
	if (!valid_name(name))
		return ember_error_set(err, KIND, 0, "pack name `%s` must match [a-z0-9_-]+", name);
	memcpy(p->name, name, name_len + 1);
	if (json_get_string(obj, "image", true, 255, &image, NULL, KIND, err) < 0 ||
	    json_get_string(obj, "sha256", true, 64, &sha, &sha_len, KIND, err) < 0 ||
	    json_get_string(obj, "description", true, sizeof(p->description) - 1, &desc, &desc_len,
			    KIND, err) < 0 ||
	    json_get_string(obj, "code", false, 16, &code, NULL, KIND, err) < 0 ||
	    parse_defaults(json_object_get(obj, "defaults"), &p->defaults, err) < 0 ||
	    resolve_path(images_dir, image, "image", &p->image, err) < 0)
		return ember_error_wrap(err, "pack `%s`", name);
	if (sha_len != 64 || strspn(sha, "0123456789abcdef") != 64)
		return ember_error_set(err, KIND, 0, "pack `%s`: `sha256` must be 64 hex digits",
				       name);
	if (strcmp(code, "file") != 0 && strcmp(code, "argument") != 0)
		return ember_error_set(err, KIND, 0, "pack `%s`: `code` must be \"file\" or "
				       "\"argument\"", name);
	p->code_argument = strcmp(code, "argument") == 0;
	if (parse_environment(obj, p, err) < 0)
		return ember_error_wrap(err, "pack `%s`", name);
	memcpy(p->sha256, sha, 65);
	memcpy(p->description, desc, desc_len + 1);
	interp = json_object_get(obj, "interpreter");
	if (!json_is_array(interp) || json_array_size(interp) == 0 ||
	    json_array_size(interp) > PROTO_ARGV_MAX)
		return ember_error_set(err, KIND, 0, "pack `%s`: `interpreter` must be an array of "
				       "1 to %d strings", name, PROTO_ARGV_MAX);
	for (i = 0; i < json_array_size(interp); i++) {
		const char *arg = json_string_value(json_array_get(interp, i));

		if (arg == NULL || arg[0] == '\0' || strlen(arg) > PROTO_STRING_MAX ||
		    (i == 0 && arg[0] != '/'))
			return ember_error_set(err, KIND, 0, "pack `%s`: `interpreter[%zu]` must be "
					       "a non-empty string%s", name, i,
					       i == 0 ? " with an absolute path" : "");
		p->interpreter[i] = strdup(arg);
		if (p->interpreter[i] == NULL)
			return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
		p->interpreter_argc = i + 1;
	}
	return 0;
}

/* The kernel and initramfs paths (resolved, checked to stay inside images_dir). */
static int parse_kernel(const char *images_dir, json_t *root, struct catalog *cat,
			struct ember_error **err)
{
	static const char *const kernel_keys[] = { "bzimage", "vmlinux", "release", NULL };
	json_t *kernel = json_object_get(root, "kernel");
	const char *bz, *vmlinux, *release, *initramfs;
	size_t release_len;

	if (!json_is_object(kernel))
		return ember_error_set(err, KIND, 0, "field `kernel` must be an object");
	if (json_check_keys(kernel, kernel_keys, KIND, err) < 0 ||
	    json_get_string(kernel, "bzimage", true, 255, &bz, NULL, KIND, err) < 0 ||
	    json_get_string(kernel, "vmlinux", true, 255, &vmlinux, NULL, KIND, err) < 0 ||
	    json_get_string(kernel, "release", true, sizeof(cat->kernel_release) - 1, &release,
			    &release_len, KIND, err) < 0 ||
	    json_get_string(root, "initramfs", true, 255, &initramfs, NULL, KIND, err) < 0 ||
	    resolve_path(images_dir, bz, "kernel.bzimage", &cat->bzimage, err) < 0 ||
	    resolve_path(images_dir, vmlinux, "kernel.vmlinux", &cat->vmlinux, err) < 0 ||
	    resolve_path(images_dir, initramfs, "initramfs", &cat->initramfs, err) < 0)
		return -1;
	memcpy(cat->kernel_release, release, release_len + 1);
	return 0;
}

/* Every pack, each name once. */
static int parse_packs(const char *images_dir, json_t *packs, struct catalog *cat,
		       struct ember_error **err)
{
	size_t i, j;

	if (!json_is_array(packs) || json_array_size(packs) == 0 ||
	    json_array_size(packs) > CATALOG_PACKS_MAX)
		return ember_error_set(err, KIND, 0, "field `packs` must be an array of 1 to %d packs",
				       CATALOG_PACKS_MAX);
	cat->packs = calloc(json_array_size(packs), sizeof(*cat->packs));
	if (cat->packs == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	for (i = 0; i < json_array_size(packs); i++) {
		cat->count = i + 1;
		if (parse_pack(images_dir, json_array_get(packs, i), &cat->packs[i], err) < 0)
			return -1;
		for (j = 0; j < i; j++) {
			if (strcmp(cat->packs[j].name, cat->packs[i].name) == 0)
				return ember_error_set(err, KIND, 0, "pack `%s` is listed twice",
						       cat->packs[i].name);
		}
	}
	return 0;
}

int catalog_parse(const char *images_dir, const char *text, size_t len, struct catalog *cat,
		  struct ember_error **err)
{
	static const char *const keys[] = { "version", "kernel", "initramfs", "packs", NULL };
	_cleanup_json_ json_t *root = NULL;
	uint64_t version;

	memset(cat, 0, sizeof(*cat));
	if (json_parse_object(text, len, &root, KIND, err) < 0)
		return -1;
	if (json_check_keys(root, keys, KIND, err) < 0 ||
	    json_get_uint(root, "version", true, 1, 1, &version, KIND, err) < 0)
		return -1;
	cat->images_dir = strdup(images_dir);
	if (cat->images_dir == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	/* Never half-loaded: whatever was parsed before a failure goes with it. */
	if (parse_kernel(images_dir, root, cat, err) < 0 ||
	    parse_packs(images_dir, json_object_get(root, "packs"), cat, err) < 0) {
		catalog_release(cat);
		return -1;
	}
	return 0;
}

int catalog_load(const char *images_dir, struct catalog *cat, struct ember_error **err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *text = NULL;
	size_t len;

	if (asprintf(&path, "%s/%s", images_dir, CATALOG_MANIFEST) < 0) {
		path = NULL;
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	}
	if (file_read_all(path, CATALOG_MANIFEST_MAX, &text, &len, err) < 0)
		return ember_error_wrap(err, "image catalog (build the images with `make images`, "
					"or point --images at their directory)");
	if (catalog_parse(images_dir, text, len, cat, err) < 0)
		return ember_error_wrap(err, "image catalog `%s`", path);
	return 0;
}

static int check_file(const char *path, const char *what, struct ember_error **err)
{
	if (access(path, R_OK) != 0)
		return ember_error_sys(err, "%s `%s` is missing or unreadable (run `make images`)",
				       what, path);
	return 0;
}

int catalog_check_files(const struct catalog *cat, int need_vmlinux, struct ember_error **err)
{
	size_t i;

	if (check_file(cat->bzimage, "guest kernel", err) < 0 ||
	    (need_vmlinux && check_file(cat->vmlinux, "guest kernel (ELF vmlinux)", err) < 0) ||
	    check_file(cat->initramfs, "initramfs", err) < 0)
		return -1;
	for (i = 0; i < cat->count; i++) {
		char what[80];

		snprintf(what, sizeof(what), "language pack `%s` image", cat->packs[i].name);
		if (check_file(cat->packs[i].image, what, err) < 0)
			return -1;
	}
	return 0;
}

enum proto_context_language pack_language(const struct pack *pack)
{
	const char *slash = strrchr(pack->interpreter[0], '/');
	const char *base = slash != NULL ? slash + 1 : pack->interpreter[0];

	if (strncmp(base, "python", 6) == 0)
		return PROTO_LANG_PYTHON;
	if (strcmp(base, "node") == 0 || strncmp(base, "nodejs", 6) == 0)
		return PROTO_LANG_NODE;
	if (strcmp(base, "sh") == 0 || strcmp(base, "bash") == 0 || strcmp(base, "dash") == 0)
		return PROTO_LANG_SHELL;
	return PROTO_LANG_NONE;
}

const struct pack *catalog_find(const struct catalog *cat, const char *name)
{
	size_t i;

	for (i = 0; i < cat->count; i++) {
		if (strcmp(cat->packs[i].name, name) == 0)
			return &cat->packs[i];
	}
	return NULL;
}

void catalog_names(const struct catalog *cat, char *out, size_t size)
{
	size_t i, used = 0;

	out[0] = '\0';
	for (i = 0; i < cat->count && used < size; i++) {
		int n = snprintf(out + used, size - used, "%s%s", i > 0 ? ", " : "",
				 cat->packs[i].name);

		if (n < 0)
			break;
		used += (size_t)n;
	}
}

void catalog_release(struct catalog *cat)
{
	size_t i, j;

	for (i = 0; i < cat->count; i++) {
		free(cat->packs[i].image);
		for (j = 0; j < cat->packs[i].interpreter_argc; j++)
			free(cat->packs[i].interpreter[j]);
		for (j = 0; j < cat->packs[i].envc; j++)
			free(cat->packs[i].env[j]);
		free(cat->packs[i].cwd);
	}
	free(cat->packs);
	free(cat->images_dir);
	free(cat->bzimage);
	free(cat->vmlinux);
	free(cat->initramfs);
	memset(cat, 0, sizeof(*cat));
}
