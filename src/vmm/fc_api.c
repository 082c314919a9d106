/* fc_api.c - PUT and PATCH requests to Firecracker's API socket over src/client/http.c. */
#include "vmm/fc_api.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/http.h"
#include "util/jsonutil.h"
#include "util/timeutil.h"

/* How early libcurl may end a request bounded by the deadline, in our clock's terms. */
#define FC_API_TIMER_SLACK_MS 5

struct fc_api {
	struct http_client *http;
};

int fc_api_open(const char *sock_path, struct fc_api **out, struct ember_error **err)
{
	struct fc_api *api = calloc(1, sizeof(*api));
	char base[128];

	if (api == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	if (snprintf(base, sizeof(base), "unix:%s", sock_path) >= (int)sizeof(base) ||
	    http_client_create(base, &api->http, err) < 0) {
		free(api);
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG,
				       "Firecracker API socket path `%s` is too long", sock_path);
	}
	*out = api;
	return 0;
}

void fc_api_close(struct fc_api *api)
{
	if (api == NULL)
		return;
	http_client_free(api->http);
	free(api);
}

/* Copies a VMM-supplied message into out, bounded, with control characters blanked (it ends up
 * in logs and API error bodies). */
static void sanitize(const char *in, char *out, size_t size)
{
	size_t i;

	for (i = 0; in[i] != '\0' && i + 1 < size; i++)
		out[i] = ((unsigned char)in[i] < 0x20 || in[i] == 0x7f) ? ' ' : in[i];
	out[i] = '\0';
	if (in[i] != '\0' && size > 4)
		memcpy(out + size - 4, "...", 4);
}

int fc_api_request(struct fc_api *api, const char *method, const char *path, json_t *body,
		   int64_t deadline_ms, struct ember_error **err)
{
	char fault[FC_API_FAULT_MAX + 1];
	_cleanup_json_ json_t *reply = NULL;
	json_t *message;
	int left = time_ms_until(deadline_ms);
	long status = 0;

	if (left == 0)
		return ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
				       "firecracker %s %s: the deadline passed", method, path);
	if (http_client_request(api->http, method, path, body, left < 0 ? 0 : left, &status,
				&reply, err) < 0) {
		/* The client reports transport failures as "unavailable" (503), which is about the
		 * daemon; here it is the VMM that failed, or was too slow. libcurl's timer may fire
		 * a millisecond before our clock reaches the deadline: that is still the timeout. */
		bool timed_out = deadline_ms >= 0 &&
				 time_ms_until(deadline_ms) <= FC_API_TIMER_SLACK_MS;

		if (err != NULL && *err != NULL)
			(*err)->kind = timed_out ? EMBER_E_GUEST_TIMEOUT : EMBER_E_GUEST;
		return ember_error_wrap(err, "firecracker %s %s", method, path);
	}
	if (status >= 200 && status < 300)
		return 0;
	message = json_object_get(reply, "fault_message");
	if (json_is_string(message))
		sanitize(json_string_value(message), fault, sizeof(fault));
	else
		snprintf(fault, sizeof(fault), "HTTP %ld without a fault_message", status);
	return ember_error_set(err, EMBER_E_GUEST, 0, "firecracker %s %s: %s", method, path, fault);
}

int fc_api_put(struct fc_api *api, const char *path, json_t *body, int64_t deadline_ms,
	       struct ember_error **err)
{
	return fc_api_request(api, "PUT", path, body, deadline_ms, err);
}
