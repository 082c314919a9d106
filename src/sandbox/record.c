/* record.c - sandbox.json encode/parse/save/load (interface: record.h). */
#include "sandbox/record.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/fdio.h"
#include "util/jsonutil.h"

#define KIND EMBER_E_INVALID

/* A live sandbox's VMM (pid, pid_start_ticks), or a paused one's saved VM ("paused"). */
static int encode_vmm(json_t *obj, const struct sandbox_record *rec)
{
	if (rec->paused)
		return json_object_set_new(obj, "paused",
					   json_pack("{s:I, s:s, s:s}", "lifetime_left_ms",
						     (json_int_t)rec->lifetime_left_ms,
						     "pack_digest", rec->pack_digest,
						     "base_digest", rec->base_digest));
	if (json_object_set_new(obj, "pid", json_integer(rec->pid)) < 0)
		return -1;
	return json_object_set_new(obj, "pid_start_ticks", json_integer((json_int_t)
									 rec->pid_start_ticks));
}

char *sandbox_record_encode(const struct sandbox_record *rec, size_t *len,
			    struct ember_error **err)
{
	_cleanup_json_ json_t *obj = json_pack("{s:i, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:I, s:I, s:I}",
				"version", SANDBOX_RECORD_VERSION, "id", rec->id, "language_pack",
				rec->language_pack, "vmm", rec->vmm, "vcpus", (int)rec->vcpus,
				"memory_mib", (int)rec->memory_mib, "timeout_s",
				(int)rec->timeout_s, "overlay_mib", (int)rec->overlay_mib,
				"created_wall_ns",
				(json_int_t)rec->created_wall_ns, "expires_wall_ns",
				(json_int_t)rec->expires_wall_ns, "boot_ms",
				(json_int_t)rec->boot_ms);

	if (obj != NULL && encode_vmm(obj, rec) < 0) {
		ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
		return NULL;
	}
	if (obj == NULL || json_object_set_new(obj, "idle_timeout_s",
					       json_integer(rec->idle_timeout_s)) < 0 ||
	    (rec->cpu_weight != 0 &&
	     json_object_set_new(obj, "cpu_weight", json_integer(rec->cpu_weight)) < 0) ||
	    json_object_set_new(obj, "labels", sandbox_labels_to_json(&rec->labels)) < 0 ||
	    (rec->env.count > 0 &&
	     json_object_set_new(obj, "env", sandbox_env_to_json(&rec->env)) < 0) ||
	    (rec->mounts.n > 0 &&
	     json_object_set_new(obj, "mounts", sandbox_mounts_json(&rec->mounts)) < 0)) {
		ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
		return NULL;
	}
	return json_dump_compact(obj, len, err);
}

/* "paused" {lifetime_left_ms, pack_digest, base_digest} instead of pid and pid_start_ticks,
 * or those two. */
static int parse_vmm(json_t *root, struct sandbox_record *rec, uint64_t *pid, uint64_t *ticks,
		     struct ember_error **err)
{
	static const char *const keys[] = { "lifetime_left_ms", "pack_digest", "base_digest",
					    NULL };
	json_t *paused = json_object_get(root, "paused");

	if (paused == NULL)
		return json_get_uint(root, "pid", true, 2, 0x3fffffff, pid, KIND, err) < 0 ||
		       json_get_uint(root, "pid_start_ticks", true, 1, UINT64_MAX >> 1, ticks,
				     KIND, err) < 0 ? -1 : 0;
	if (!json_is_object(paused))
		return ember_error_set(err, KIND, 0, "`paused` must be an object");
	if (json_object_get(root, "pid") != NULL || json_object_get(root, "pid_start_ticks") != NULL)
		return ember_error_set(err, KIND, 0, "a paused sandbox has no pid");
	if (json_check_keys(paused, keys, KIND, err) < 0 ||
	    json_get_int(paused, "lifetime_left_ms", true, 1, 30ll * 86400 * 1000,
			 &rec->lifetime_left_ms, KIND, err) < 0 ||
	    json_copy_string(paused, "pack_digest", rec->pack_digest, sizeof(rec->pack_digest),
			     KIND, err) < 0 ||
	    json_copy_string(paused, "base_digest", rec->base_digest, sizeof(rec->base_digest),
			     KIND, err) < 0)
		return -1;
	rec->paused = true;
	return 0;
}

