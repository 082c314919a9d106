/* libFuzzer target: the DNS parsers (src/net/dns.c). The first byte picks a guest's query
 * (even: parsed, and when accepted a reply built from it) or an upstream answer (odd: parsed
 * against a fixed query for www.example.com, type A, id 0x4242). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/dns.h"

static void check_name(const char *name)
{
	size_t i, len = strlen(name);

	if (len > DNS_NAME_MAX)
		abort();
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.'))
			abort();
	}
}

static void fuzz_query(const uint8_t *data, size_t size)
{
	uint8_t out[DNS_MSG_MAX];
	struct dns_query q;
	size_t n;

	if (dns_parse_query(data, size, &q, NULL) < 0)
		return;
	check_name(q.name);
	if (q.question_end < 12 + 5 || q.question_end > size)
		abort();
	n = dns_build_reply(data, &q, DNS_RCODE_NXDOMAIN, out, sizeof(out));
	if (n != q.question_end || memcmp(out + 12, data + 12, n - 12) != 0 ||
	    (out[2] & 0x80) == 0 || (out[3] & 0x0f) != DNS_RCODE_NXDOMAIN)
		abort();
	if (dns_build_reply(data, &q, 0, out, n - 1) != 0)
		abort();
}

static void fuzz_answer(const uint8_t *data, size_t size)
{
	static const uint8_t query[] = { 0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
					 3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e',
					 3, 'c', 'o', 'm', 0, 0, 1, 0, 1 };
	struct dns_a_record out[DNS_ANSWERS_MAX];
	struct dns_query q;
	uint8_t rcode;
	size_t n;

	if (dns_parse_query(query, sizeof(query), &q, NULL) < 0)
		abort();
	if (dns_parse_answer(data, size, 0x4242, &q, out, &n, &rcode, NULL) < 0)
		return;
	if (n > DNS_ANSWERS_MAX || rcode > 15)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] % 2 == 0)
		fuzz_query(data + 1, size - 1);
	else
		fuzz_answer(data + 1, size - 1);
	return 0;
}
