/* template.c - template store: keys, background builds, references, cleanup (interface:
 * template.h).
 *
 * A template directory <dir>/<key>/ (root's, 0700) holds `memory` (the guest RAM the template VM
 * ran on, a shared file, root's and 0400 once the VM stopped), `state` (its device state) and
 * `digests` (of both, recorded at build, checked when a later daemon loads the template). It is
 * built in <dir>/<key>.building/ and renamed into place when complete, so a directory named by a
 * bare key is always whole. Clones never see the file: they map a sealed memfd copy of it
 * (vmm/guestmem.h) that the template owns, so no VMM can write a template's memory. */
#include "sandbox/template.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "channel/channel.h"
#include "sandbox/digest.h"
#include "util/cleanup.h"
#include "util/fdio.h"
#include "util/log.h"
#include "util/sync.h"
#include "util/timeutil.h"
#include "vmm/guestmem.h"

/* A failed build is not retried for this long: a broken image must not become a boot loop. */
#define TEMPLATE_RETRY_MS 60000

enum template_status { TEMPLATE_ABSENT, TEMPLATE_BUILDING, TEMPLATE_READY, TEMPLATE_FAILED };

struct template {
	struct template_store *store;
	char key[TEMPLATE_KEY_LEN + 1];
	char pack_digest[DIGEST_HEX_LEN + 1]; /* of the pack image this key was made for */
	char dir[PATH_MAX];
	char memory[PATH_MAX];
	char state[PATH_MAX];
	char pack_image[PATH_MAX];            /* <key>.pack: its own link to (or copy of) it */
	int memory_fd;                        /* sealed copy of memory (ready only), or -1 */
	struct guestmem_copy_stats copy_stats;
	bool on_disk;                         /* found complete at lookup: load, do not build */
	struct template_shape shape;
	enum template_status status;
	int64_t failed_at_ms;
	int64_t used_ms;      /* last acquire or creation: the least recent is evicted first */
	unsigned refs;
	bool discarded;   /* unusable: removed from disk, kept in memory while clones use it */
	bool superseded;  /* its pack image changed: removed once its last clone is gone */
	struct template *next;
};

/* What a pack image was when it was last hashed: a changed file is hashed again. Keyed by the
 * image's path, so the packs of every catalog generation (manager.h) share one. */
struct pack_fingerprint {
	char image[PATH_MAX];
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	char digest[DIGEST_HEX_LEN + 1];
};

struct template_store {
	char dir[PATH_MAX];
	const struct catalog *catalog;
	struct vmm_driver *driver;
	unsigned boot_timeout_ms;
	char base_digest[DIGEST_HEX_LEN + 1]; /* kernel, initramfs, VMM binary, driver, accel */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct template *list;
	unsigned builds_running;
	struct template_limits limits;
	unsigned evicted_total;
	bool closing;
	struct pack_fingerprint *packs; /* one per pack image seen, growing with reloads */
	size_t packs_count;
};

void template_boot_config(const struct template_shape *shape, const struct catalog *catalog,
			  struct vmm_boot_config *cfg, char *cmdline_extra, size_t size)
{
	snprintf(cmdline_extra, size, "emberd.overlay_mib=%u", shape->overlay_mib);
	cfg->kernel_bzimage = catalog->bzimage;
	cfg->kernel_vmlinux = catalog->vmlinux;
	cfg->initramfs = catalog->initramfs;
	cfg->pack_image = shape->pack->image;
	cfg->cmdline_extra = cmdline_extra;
	cfg->vcpus = shape->vcpus;
	cfg->memory_mib = shape->memory_mib;
}

/* The pack image's content hash, recomputed when the file changed (a rebuilt image is renamed
 * into place, so it has a new inode). Called with the lock held: hashing a pack takes ~0.1 s
 * and happens once per image change. */
static struct pack_fingerprint *fingerprint_of(struct template_store *st, const char *image)
{
	struct pack_fingerprint *grown;
	size_t i;

