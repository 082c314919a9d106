/* stub_manager.c - the manager functions the MCP tools call, for fuzz_api_mcp: no VMs, no
 * state. Every call fails as for an unknown sandbox (a create: as at capacity), except on
 * STUB_SANDBOX_ID, where exec, files, listing, process start and delete answer with results
 * made from the request's own bytes, so the tools' result encoders see fuzzed text, and whose
 * process table is a real, empty one.
 * Linked instead of src/sandbox/manager.c; never boots, waits or keeps anything. */
#include "stub_manager.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct manager_transfer {
	const char *path;  /* a download's content: the path asked for */
	size_t len;
	size_t sent;
	uint64_t written;  /* an upload's byte count */
	char upload_path[PROTO_PATH_MAX + 1];
};

static int no_sandbox(const char *id, struct ember_error **err)
{
	return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no sandbox `%.40s`", id);
}

static bool known(const char *id)
{
	return strcmp(id, STUB_SANDBOX_ID) == 0;
}

static uint8_t *copy_bytes(const void *data, size_t len)
{
	uint8_t *p = malloc(len + 1);

	if (p != NULL) {
		if (len > 0)
			memcpy(p, data, len);
		p[len] = '\0';
	}
	return p;
}

int manager_create_sandbox(struct manager *m, const struct sandbox_create_request *req,
			   struct sandbox_info *info, struct ember_error **err)
{
	(void)m;
	(void)req;
	memset(info, 0, sizeof(*info));
	return ember_error_set(err, EMBER_E_CAPACITY, 0, "no room for a sandbox (fuzzing stub)");
}

int manager_context_create(struct manager *m, const char *id,
			   const struct sandbox_context_request *req, struct sandbox_context *out,
			   struct ember_error **err)
{
	(void)m;
	(void)req;
	memset(out, 0, sizeof(*out));
	return no_sandbox(id, err);
}

int manager_destroy(struct manager *m, const char *id, struct ember_error **err)
{
	(void)m;
	return known(id) ? 0 : no_sandbox(id, err);
}

int manager_list(struct manager *m, struct sandbox_info **infos, size_t *count,
		 struct ember_error **err)
{
	struct sandbox_info *list = calloc(2, sizeof(*list));

	(void)m;
	if (list == NULL)
		return ember_error_oom(err);
	strcpy(list[0].id, STUB_SANDBOX_ID);
	strcpy(list[0].language_pack, "python");
	list[0].state = SANDBOX_READY;
	strcpy(list[1].id, "sb_ffffffffffffffffffffffffffffffff");
	strcpy(list[1].language_pack, "shell");
	list[1].state = SANDBOX_BOOTING;
	*infos = list;
	*count = 2;
	return 0;
}

/* Past the MCP tools' cut (MCP_OUTPUT_MAX, 64 KiB), so that cut runs. */
#define STUB_LONG_OUTPUT (70u * 1024u)

/* The code repeated to STUB_LONG_OUTPUT bytes: a cut at 64 KiB may fall inside a character. */
static uint8_t *repeat_bytes(const char *data, size_t len)
{
	uint8_t *p = malloc(STUB_LONG_OUTPUT + 1);
	size_t i;

	if (p != NULL) {
		for (i = 0; i < STUB_LONG_OUTPUT; i++)
			p[i] = (uint8_t)data[i % len];
		p[STUB_LONG_OUTPUT] = '\0';
	}
	return p;
}

/* stdout: the code (with timeout_s 2: repeated past 64 KiB); stderr: the stdin (else bytes
 * that are not UTF-8); with stdin, a context outcome whose result is the code and whose
 * exception is the stdin. */
int manager_exec(struct manager *m, const char *id, const struct sandbox_exec_request *req,
		 struct channel_exec_result *res, struct ember_error **err)
{
	static const char not_utf8[] = "\xff\xfe ok \xe2\x82 \xc3";
	struct proto_outcome *o = &res->exit.context;

	(void)m;
	memset(res, 0, sizeof(*res));
	if (!known(id))
		return no_sandbox(id, err);
	if (req->timeout_ms == 2000 && req->code_len > 0) {
		res->stdout_data = repeat_bytes(req->code, req->code_len);
		res->stdout_len = STUB_LONG_OUTPUT;
	} else {
		res->stdout_data = copy_bytes(req->code, req->code_len);
		res->stdout_len = req->code_len;
	}
	if (req->has_stdin) {
		res->stderr_data = copy_bytes(req->stdin_data, req->stdin_len);
		res->stderr_len = req->stdin_len;
		o->present = true;
		o->result = (char *)copy_bytes(req->code, req->code_len);
		o->has_error = true;
		o->error_name = (char *)copy_bytes("ValueError", strlen("ValueError"));
		o->error_value = (char *)copy_bytes(req->stdin_data, req->stdin_len);
		o->error_traceback = (char *)copy_bytes(req->stdin_data, req->stdin_len);
	} else {
		res->stderr_data = copy_bytes(not_utf8, sizeof(not_utf8) - 1);
		res->stderr_len = sizeof(not_utf8) - 1;
	}
	res->exit.exit_code = (int32_t)(req->code_len % 3);
	res->exit.timed_out = req->timeout_ms == 1000;
	res->exit.stdout_truncated = req->code_len % 2 == 1;
	if (res->stdout_data == NULL || res->stderr_data == NULL ||
	    (req->has_stdin && (o->result == NULL || o->error_name == NULL ||
				o->error_value == NULL || o->error_traceback == NULL))) {
		channel_exec_result_release(res);
		return ember_error_oom(err);
	}
	return 0;
}