int sandbox_record_parse(const char *text, size_t len, struct sandbox_record *rec,
			 struct ember_error **err)
{
	static const char *const keys[] = { "version", "id", "language_pack", "vmm", "vcpus",
					    "memory_mib", "timeout_s", "overlay_mib", "created_wall_ns",
					    "expires_wall_ns", "boot_ms", "pid", "pid_start_ticks",
					    "idle_timeout_s", "labels", "cpu_weight", "env", "mounts",
					    "paused", NULL };
	_cleanup_json_ json_t *root = NULL;
	uint64_t version, vcpus, memory, timeout, overlay, pid = 0, ticks = 0, idle = 0, weight = 0;
	int64_t created, expires, boot_ms;

	memset(rec, 0, sizeof(*rec));
	if (json_parse_object(text, len, &root, KIND, err) < 0)
		return -1;
	if (json_check_keys(root, keys, KIND, err) < 0 ||
	    json_get_uint(root, "version", true, SANDBOX_RECORD_VERSION, SANDBOX_RECORD_VERSION,
			  &version, KIND, err) < 0 ||
	    json_copy_string(root, "id", rec->id, sizeof(rec->id), KIND, err) < 0 ||
	    json_copy_string(root, "language_pack", rec->language_pack,
			     sizeof(rec->language_pack), KIND, err) < 0 ||
	    json_copy_string(root, "vmm", rec->vmm, sizeof(rec->vmm), KIND, err) < 0 ||
	    json_get_uint(root, "vcpus", true, 1, 64, &vcpus, KIND, err) < 0 ||
	    json_get_uint(root, "memory_mib", true, 64, 65536, &memory, KIND, err) < 0 ||
	    json_get_uint(root, "timeout_s", true, 1, 30u * 86400, &timeout, KIND, err) < 0 ||
	    json_get_uint(root, "overlay_mib", true, 1, 65536, &overlay, KIND, err) < 0 ||
	    json_get_int(root, "created_wall_ns", true, 0, INT64_MAX, &created, KIND, err) < 0 ||
	    json_get_int(root, "expires_wall_ns", true, 0, INT64_MAX, &expires, KIND, err) < 0 ||
	    json_get_int(root, "boot_ms", true, 0, INT64_MAX, &boot_ms, KIND, err) < 0 ||
	    parse_vmm(root, rec, &pid, &ticks, err) < 0 ||
	    json_get_uint(root, "idle_timeout_s", false, 0, 30u * 86400, &idle, KIND, err) < 0 ||
	    json_get_uint(root, "cpu_weight", false, 1, 10000, &weight, KIND, err) < 0 ||
	    sandbox_labels_from_json(root, "labels", &rec->labels, err) < 0 ||
	    sandbox_env_from_json(root, "env", &rec->env, err) < 0 ||
	    sandbox_mounts_from_json(json_object_get(root, "mounts"), &rec->mounts, err) < 0)
		return -1;
	rec->idle_timeout_s = (unsigned)idle;
	rec->cpu_weight = (unsigned)weight;
	rec->vcpus = (unsigned)vcpus;
	rec->memory_mib = (unsigned)memory;
	rec->timeout_s = (unsigned)timeout;
	rec->overlay_mib = (unsigned)overlay;
	rec->created_wall_ns = created;
	rec->expires_wall_ns = expires;
	rec->boot_ms = boot_ms;
	rec->pid = (pid_t)pid;
	rec->pid_start_ticks = ticks;
	return 0;
}

int sandbox_record_save(const char *dir, const struct sandbox_record *rec,
			struct ember_error **err)
{
	_cleanup_free_ char *text = NULL;
	char path[4200];
	size_t len;

	text = sandbox_record_encode(rec, &len, err);
	if (text == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", dir, SANDBOX_RECORD_FILE);
	/* Atomic (a crashed daemon leaves the old record or the new one, never half of one) but not
	 * durable: a record describes running processes, which a host crash ends anyway, and two
	 * fsyncs would cost a pooled create several milliseconds. */
	return file_write_atomic(path, text, len, 0600, false, err);
}

int sandbox_record_load(const char *dir, struct sandbox_record *rec, struct ember_error **err)
{
	_cleanup_free_ char *text = NULL;
	char path[4200];
	size_t len;

	snprintf(path, sizeof(path), "%s/%s", dir, SANDBOX_RECORD_FILE);
	if (file_read_all(path, SANDBOX_RECORD_MAX, &text, &len, err) < 0)
		return -1;
	return sandbox_record_parse(text, len, rec, err);
}