	for (i = 0; i < st->packs_count; i++) {
		if (strcmp(st->packs[i].image, image) == 0)
			return &st->packs[i];
	}
	grown = realloc(st->packs, (st->packs_count + 1) * sizeof(*st->packs));
	if (grown == NULL)
		return NULL;
	st->packs = grown;
	memset(&st->packs[st->packs_count], 0, sizeof(*st->packs));
	snprintf(st->packs[st->packs_count].image, PATH_MAX, "%s", image);
	return &st->packs[st->packs_count++];
}

static const char *pack_digest(struct template_store *st, const struct pack *pack)
{
	struct pack_fingerprint *fp = fingerprint_of(st, pack->image);
	struct stat sb;

	if (fp == NULL)
		return pack->sha256;
	if (stat(pack->image, &sb) < 0)
		return fp->digest[0] != '\0' ? fp->digest : pack->sha256;
	if (fp->digest[0] == '\0' || sb.st_dev != fp->dev || sb.st_ino != fp->ino ||
	    sb.st_size != fp->size || sb.st_mtim.tv_sec != fp->mtime.tv_sec ||
	    sb.st_mtim.tv_nsec != fp->mtime.tv_nsec) {
		struct ember_error *err = NULL;

		if (digest_file(pack->image, fp->digest, &err) < 0) {
			log_event(LOG_WARN, NULL, "template.fingerprint", -1, "%s", err->message);
			ember_error_free(&err);
			return pack->sha256;
		}
		fp->dev = sb.st_dev;
		fp->ino = sb.st_ino;
		fp->size = sb.st_size;
		fp->mtime = sb.st_mtim;
	}
	return fp->digest;
}

static void shape_key(struct template_store *st, const struct template_shape *shape,
		      char pack_hash[DIGEST_HEX_LEN + 1], char key[TEMPLATE_KEY_LEN + 1])
{
	char text[1024];
	int n;

	snprintf(pack_hash, DIGEST_HEX_LEN + 1, "%s", pack_digest(st, shape->pack));
	n = snprintf(text, sizeof(text), "v1|%s|%s|%s|%u|%u|%u%s", st->base_digest,
		     shape->pack->name, pack_hash, shape->vcpus, shape->memory_mib,
		     shape->overlay_mib, shape->nic ? "|nic" : "");
	digest_buffer(text, (size_t)n, key);
}

static bool same_shape(const struct template_shape *a, const struct template_shape *b)
{
	/* By name: a reloaded catalog's pack of the same name is the same shape, and its template
	 * supersedes the old one's when its image differs (lookup_locked). */
	return strcmp(a->pack->name, b->pack->name) == 0 && a->vcpus == b->vcpus && a->memory_mib == b->memory_mib &&
	       a->overlay_mib == b->overlay_mib && a->nic == b->nic;
}

/* Its directory and its pinned pack image, which lies beside the directory so that the path
 * a Firecracker snapshot names stays valid when the finished build is renamed into place. */
static void remove_files(const struct template *t)
{
	dir_remove_tree(t->dir, NULL);
	if (unlink(t->pack_image) < 0 && errno != ENOENT)
		log_event(LOG_WARN, NULL, "template.cleanup", -1, "remove %s: %s", t->pack_image,
			  strerror(errno));
}

static void template_free(struct template *t)
{
	if (t->memory_fd >= 0)
		close(t->memory_fd);
	free(t);
}

/* Removes a superseded template's files and entry once no clone uses it. Lock held. */
static void collect_locked(struct template_store *st)
{
	struct template **p = &st->list;

	while (*p != NULL) {
		struct template *t = *p;

		if ((t->superseded || t->discarded) && t->refs == 0 &&
		    t->status != TEMPLATE_BUILDING) {
			if (t->superseded && !t->discarded)
				remove_files(t);
			log_event(LOG_INFO, NULL, "template.removed", -1, "key=%.16s (%s)", t->key,
				  t->superseded ? "superseded" : "discarded");
			*p = t->next;
			template_free(t);
			continue;
		}
		p = &t->next;
	}
}

/* "<key><suffix>": a template's pinned pack (".pack") or unfinished build (".building"). */
static bool is_key_with_suffix(const char *name, const char *suffix)
{
	return strlen(name) == TEMPLATE_KEY_LEN + strlen(suffix) &&
	       strcmp(name + TEMPLATE_KEY_LEN, suffix) == 0;
}