int manager_process_start(struct manager *m, const char *id,
			  const struct sandbox_process_request *req, struct procs_info *info,
			  struct ember_error **err)
{
	(void)m;
	memset(info, 0, sizeof(*info));
	if (!known(id))
		return no_sandbox(id, err);
	info->pid = (int32_t)(req->argc + req->code_len + 1);
	info->state = PROCS_RUNNING;
	return 0;
}

int manager_procs(struct manager *m, const char *id, struct procs **out,
		  struct ember_error **err)
{
	(void)m;
	*out = NULL;
	return known(id) ? procs_new(out, err) : no_sandbox(id, err);
}

/* A listing of two entries (and truncated when the path's length is odd). */
int manager_fs(struct manager *m, const char *id, const struct proto_fs_request *req,
	       struct proto_fs_reply *reply, struct ember_error **err)
{
	size_t len = strlen(req->path);

	(void)m;
	memset(reply, 0, sizeof(*reply));
	if (!known(id))
		return no_sandbox(id, err);
	if (req->op != PROTO_FS_LIST)
		return ember_error_set(err, EMBER_E_INVALID, 0, "the stub only lists");
	reply->entries = calloc(2, sizeof(*reply->entries));
	if (reply->entries == NULL)
		return ember_error_oom(err);
	reply->kind = PROTO_FS_REPLY_LIST;
	strcpy(reply->entries[0].name, "notes.txt");
	reply->entries[0].type = PROTO_FS_TYPE_FILE;
	reply->entries[0].size = len;
	strcpy(reply->entries[1].name, "src");
	reply->entries[1].type = PROTO_FS_TYPE_DIR;
	reply->count = 2;
	reply->truncated = len % 2 == 1;
	return 0;
}

/* The file's content is its path (its size claims more when the path's length is odd). */
int manager_download_open(struct manager *m, const char *id, const char *path,
			  struct manager_transfer **out, struct proto_fs_entry *entry,
			  struct ember_error **err)
{
	struct manager_transfer *t;

	(void)m;
	*out = NULL;
	memset(entry, 0, sizeof(*entry));
	if (!known(id))
		return no_sandbox(id, err);
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return ember_error_oom(err);
	t->path = path;
	t->len = strlen(path);
	entry->type = PROTO_FS_TYPE_FILE;
	entry->size = t->len % 2 == 1 ? t->len * 2 : t->len;
	*out = t;
	return 0;
}

ssize_t manager_download_read(struct manager_transfer *t, void *buf, size_t max,
			      struct ember_error **err)
{
	size_t n = t->len - t->sent;

	(void)err;
	if (n > max)
		n = max;
	memcpy(buf, t->path + t->sent, n);
	t->sent += n;
	return (ssize_t)n;
}

int manager_upload_open(struct manager *m, const char *id, const struct proto_fs_request *req,
			struct manager_transfer **out, struct ember_error **err)
{
	struct manager_transfer *t;

	(void)m;
	*out = NULL;
	if (!known(id))
		return no_sandbox(id, err);
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return ember_error_oom(err);
	memcpy(t->upload_path, req->path, sizeof(t->upload_path));
	*out = t;
	return 0;
}

int manager_upload_write(struct manager_transfer *t, const void *data, size_t len,
			 struct ember_error **err)
{
	(void)data;
	(void)err;
	t->written += len;
	return 0;
}

int manager_upload_finish(struct manager_transfer *t, struct proto_fs_reply *reply,
			  struct ember_error **err)
{
	(void)err;
	memset(reply, 0, sizeof(*reply));
	reply->kind = PROTO_FS_REPLY_WRITTEN;
	snprintf(reply->path, sizeof(reply->path), "%s", t->upload_path);
	reply->size = t->written;
	memset(reply->sha256, '0', 64);
	return 0;
}

void manager_transfer_close(struct manager_transfer *t)
{
	free(t);
}

/* The E2B control plane maps templates to packs (src/e2b/control.c): two, by name only. */
static struct pack stub_packs[] = { { .name = "python" }, { .name = "shell" } };
static const struct catalog stub_catalog = { .packs = stub_packs, .count = 2 };

const struct catalog *manager_catalog(struct manager *m)
{
	(void)m;
	return &stub_catalog;
}

/* --- what only the REST routes call (routes.c comes with api_status_for): never reached --- */

void manager_stats(struct manager *m, struct manager_stats *stats)
{
	(void)m;
	memset(stats, 0, sizeof(*stats));
}

