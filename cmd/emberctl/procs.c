/* procs.c - the background process commands: run, logs, kill (docs/api.md "Background
 * processes"). */
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"
#include "stream.h"
#include "util/cleanup.h"
#include "util/jsonutil.h"

/* The {pid} operand: digits only (the daemon answers 404 for any pid it does not know). */
static int check_pid(const char *text)
{
	size_t n = strspn(text, "0123456789");

	if (n == 0 || n > 10 || text[n] != '\0')
		return ctl_fail("PID must be a number, got `%.100s`", text);
	return 0;
}

int cmd_run(struct ctl *c, int argc, char **argv)
{
	_cleanup_json_ json_t *reply = NULL;
	json_t *cmd = json_array();
	char path[128];
	int i;

	if (argc < 2) {
		json_decref(cmd);
		return ctl_fail("%s", "usage: emberctl run ID CMD [ARG]...");
	}
	for (i = 1; i < argc; i++)
		json_array_append_new(cmd, json_string(argv[i]));
	json_object_set_new(c->body, "cmd", cmd);
	snprintf(path, sizeof(path), "/sandboxes/%.64s/processes", argv[0]);
	if (ctl_call(c, "POST", path, c->body, 201, &reply) < 0)
		return 1;
	if (c->json)
		output_json(reply);
	else
		printf("%lld\n", (long long)json_integer_value(json_object_get(reply, "pid")));
	return 0;
}

int cmd_logs(struct ctl *c, int argc, char **argv)
{
	char path[160];

	if (argc != 2)
		return ctl_fail("%s", "usage: emberctl logs ID PID [-f]");
	if (check_pid(argv[1]) != 0)
		return 1;
	snprintf(path, sizeof(path), "/sandboxes/%.64s/processes/%s/output%s", argv[0], argv[1],
		 c->follow ? "?follow=1" : "");
	return stream_process_output(c, path);
}

int cmd_kill(struct ctl *c, int argc, char **argv)
{
	const char *sig = argc == 3 ? argv[2] : "TERM";
	char path[160];

	if (argc < 2 || argc > 3)
		return ctl_fail("%s", "usage: emberctl kill ID PID [SIGNAL]");
	if (check_pid(argv[1]) != 0)
		return 1;
	if (sig[0] != '\0' && strspn(sig, "0123456789") == strlen(sig))
		json_object_set_new(c->body, "signal", json_integer(atoi(sig)));
	else
		json_object_set_new(c->body, "signal", json_string(sig));
	snprintf(path, sizeof(path), "/sandboxes/%.64s/processes/%s/signal", argv[0], argv[1]);
	return ctl_call(c, "POST", path, c->body, 204, NULL) < 0 ? 1 : 0;
}