int template_fingerprint_base(const struct catalog *catalog, struct vmm_driver *driver,
			      char out[DIGEST_HEX_LEN + 1], struct ember_error **err)
{
	char kernel[DIGEST_HEX_LEN + 1], initramfs[DIGEST_HEX_LEN + 1], vmm[DIGEST_HEX_LEN + 1];
	char text[1024];
	int n;

	if (digest_file(strcmp(vmm_driver_name(driver), "firecracker") == 0 ? catalog->vmlinux
									     : catalog->bzimage,
			kernel, err) < 0 ||
	    digest_file(catalog->initramfs, initramfs, err) < 0 ||
	    digest_file(vmm_driver_binary(driver), vmm, err) < 0)
		return ember_error_wrap(err, "fingerprint template inputs");
	n = snprintf(text, sizeof(text), "%s|%s|%s|%s|%s|%s", kernel, initramfs, vmm,
		     vmm_driver_name(driver), vmm_driver_accel_name(driver),
		     vmm_driver_kernel_args(driver));
	digest_buffer(text, (size_t)n, out);
	return 0;
}

/* Whether a directory entry of the store is a finished template or the pinned pack of one:
 * those are reused; everything else (unfinished builds of a crashed daemon) is garbage. */
static bool is_kept(const char *dir, const char *name)
{
	char tdir[PATH_MAX];

	if (strlen(name) == TEMPLATE_KEY_LEN)
		return true;
	if (!is_key_with_suffix(name, ".pack"))
		return false;
	snprintf(tdir, sizeof(tdir), "%s/%.*s", dir, TEMPLATE_KEY_LEN, name);
	return access(tdir, F_OK) == 0;
}

/* Removes what unfinished builds of an earlier daemon left, and their template VMs. */
static void sweep_leftovers(const char *dir, struct vmm_driver *driver)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	while (d != NULL && (de = readdir(d)) != NULL) {
		char path[PATH_MAX];

		if (de->d_name[0] == '.' || is_kept(dir, de->d_name))
			continue;
		if (is_key_with_suffix(de->d_name, ".building")) {
			char id[40];

			/* Its template VM, when the driver keeps it where the later run-directory
			 * sweep cannot see it (a jailed Firecracker). */
			snprintf(id, sizeof(id), "tpl_%.24s", de->d_name);
			if (vmm_driver_cleanup_stray(driver, id) > 0)
				log_event(LOG_WARN, NULL, "template.stray", -1,
					  "killed the VMM of an unfinished template build (%s)", id);
		}
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		dir_remove_tree(path, NULL);
	}
	if (d != NULL)
		closedir(d);
}

int template_store_create(const char *dir, const struct catalog *catalog,
			  struct vmm_driver *driver, const char *base_digest,
			  unsigned boot_timeout_ms, const struct template_limits *limits,
			  struct template_store **out, struct ember_error **err)
{
	_cleanup_free_ struct template_store *st = calloc(1, sizeof(*st));

	if (st == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	if (limits != NULL)
		st->limits = *limits;
	snprintf(st->dir, sizeof(st->dir), "%s", dir);
	st->catalog = catalog;
	st->driver = driver;
	st->boot_timeout_ms = boot_timeout_ms;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return ember_error_sys(err, "create template directory `%s`", dir);
	snprintf(st->base_digest, sizeof(st->base_digest), "%s", base_digest);
	sweep_leftovers(dir, driver);
	pthread_mutex_init(&st->lock, NULL);
	cond_init_monotonic(&st->cond);
	*out = steal_pointer(&st);
	return 0;
}

void template_store_free(struct template_store *st, bool remove_files)
{
	struct template *t;

	if (st == NULL)
		return;
	pthread_mutex_lock(&st->lock);
	st->closing = true;
	while (st->builds_running > 0)
		cond_wait_until(&st->cond, &st->lock, -1);
	pthread_mutex_unlock(&st->lock);
	while ((t = st->list) != NULL) {
		st->list = t->next;
		template_free(t);
	}
	if (remove_files)
		dir_remove_tree(st->dir, NULL);
	free(st->packs);
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->cond);
	free(st);
}

/* What a python warm-up imports: the modules a code context's interpreter loads
 * (src/guest/scripts/context.py), so a clone's first context starts from shared memory too. */
