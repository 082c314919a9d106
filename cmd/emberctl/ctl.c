/* ctl.c - emberctl's requests to the daemon, with its errors made readable. */
#include "ctl.h"

#include <stdio.h>

#include "util/cleanup.h"
#include "util/jsonutil.h"

int ctl_fail(const char *fmt, const char *arg)
{
	fprintf(stderr, "emberctl: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	return 1;
}

int ctl_call(struct ctl *c, const char *method, const char *path, json_t *body, long expect,
	     json_t **reply)
{
	struct ember_error *err = NULL;
	_cleanup_json_ json_t *r = NULL;
	json_t *e;
	long status = 0;

	if (http_client_request(c->http, method, path, body, 0, &status, &r, &err) < 0) {
		fprintf(stderr, "emberctl: %s (is emberd running on %s?)\n", err->message, c->addr);
		ember_error_free(&err);
		return -1;
	}
	if (status != expect) {
		e = json_object_get(r, "error");
		if (c->json && r != NULL) {
			_cleanup_free_ char *text = json_dumps(r, JSON_COMPACT);

			printf("%s\n", text != NULL ? text : "{}");
		}
		fprintf(stderr, "emberctl: %s %s: HTTP %ld %s: %s\n", method, path, status,
			json_string_value(json_object_get(e, "code")) ?: "",
			json_string_value(json_object_get(e, "message")) ?: "(no error body)");
		return -1;
	}
	if (reply != NULL)
		*reply = steal_pointer(&r);
	return 0;
}
