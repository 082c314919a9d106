/* selftest.c - `emberctl test`: create -> inspect -> exec -> delete against a running daemon,
 * with an assertion on each answer; the sandbox it made is deleted whatever fails. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "util/jsonutil.h"
#include "util/timeutil.h"

/* One assertion: says ok (unless --json) or FAILED; returns cond. */
static bool check(const struct ctl *c, bool cond, const char *what)
{
	if (!cond)
		fprintf(stderr, "emberctl test: FAILED: %s\n", what);
	else if (!c->json)
		printf("ok   %s\n", what);
	return cond;
}

static const char *string_field(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key)) ?: "";
}

/* On success id holds the new sandbox's id (also when a later check fails: it is deleted). */
static bool test_create(struct ctl *c, char *id, size_t id_size)
{
	_cleanup_json_ json_t *body = json_pack("{s:s}", "language_pack", c->pack);
	_cleanup_json_ json_t *reply = NULL;

	if (!check(c, ctl_call(c, "POST", "/sandboxes", body, 201, &reply) == 0,
		   "create returns 201"))
		return false;
	snprintf(id, id_size, "%s", string_field(reply, "id"));
	return check(c, strncmp(id, "sb_", 3) == 0, "create returns an sb_ id") &&
	       check(c, strcmp(string_field(reply, "state"), "ready") == 0,
		     "created sandbox is ready");
}

static bool test_inspect(struct ctl *c, const char *id)
{
	_cleanup_json_ json_t *info = NULL;
	char path[128];

	snprintf(path, sizeof(path), "/sandboxes/%s", id);
	return check(c, ctl_call(c, "GET", path, NULL, 200, &info) == 0, "inspect returns 200") &&
	       check(c, json_integer_value(json_object_get(info, "vmm_pid")) > 0,
		     "inspect shows a VMM pid") &&
	       check(c, strcmp(string_field(info, "language_pack"), c->pack) == 0,
		     "inspect shows the pack");
}

static bool test_exec(struct ctl *c, const char *id)
{
	const char *code = strcmp(c->pack, "python") == 0
				   ? "import sys; print(6*7); print('e', file=sys.stderr); "
				     "sys.exit(3)"
			   : strcmp(c->pack, "node") == 0
				   ? "console.log(6*7); console.error('e'); process.exitCode = 3"
				   : "echo 42; echo e >&2; exit 3";
	_cleanup_json_ json_t *body = json_pack("{s:s}", "code", code);
	_cleanup_json_ json_t *reply = NULL;
	char path[128];

	snprintf(path, sizeof(path), "/sandboxes/%s/exec", id);
	return check(c, ctl_call(c, "POST", path, body, 200, &reply) == 0, "exec returns 200") &&
	       check(c, strcmp(string_field(reply, "stdout"), "42\n") == 0,
		     "exec stdout is 42") &&
	       check(c, strcmp(string_field(reply, "stderr"), "e\n") == 0,
		     "exec stderr is separate") &&
	       check(c, json_integer_value(json_object_get(reply, "exit_code")) == 3,
		     "exec exit code is propagated");
}

/* Clears id once the sandbox is gone. */
static bool test_delete(struct ctl *c, char *id)
{
	struct ember_error *err = NULL;
	char path[128];
	long status = 0;
	bool gone;

	snprintf(path, sizeof(path), "/sandboxes/%s", id);
	if (!check(c, ctl_call(c, "DELETE", path, NULL, 204, NULL) == 0, "delete returns 204"))
		return false;
	gone = http_client_request(c->http, "GET", path, NULL, 0, &status, NULL, &err) == 0 &&
	       status == 404;
	ember_error_free(&err);
	if (!check(c, gone, "deleted sandbox is gone (404)"))
		return false;
	id[0] = '\0';
	return true;
}

int cmd_test(struct ctl *c, int argc, char **argv)
{
	int64_t t0 = time_mono_ms();
	char id[64] = "", path[128];
	bool pass;

	(void)argv;
	if (argc != 0)
		return ctl_fail("%s", "usage: emberctl test [--pack python|node|shell]");
	pass = test_create(c, id, sizeof(id)) && test_inspect(c, id) && test_exec(c, id) &&
	       test_delete(c, id);
	if (id[0] != '\0') {
		snprintf(path, sizeof(path), "/sandboxes/%s", id);
		ctl_call(c, "DELETE", path, NULL, 204, NULL);
	}
	if (!pass)
		return 1;
	if (!c->json)
		printf("PASS (%lld ms)\n", (long long)(time_mono_ms() - t0));
	else
		printf("{\"result\":\"pass\",\"duration_ms\":%lld}\n",
		       (long long)(time_mono_ms() - t0));
	return 0;
}