#define PYTHON_WARM_UP "import ast, base64, io, json, linecache, signal, traceback, types\n"

/* Runs the interpreter once (template.h). In a template: the files it loads at startup are in the
 * guest's page cache when the snapshot is taken, so every clone starts its first program from
 * memory the clones share instead of reading the pack image again. */
int template_warm_up(struct channel *ch, const struct pack *pack, struct ember_error **err)
{
	bool python = pack_language(pack) == PROTO_LANG_PYTHON;
	struct channel_exec_request req = {
		.argv = pack->interpreter,
		.argc = pack->interpreter_argc,
		.code = python ? PYTHON_WARM_UP : "",
		.code_argument = pack->code_argument,
		.timeout_ms = 30000,
		.output_limit = 0,
		.max_processes = 64,
	};
	struct channel_exec_result res;

	req.code_len = strlen(req.code);
	if (channel_exec(ch, &req, &res, err) < 0)
		return ember_error_wrap(err, "warm-up run");
	channel_exec_result_release(&res);
	return 0;
}

int template_snapshot_vm(struct vmm_driver *driver, const struct vmm_boot_config *base,
			 const struct pack *pack, const char *run_dir, const char *id,
			 const char *memory_path, const char *state_path, int64_t deadline_ms,
			 struct ember_error **err)
{
	struct vmm_boot_config bcfg = *base;
	struct vmm_instance *vm = NULL;
	struct channel *ch = NULL;
	struct proto_ready ready;
	int fd, ret = -1;

	bcfg.sandbox_id = id;
	bcfg.run_dir = run_dir;
	bcfg.memory_file = memory_path;
	bcfg.memory_shared = true;
	bcfg.restore_state = NULL;
	bcfg.deadline_ms = deadline_ms;
	if (vmm_start(driver, &bcfg, &vm, err) < 0)
		goto out;
	fd = vmm_connect_agent(vm, deadline_ms, err);
	if (fd < 0 || channel_open(fd, id, NULL, NULL, vmm_exit_fd(vm), deadline_ms, &ch, &ready, err) < 0 ||
	    (pack != NULL && template_warm_up(ch, pack, err) < 0))
		goto out;
	/* Nothing is in flight (the warm-up's EXIT came back), so the session holds nothing a clone
	 * could receive. Snapshot at once, without waiting for the agent to see us hang up: a
	 * clone's HELLO on a session the agent still thinks ready starts it over (docs/guest.md).
	 * Waiting would only hide a regression of that from the tests, which then clone from
	 * snapshots taken at every point of the hang-up. */
	channel_close(ch);
	ch = NULL;
	if (vmm_snapshot(vm, state_path, deadline_ms, err) < 0)
		goto out;
	ret = 0;
out:
	channel_close(ch);
	if (vm != NULL) {
		vmm_stop(vm, time_mono_ms() + 3000, NULL);
		vmm_instance_free(vm);
	}
	return ret;
}

int template_rebase_vm(struct vmm_driver *driver, const struct vmm_boot_config *base,
		       const char *run_dir, const char *id, const char *whole_state, int memory_fd,
		       const char *state_path, int64_t deadline_ms, struct ember_error **err)
{
	struct vmm_boot_config bcfg = *base;
	struct vmm_instance *vm = NULL;
	int ret;

	bcfg.sandbox_id = id;
	bcfg.run_dir = run_dir;
	bcfg.memory_fd = memory_fd;
	bcfg.memory_shared = true;
	bcfg.restore_state = NULL;
	bcfg.resume_state = whole_state;
	bcfg.resume_stopped = true;
	bcfg.deadline_ms = deadline_ms;
	ret = vmm_start(driver, &bcfg, &vm, err);
	if (ret == 0)
		ret = vmm_snapshot(vm, state_path, deadline_ms, err);
	if (vm != NULL) {
		vmm_stop(vm, time_mono_ms() + 3000, NULL);

		vmm_instance_free(vm);
	}
	return ret;
}

static void close_memory(struct template *t)
{
	if (t->memory_fd >= 0)
		close(t->memory_fd);
	t->memory_fd = -1;
}

/* Takes the RAM file back from the (stopped) template VM's uid, root's and read-only, and
 * copies it into the sealed memfd clones map; digest is what was copied. */
