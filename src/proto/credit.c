/* credit.c - CREDIT payloads and the receiver's window account. */
#include "proto/credit.h"

void proto_credit_encode(uint8_t out[PROTO_CREDIT_PAYLOAD], uint32_t bytes)
{
	out[0] = (uint8_t)(bytes >> 24);
	out[1] = (uint8_t)(bytes >> 16);
	out[2] = (uint8_t)(bytes >> 8);
	out[3] = (uint8_t)bytes;
}

int proto_credit_decode(const uint8_t *payload, size_t len, uint32_t *bytes,
			struct ember_error **err)
{
	uint32_t v;

	if (len != PROTO_CREDIT_PAYLOAD)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0,
				       "CREDIT payload of %zu bytes (must be %u)", len,
				       PROTO_CREDIT_PAYLOAD);
	v = (uint32_t)payload[0] << 24 | (uint32_t)payload[1] << 16 | (uint32_t)payload[2] << 8 |
	    (uint32_t)payload[3];
	if (v == 0)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0, "CREDIT of 0 bytes");
	*bytes = v;
	return 0;
}

void proto_credit_window_init(struct proto_credit_window *w, uint64_t window)
{
	w->window = window;
	w->granted = PROTO_CREDIT_WINDOW < window ? PROTO_CREDIT_WINDOW : window;
	w->received = 0;
	w->buffered = 0;
}

int proto_credit_window_received(struct proto_credit_window *w, size_t n,
				 struct ember_error **err)
{
	if ((uint64_t)n > w->granted - w->received)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0,
				       "peer sent %zu data bytes with %llu bytes of credit left", n,
				       (unsigned long long)(w->granted - w->received));
	w->received += n;
	w->buffered += n;
	return 0;
}

void proto_credit_window_consumed(struct proto_credit_window *w, size_t n)
{
	w->buffered -= (uint64_t)n < w->buffered ? (uint64_t)n : w->buffered;
}

uint32_t proto_credit_window_grant(struct proto_credit_window *w)
{
	uint64_t used = (w->granted - w->received) + w->buffered;
	uint64_t grant;

	if (used >= w->window || w->window - used < w->window / 2)
		return 0;
	grant = w->window - used;
	if (grant > UINT32_MAX)
		grant = UINT32_MAX;
	w->granted += grant;
	return (uint32_t)grant;
}
