/* snapshots.c - pause, resume, fork and snapshots of a sandbox (docs/api.md "Pause, fork and
 * snapshots"): one request each, the answer printed for a person or, with --json, as is. */
#include "commands.h"

#include <stdio.h>

#include "output.h"
#include "util/cleanup.h"
#include "util/jsonutil.h"

/* POST /sandboxes/{id}/<action> with body (NULL: none): *reply on `expect`. */
static int sandbox_post(struct ctl *c, const char *id, const char *action, json_t *body,
			long expect, json_t **reply)
{
	char path[128];

	snprintf(path, sizeof(path), "/sandboxes/%.64s/%s", id, action);
	return ctl_call(c, "POST", path, body, expect, reply);
}

static const char *member(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s != NULL ? s : "-";
}

/* pause and resume: `ID STATE expires_at WHEN` (a paused sandbox is deleted then). */
static int pause_or_resume(struct ctl *c, int argc, char **argv, const char *action)
{
	_cleanup_json_ json_t *reply = NULL;

	if (argc != 1) {
		fprintf(stderr, "usage: emberctl %s ID\n", action);
		return 1;
	}
	if (sandbox_post(c, argv[0], action, NULL, 200, &reply) < 0)
		return 1;
	if (c->json)
		output_json(reply);
	else
		printf("%s %s expires_at %s\n", argv[0], member(reply, "state"),
		       member(reply, "expires_at"));
	return 0;
}

int cmd_pause(struct ctl *c, int argc, char **argv)
{
	return pause_or_resume(c, argc, argv, "pause");
}

int cmd_resume(struct ctl *c, int argc, char **argv)
{
	return pause_or_resume(c, argc, argv, "resume");
}

int cmd_fork(struct ctl *c, int argc, char **argv)
{
	_cleanup_json_ json_t *reply = NULL;
	json_t *sandboxes, *sb;
	size_t i;

	if (argc != 1)
		return ctl_fail("%s", "usage: emberctl fork ID [--count N] [--timeout-s N] "
				      "[--label K=V]...");
	if (sandbox_post(c, argv[0], "fork", c->body, 201, &reply) < 0)
		return 1;
	if (c->json) {
		output_json(reply);
		return 0;
	}
	sandboxes = json_object_get(reply, "sandboxes");
	json_array_foreach(sandboxes, i, sb)
		printf("%s\n", member(sb, "id"));
	return 0;
}

int cmd_snapshot(struct ctl *c, int argc, char **argv)
{
	_cleanup_json_ json_t *reply = NULL;

	if (argc != 1)
		return ctl_fail("%s", "usage: emberctl snapshot ID [--label K=V]...");
	if (sandbox_post(c, argv[0], "snapshots",
			 json_object_size(c->body) > 0 ? c->body : NULL, 201, &reply) < 0)
		return 1;
	if (c->json)
		output_json(reply);
	else
		printf("%s\n", member(reply, "id"));
	return 0;
}

/* GET /snapshots as a table: id, pack, size, when, the sandbox it was taken of. */
int cmd_snapshots(struct ctl *c, int argc, char **argv)
{
	_cleanup_json_ json_t *reply = NULL;
	json_t *snap;
	size_t i;

	(void)argv;
	if (argc != 0)
		return ctl_fail("%s", "usage: emberctl snapshots");
	if (ctl_call(c, "GET", "/snapshots", NULL, 200, &reply) < 0)
		return 1;
	if (c->json) {
		output_json(reply);
		return 0;
	}
	printf("%-37s %-12s %12s %-24s %s\n", "ID", "PACK", "BYTES", "CREATED", "SANDBOX");
	json_array_foreach(json_object_get(reply, "snapshots"), i, snap)
		printf("%-37s %-12s %12lld %-24s %s\n", member(snap, "id"),
		       member(snap, "language_pack"),
		       (long long)json_integer_value(json_object_get(snap, "size_bytes")),
		       member(snap, "created_at"), member(snap, "sandbox_id"));
	return 0;
}

int cmd_rm_snapshot(struct ctl *c, int argc, char **argv)
{
	char path[128];
	int i, ret = 0;

	if (argc < 1)
		return ctl_fail("%s", "usage: emberctl rm-snapshot SNAP...");
	for (i = 0; i < argc; i++) {
		snprintf(path, sizeof(path), "/snapshots/%.64s", argv[i]);
		if (ctl_call(c, "DELETE", path, NULL, 204, NULL) < 0)
			ret = 1;
		else if (!c->json)
			printf("%s\n", argv[i]);
	}
	return ret;
}