static int seal_memory(struct template *t, const char *path, char digest[DIGEST_HEX_LEN + 1],
		       struct ember_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	char name[96];

	if (fd < 0 || fchown(fd, geteuid(), getegid()) < 0 || fchmod(fd, 0400) < 0)
		return ember_error_sys(err, "take back `%s`", path);
	snprintf(name, sizeof(name), "emberd-template-%s", t->key);
	return guestmem_seal_copy(fd, (uint64_t)t->shape.memory_mib << 20, name, &t->memory_fd,
				  digest, &t->copy_stats, err);
}

#define DIGESTS_FORMAT "memory-pages-sha256 %64s\nstate-sha256 %64s\n"

static int read_digests(const char *dir, char memory[DIGEST_HEX_LEN + 1],
			char state[DIGEST_HEX_LEN + 1], struct ember_error **err)
{
	_cleanup_free_ char *text = NULL;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/digests", dir);
	if (file_read_all(path, 4096, &text, NULL, err) < 0)
		return -1;
	if (sscanf(text, DIGESTS_FORMAT, memory, state) != 2)
		return ember_error_set(err, EMBER_E_INTERNAL, 0, "`%s` is malformed", path);
	return 0;
}

/* After the build's VM stopped: the memfd for clones, and the digests a later daemon checks. */
static int seal_and_record(struct template *t, const char *dir, const char *memory,
			   const char *state, struct ember_error **err)
{
	char memory_digest[DIGEST_HEX_LEN + 1], state_digest[DIGEST_HEX_LEN + 1], path[PATH_MAX];
	char text[256];
	int n;

	if (seal_memory(t, memory, memory_digest, err) < 0 ||
	    digest_file(state, state_digest, err) < 0)
		return -1;
	n = snprintf(text, sizeof(text), "memory-pages-sha256 %s\nstate-sha256 %s\n",
		     memory_digest, state_digest);
	snprintf(path, sizeof(path), "%s/digests", dir);
	return file_write_atomic(path, text, (size_t)n, 0400, true, err);
}

/* Builds t's files in a scratch directory and renames it into place. Runs without the lock. */
static int build(struct template *t, struct ember_error **err)
{
	struct template_store *st = t->store;
	struct vmm_boot_config bcfg = { 0 };
	char tmp[PATH_MAX], run[PATH_MAX], memory[PATH_MAX], state[PATH_MAX], id[40];
	char cmdline_extra[128], pinned_digest[DIGEST_HEX_LEN + 1];
	_cleanup_close_ int nic = -1;
	int ret;

	snprintf(tmp, sizeof(tmp), "%s/%s.building", st->dir, t->key);
	/* The template VM's sockets live in a short directory: sun_path holds 107 bytes. */
	snprintf(run, sizeof(run), "%s/run-%.16s", st->dir, t->key);
	snprintf(memory, sizeof(memory), "%s/memory", tmp);
	snprintf(state, sizeof(state), "%s/state", tmp);
	snprintf(id, sizeof(id), "tpl_%.24s", t->key);
	dir_remove_tree(tmp, NULL);
	dir_remove_tree(run, NULL);
	ret = -1;
	if (mkdir(tmp, 0700) < 0 || mkdir(run, 0700) < 0) {
		ember_error_sys(err, "create `%s`", run);
		goto out;
	}
	/* The template and all its clones use this pinned image, never the catalog path: an image
	 * rebuilt meanwhile (renamed into place) cannot pair new disk content with old memory. */
	if (unlink(t->pack_image) < 0 && errno != ENOENT) {
		ember_error_sys(err, "remove `%s`", t->pack_image);
		goto out;
	}
	if (file_link_or_copy(t->shape.pack->image, t->pack_image, err) < 0 ||
	    digest_file(t->pack_image, pinned_digest, err) < 0)
		goto out;
	if (strcmp(pinned_digest, t->pack_digest) != 0) {
		ember_error_set(err, EMBER_E_UNAVAILABLE, 0,
				"the pack image changed while its template was being made");
		goto out;
	}
	template_boot_config(&t->shape, st->catalog, &bcfg, cmdline_extra, sizeof(cmdline_extra));
	bcfg.pack_image = t->pack_image;
	if (t->shape.nic) {
		nic = st->limits.nic_fd != NULL ? st->limits.nic_fd(st->limits.ctx, err)
			: ember_error_set(err, EMBER_E_UNAVAILABLE, 0, "no NIC for templates");
		if (nic < 0)
			goto out;
		bcfg.tap_fd = nic;
	}
	ret = template_snapshot_vm(st->driver, &bcfg, t->shape.pack, run, id, memory, state,
				   time_mono_ms() + st->boot_timeout_ms, err);
	if (ret == 0)
		ret = seal_and_record(t, tmp, memory, state, err);
	if (ret == 0 && rename(tmp, t->dir) < 0)
		ret = ember_error_sys(err, "install template `%s`", t->dir);
out:
	dir_remove_tree(run, NULL);
	if (ret < 0) {
		dir_remove_tree(tmp, NULL);
		unlink(t->pack_image);
		close_memory(t);
	}
	return ret;
}