int manager_vmms(struct manager *m, struct manager_vmm **out, size_t *count,
		 struct ember_error **err)
{
	(void)m;
	(void)err;
	*out = NULL;
	*count = 0;
	return 0;
}

/* GET /metrics is a REST route: the MCP server never scrapes. */
struct metrics *manager_metrics(struct manager *m)
{
	(void)m;
	return NULL;
}

int manager_reload(struct manager *m, struct catalog_diff *diff, struct ember_error **err)
{
	(void)m;
	(void)diff;
	return ember_error_set(err, EMBER_E_UNAVAILABLE, 0, "no catalog (fuzzing stub)");
}

int manager_get(struct manager *m, const char *id, struct sandbox_info *info,
		struct ember_error **err)
{
	(void)m;
	(void)info;
	return no_sandbox(id, err);
}

json_t *manager_network_json(struct manager *m, const char *id, struct ember_error **err)
{
	(void)m;
	no_sandbox(id, err);
	return NULL;
}

int manager_network_update(struct manager *m, const char *id, const struct net_policy *patch,
			   bool has_deny, struct ember_error **err)
{
	(void)m;
	(void)patch;
	(void)has_deny;
	return no_sandbox(id, err);
}

int manager_set_timeout(struct manager *m, const char *id, unsigned timeout_s,
			struct sandbox_info *info, struct ember_error **err)
{
	(void)m;
	(void)timeout_s;
	(void)info;
	return no_sandbox(id, err);
}

int manager_pause(struct manager *m, const char *id, struct sandbox_info *info,
		  struct ember_error **err)
{
	(void)m;
	(void)info;
	return no_sandbox(id, err);
}

int manager_resume(struct manager *m, const char *id, struct sandbox_info *info,
		   struct ember_error **err)
{
	(void)m;
	(void)info;
	return no_sandbox(id, err);
}

int manager_fork(struct manager *m, const char *id, unsigned count,
		 const struct sandbox_labels *labels, unsigned timeout_s,
		 struct sandbox_info **infos, struct ember_error **err)
{
	(void)m;
	(void)count;
	(void)labels;
	(void)timeout_s;
	*infos = NULL;
	return no_sandbox(id, err);
}

int manager_snapshot_create(struct manager *m, const char *id,
			    const struct sandbox_labels *labels, struct snapshot_info *info,
			    struct ember_error **err)
{
	(void)m;
	(void)labels;
	(void)info;
	return no_sandbox(id, err);
}

int manager_snapshot_list(struct manager *m, struct snapshot_info **infos, size_t *count,
			  struct ember_error **err)
{
	(void)m;
	(void)err;
	*infos = NULL;
	*count = 0;
	return 0;
}

static int no_snapshot(const char *id, struct ember_error **err)
{
	return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no snapshot `%.40s`", id);
}

int manager_snapshot_get(struct manager *m, const char *snap_id, struct snapshot_info *info,
			 struct ember_error **err)
{
	(void)m;
	(void)info;
	return no_snapshot(snap_id, err);
}

int manager_snapshot_delete(struct manager *m, const char *snap_id, struct ember_error **err)
{
	(void)m;
	return no_snapshot(snap_id, err);
}

int manager_console(struct manager *m, const char *id, void *out, size_t size, size_t *len,
		    uint64_t *total, struct ember_error **err)
{
	(void)m;
	(void)out;
	(void)size;
	(void)len;
	(void)total;
	return no_sandbox(id, err);
}

int manager_ps(struct manager *m, const char *id, struct proto_process **procs, size_t *count,
	       struct ember_error **err)
{
	(void)m;
	(void)procs;
	(void)count;
	return no_sandbox(id, err);
}

int manager_process_stdin(struct manager *m, const char *id, int32_t pid, const uint8_t *data,
			  size_t len, bool fin, struct ember_error **err)
{
	(void)m;
	(void)pid;
	(void)data;
	(void)len;
	(void)fin;
	return no_sandbox(id, err);
}

int manager_process_signal(struct manager *m, const char *id, int32_t pid, int sig,
			   struct ember_error **err)
{
	(void)m;
	(void)pid;
	(void)sig;
	return no_sandbox(id, err);
}

int manager_context_get(struct manager *m, const char *id, const char *cid,
			struct sandbox_context *out, struct ember_error **err)
{
	(void)m;
	(void)cid;
	(void)out;
	return no_sandbox(id, err);
}

unsigned manager_max_exec_timeout_ms(const struct manager *m)
{
	(void)m;
	return 600000;
}

int manager_context_list(struct manager *m, const char *id, struct sandbox_context *out,
			 size_t *count, struct ember_error **err)
{
	(void)m;
	(void)out;
	(void)count;
	return no_sandbox(id, err);
}

int manager_context_delete(struct manager *m, const char *id, const char *cid,
			   struct ember_error **err)
{
	(void)m;
	(void)cid;
	return no_sandbox(id, err);
}

int manager_context_restart(struct manager *m, const char *id, const char *cid,
			    struct sandbox_context *out, struct ember_error **err)
{
	(void)m;
	(void)cid;
	(void)out;
	return no_sandbox(id, err);
}
