/* dns.h - the DNS messages the daemon's per-sandbox resolver reads and writes (RFC 1035 over
 * UDP). Parsers of outside input: a query comes from guest code, an answer from the upstream
 * server; both are bounded and strict, and nothing here does I/O. Used by resolver.c only (and
 * its tests and fuzz targets). */
#ifndef EMBER_NET_DNS_H
#define EMBER_NET_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define DNS_MSG_MAX 4096         /* the largest message read or written */
#define DNS_NAME_MAX 253
#define DNS_ANSWERS_MAX 32       /* A records taken from one answer */

#define DNS_TYPE_A 1
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_AAAA 28
#define DNS_CLASS_IN 1

#define DNS_RCODE_NOERROR 0
#define DNS_RCODE_SERVFAIL 2
#define DNS_RCODE_NXDOMAIN 3
#define DNS_RCODE_REFUSED 5

/* A query: header, exactly one question (no compression in it), and at most an EDNS OPT record
 * in the additional section; anything else is refused. */
struct dns_query {
	uint16_t id;
	bool rd;                         /* recursion desired, echoed in replies */
	char name[DNS_NAME_MAX + 1];     /* lower case, no trailing dot; "" for the root */
	uint16_t qtype;
	uint16_t qclass;
	size_t question_end;             /* offset just past the question in the query */
};

int dns_parse_query(const uint8_t *msg, size_t len, struct dns_query *q,
		    struct ember_error **err);

/* Writes a reply with no records to q (header with QR, RD echoed, RA set, rcode; the question
 * copied from query[12..q->question_end)) into out. Returns its length, 0 when out is too small. */
size_t dns_build_reply(const uint8_t *query, const struct dns_query *q, uint8_t rcode,
		       uint8_t *out, size_t size);

struct dns_a_record {
	uint32_t addr;                   /* host byte order */
	uint32_t ttl;                    /* seconds, as the server gave it */
};

/* Checks an upstream answer to q (QR set, id == id, one question equal to q's name, type and
 * class; compression pointers followed only backwards, with a bounded number of hops) and
 * collects its class-IN A records of the answer section (at most DNS_ANSWERS_MAX; more are
 * ignored) into out[], *n set, and its rcode. Other records (CNAME, ...) are skipped. */
int dns_parse_answer(const uint8_t *msg, size_t len, uint16_t id, const struct dns_query *q,
		     struct dns_a_record *out, size_t *n, uint8_t *rcode,
		     struct ember_error **err);

/* Rewrites a message's 16-bit id in place (len >= 2). */
void dns_set_id(uint8_t *msg, uint16_t id);

#endif