/* A template found complete on disk (a daemon with --keep-sandboxes left it): used only when
 * what it holds is what was recorded at build, and the pinned pack still has its key's hash. */
static int load(struct template *t, struct ember_error **err)
{
	char memory[DIGEST_HEX_LEN + 1], state[DIGEST_HEX_LEN + 1], pack[DIGEST_HEX_LEN + 1];
	char want_memory[DIGEST_HEX_LEN + 1], want_state[DIGEST_HEX_LEN + 1];

	if (read_digests(t->dir, want_memory, want_state, err) < 0 ||
	    digest_file(t->state, state, err) < 0 || digest_file(t->pack_image, pack, err) < 0 ||
	    seal_memory(t, t->memory, memory, err) < 0)
		goto fail;
	if (strcmp(memory, want_memory) != 0 || strcmp(state, want_state) != 0 ||
	    strcmp(pack, t->pack_digest) != 0) {
		ember_error_set(err, EMBER_E_INTERNAL, 0, "its %s does not match what was recorded",
				strcmp(memory, want_memory) != 0 ? "memory"
				: strcmp(state, want_state) != 0 ? "device state" : "pack image");
		goto fail;
	}
	return 0;
fail:
	close_memory(t);
	return ember_error_wrap(err, "load template %.16s", t->key);
}

static bool take_slot(struct template_store *st)
{
	return st->limits.take_boot_slot == NULL ||
	       st->limits.take_boot_slot(st->limits.ctx, time_mono_ms() + st->boot_timeout_ms);
}

/* No boot slot came free in time: the build is tried again at the template's next use. */
static void put_off(struct template *t)
{
	struct template_store *st = t->store;

	pthread_mutex_lock(&st->lock);
	t->status = TEMPLATE_ABSENT;
	log_event(LOG_INFO, NULL, "template.put_off", -1,
		  "pack=%s key=%.16s: no boot slot free (--max-concurrent-boots)",
		  t->shape.pack->name, t->key);
	st->builds_running--;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
}

