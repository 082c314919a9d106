/* libFuzzer target: the first byte picks the FS request or FS_REPLY decoder, the rest is JSON.
 * What a decoder accepts must re-encode and decode to the same. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/fsmsg.h"

static void request(const uint8_t *data, size_t size)
{
	static struct proto_fs_request m, again;
	size_t len;
	char *text;

	if (proto_fs_request_decode(data, size, &m, NULL) < 0)
		return;
	text = proto_fs_request_encode(&m, &len, NULL);
	if (text == NULL || proto_fs_request_decode((uint8_t *)text, len, &again, NULL) < 0 ||
	    memcmp(&m, &again, sizeof(m)) != 0)
		abort();
	free(text);
}

static void reply(const uint8_t *data, size_t size)
{
	static struct proto_fs_reply m, again;
	size_t len;
	char *text;

	if (proto_fs_reply_decode(data, size, &m, NULL) < 0)
		return;
	text = proto_fs_reply_encode(&m, &len, NULL);
	if (text == NULL || proto_fs_reply_decode((uint8_t *)text, len, &again, NULL) < 0 ||
	    again.kind != m.kind || again.count != m.count || again.size != m.size)
		abort();
	free(text);
	proto_fs_reply_release(&again);
	proto_fs_reply_release(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] % 2 == 0)
		request(data + 1, size - 1);
	else
		reply(data + 1, size - 1);
	return 0;
}