static void *build_main(void *arg)
{
	struct template *t = arg;
	struct template_store *st = t->store;
	struct ember_error *err = NULL;
	int64_t t0 = time_mono_ms();
	int ret;

	/* A build is never what a client waits for (a create without a template boots cold): its
	 * VM gets only the CPU nothing else wants. */
	vmm_set_spawn_priority(VMM_PRIO_IDLE);
	log_event(LOG_INFO, NULL, "template.building", -1,
		  "pack=%s vcpus=%u memory_mib=%u key=%.16s%s", t->shape.pack->name, t->shape.vcpus,
		  t->shape.memory_mib, t->key, t->on_disk ? " (loading it from disk)" : "");
	ret = t->on_disk ? load(t, &err) : -1;
	if (t->on_disk && ret < 0) {
		log_event(LOG_WARN, NULL, "template.load_failed", -1, "%s; building it again",
			  err->message);
		ember_error_free(&err);
		remove_files(t);
	}
	if (ret < 0 && !take_slot(st)) {
		put_off(t);
		return NULL;
	}
	if (ret < 0) {
		ret = build(t, &err);
		if (st->limits.give_boot_slot != NULL)
			st->limits.give_boot_slot(st->limits.ctx);
	}
	pthread_mutex_lock(&st->lock);
	if (ret == 0) {
		t->status = TEMPLATE_READY;
		log_event(LOG_INFO, NULL, "template.ready", time_mono_ms() - t0,
			  "pack=%s key=%.16s memfd_copy_ms=%lld memfd_kib=%llu scanned_kib=%llu",
			  t->shape.pack->name, t->key, (long long)t->copy_stats.elapsed_ms,
			  (unsigned long long)(t->copy_stats.data_bytes >> 10),
			  (unsigned long long)(t->copy_stats.scanned_bytes >> 10));
	} else {
		t->status = TEMPLATE_FAILED;
		t->failed_at_ms = time_mono_ms();
		log_event(LOG_WARN, NULL, "template.failed", time_mono_ms() - t0,
			  "pack=%s: %s (clones fall back to cold boots; retry in %d s)",
			  t->shape.pack->name, err != NULL ? err->message : "", TEMPLATE_RETRY_MS / 1000);
	}
	ember_error_free(&err);
	st->builds_running--;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

static struct template *find_locked(struct template_store *st, const char *key)
{
	struct template *t;

	for (t = st->list; t != NULL; t = t->next) {
		if (strcmp(t->key, key) == 0 && !t->discarded && !t->superseded)
			return t;
	}
	return NULL;
}

static struct template *find_superseded_locked(struct template_store *st, const char *key)
{
	struct template *t;

	for (t = st->list; t != NULL; t = t->next) {
		if (strcmp(t->key, key) == 0 && t->superseded && !t->discarded)
			return t;
	}
	return NULL;
}

static unsigned live_count_locked(const struct template_store *st)
{
	const struct template *t;
	unsigned n = 0;

	for (t = st->list; t != NULL; t = t->next)
		n += !t->discarded && !t->superseded;
	return n;
}

/* Below max_templates, or made so by evicting the least recently used template that no clone
 * uses and no build is making; false when every one is in use. Lock held. */
static bool make_room_locked(struct template_store *st)
{
	struct template *t, *victim;

	while (st->limits.max_templates > 0 && live_count_locked(st) >= st->limits.max_templates) {
		victim = NULL;
		for (t = st->list; t != NULL; t = t->next) {
			if (t->discarded || t->superseded || t->refs > 0 ||
			    t->status == TEMPLATE_BUILDING)
				continue;
			if (victim == NULL || t->used_ms < victim->used_ms)
				victim = t;
		}
		if (victim == NULL)
			return false;
		victim->discarded = true;
		remove_files(victim);
		st->evicted_total++;
		log_event(LOG_INFO, NULL, "template.evicted", -1,
			  "pack=%s key=%.16s: least recently used of %u (--max-templates)",
			  victim->shape.pack->name, victim->key, st->limits.max_templates);
		collect_locked(st);
	}
	return true;
}

/* Finds or creates the entry for shape; starts a build when needed. Called with the lock. */
static struct template *lookup_locked(struct template_store *st, const struct template_shape *shape,
				      bool start_build)
{
	char key[TEMPLATE_KEY_LEN + 1], pack_hash[DIGEST_HEX_LEN + 1];
	struct template *t;
	pthread_t thread;

	shape_key(st, shape, pack_hash, key);
	t = find_locked(st, key);
	if (t == NULL) {
		struct template *old;

		/* Same shape, other key: its inputs changed (a rebuilt pack image). New clones
		 * use the new template; the old one goes when its last clone does. */
		for (old = st->list; old != NULL; old = old->next) {
			if (same_shape(&old->shape, shape) && !old->superseded && !old->discarded) {
				old->superseded = true;
				log_event(LOG_INFO, NULL, "template.superseded", -1,
					  "pack=%s key=%.16s: inputs changed", shape->pack->name,
					  old->key);
			}
		}
		/* Inputs changed back (a catalog reload to the previous image) while the template
		 * of this key is still here: it is in use again. A second entry of one key would
		 * build into the same directory and VM id as the first. */
		t = find_superseded_locked(st, key);
		if (t != NULL) {
			t->superseded = false;
			log_event(LOG_INFO, NULL, "template.revived", -1,
				  "pack=%s key=%.16s: its inputs are in force again",
				  shape->pack->name, t->key);
		}
		collect_locked(st);
	}
	if (t == NULL) {
		if (!make_room_locked(st))
			return NULL; /* every template is in use: this shape boots cold */
		t = calloc(1, sizeof(*t));
		if (t == NULL)
			return NULL;
		t->store = st;
		t->shape = *shape;
		memcpy(t->key, key, sizeof(key));
		memcpy(t->pack_digest, pack_hash, sizeof(pack_hash));
		snprintf(t->dir, sizeof(t->dir), "%s/%s", st->dir, key);
		snprintf(t->memory, sizeof(t->memory), "%s/memory", t->dir);
		snprintf(t->state, sizeof(t->state), "%s/state", t->dir);
		snprintf(t->pack_image, sizeof(t->pack_image), "%s.pack", t->dir);
		t->memory_fd = -1;
		/* A finished template from an earlier daemon: loaded (and checked) by the thread a
		 * build would run on, and built again if it does not check out. */
		t->on_disk = access(t->dir, F_OK) == 0;
		t->status = TEMPLATE_ABSENT;
		t->used_ms = time_mono_ms();
		t->next = st->list;
		st->list = t;
	}
	if (start_build && !st->closing &&
	    (t->status == TEMPLATE_ABSENT ||
	     (t->status == TEMPLATE_FAILED && time_mono_ms() - t->failed_at_ms >= TEMPLATE_RETRY_MS))) {
		t->status = TEMPLATE_BUILDING;
		st->builds_running++;
		if (pthread_create(&thread, NULL, build_main, t) != 0) {
			t->status = TEMPLATE_FAILED;
			t->failed_at_ms = time_mono_ms();
			st->builds_running--;
		} else {
			pthread_detach(thread);
		}
	}
	return t;
}

struct template *template_acquire(struct template_store *st, const struct template_shape *shape)
{
	struct template *t;

	pthread_mutex_lock(&st->lock);
	t = lookup_locked(st, shape, true);
	if (t != NULL)
		t->used_ms = time_mono_ms();
	if (t != NULL && t->status == TEMPLATE_READY)
		t->refs++;
	else
		t = NULL;
	pthread_mutex_unlock(&st->lock);
	return t;
}

void template_prewarm(struct template_store *st, const struct template_shape *shape)
{
	pthread_mutex_lock(&st->lock);
	lookup_locked(st, shape, true);
	pthread_mutex_unlock(&st->lock);
}

void template_release(struct template *t)
{
	struct template_store *st;

	if (t == NULL)
		return;
	st = t->store;
	pthread_mutex_lock(&st->lock);
	t->refs--;
	collect_locked(st);
	pthread_mutex_unlock(&st->lock);
}

void template_discard(struct template *t)
{
	pthread_mutex_lock(&t->store->lock);
	if (!t->discarded) {
		/* Clones running on it keep their mappings; the next create rebuilds under the same
		 * key into a fresh directory. */
		t->discarded = true;
		remove_files(t);
		log_event(LOG_WARN, NULL, "template.discarded", -1, "key=%.16s", t->key);
	}
	pthread_mutex_unlock(&t->store->lock);
}

const char *template_memory_path(const struct template *t)
{
	return t->memory;
}

int template_memory_fd(const struct template *t)
{
	return t->memory_fd;
}

const char *template_state_path(const struct template *t)
{
	return t->state;
}

const char *template_pack_image(const struct template *t)
{
	return t->pack_image;
}

const char *template_key(const struct template *t)
{
	return t->key;
}

void template_store_stats(struct template_store *st, struct template_stats *stats)
{
	struct template *t;

	memset(stats, 0, sizeof(*stats));
	pthread_mutex_lock(&st->lock);
	for (t = st->list; t != NULL; t = t->next) {
		if (t->discarded || t->superseded)
			continue;
		stats->ready += t->status == TEMPLATE_READY;
		stats->building += t->status == TEMPLATE_BUILDING;
		stats->failed += t->status == TEMPLATE_FAILED;
		stats->clones_live += t->refs;
	}
	stats->evicted_total = st->evicted_total;
	pthread_mutex_unlock(&st->lock);
}
