/* dns.c - reads a guest's DNS query and an upstream server's answer, and writes the empty
 * replies the resolver gives itself (RFC 1035). Called by resolver.c, its tests and fuzz targets.
 * Never does I/O; never reads a byte outside [msg, msg + len) nor follows a compression pointer
 * forwards, and bounds every loop by the message size.
 *
 * An answer is read only as far as its answer section: authority and additional records are
 * never looked at. A truncated (TC) answer is read like any other: its records are whole or the
 * parse fails. An A record counts only when its owner is the question's name or a name a CNAME
 * chain from it leads to (at most CHAIN_MAX names, records in any order). */
#include "net/dns.h"

#include <string.h>

#define HEADER_LEN 12
#define POINTER_HOPS_MAX 16      /* real answers need 1-3; a loop is refused long before */
#define CHAIN_MAX 16             /* names in a CNAME chain (the question's name included) */
#define RECORDS_MAX (DNS_MSG_MAX / 11) /* a record is at least 11 bytes (root name, 10 fixed) */
#define DNS_TYPE_OPT 41

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static bool name_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

struct name_reader {
	bool strict;             /* a query: no pointers, bad label bytes refused */
	size_t next;             /* offset just past the name where it was found */
};

/* Appends one label (lower case) to out at *n; a non-strict reader writes bytes outside the
 * name alphabet as '?', which no query name holds, so such a name never matches one. */
static int append_label(const uint8_t *label, size_t len, bool strict, char *out, size_t *n)
{
	size_t i;

	if (*n + (*n > 0) + len > DNS_NAME_MAX)
		return -1;
	if (*n > 0)
		out[(*n)++] = '.';
	for (i = 0; i < len; i++) {
		uint8_t c = label[i];

		if (!name_char(c)) {
			if (strict)
				return -1;
			c = '?';
		}
		out[(*n)++] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
	}
	return 0;
}

/* Reads the name at off into out (lower case, no trailing dot, "" for the root). Pointers
 * (non-strict only) must point before themselves, at most POINTER_HOPS_MAX of them. */
static int read_name(const uint8_t *msg, size_t len, size_t off, struct name_reader *r,
		     char out[DNS_NAME_MAX + 1])
{
	size_t pos = off, n = 0;
	unsigned hops = 0;
	bool jumped = false;

	for (;;) {
		uint8_t b;

		if (pos >= len)
			return -1;
		b = msg[pos];
		if ((b & 0xc0) == 0xc0) {
			size_t target;

			if (r->strict || pos + 1 >= len || ++hops > POINTER_HOPS_MAX)
				return -1;
			target = (size_t)(b & 0x3f) << 8 | msg[pos + 1];
			if (target >= pos)
				return -1;
			if (!jumped)
				r->next = pos + 2;
			jumped = true;
			pos = target;
		} else if (b & 0xc0) {
			return -1; /* the obsolete extended label types */
		} else if (b == 0) {
			if (!jumped)
				r->next = pos + 1;
			out[n] = '\0';
			return 0;
		} else {
			if (pos + 1 + b > len || append_label(msg + pos + 1, b, r->strict, out, &n) < 0)
				return -1;
			pos += 1 + (size_t)b;
		}
	}
}

/* The EDNS OPT pseudo-record a query may carry: root name, type OPT, rdata inside the message,
 * and nothing after it. */
static int check_opt(const uint8_t *msg, size_t len, size_t off)
{
	if (off + 11 > len || msg[off] != 0 || get16(msg + off + 1) != DNS_TYPE_OPT)
		return -1;
	return off + 11 + get16(msg + off + 9) == len ? 0 : -1;
}

int dns_parse_query(const uint8_t *msg, size_t len, struct dns_query *q,
		    struct ember_error **err)
{
	struct name_reader r = { .strict = true };

	memset(q, 0, sizeof(*q));
	if (len < HEADER_LEN || len > DNS_MSG_MAX)
		return ember_error_set(err, EMBER_E_INVALID, 0, "DNS query of %zu bytes (12 to %d)",
				       len, DNS_MSG_MAX);
	/* id and RD first: a caller may answer FORMERR/REFUSED to a query refused below. */
	q->id = get16(msg);
	q->rd = msg[2] & 0x01;
	if ((msg[2] & 0x80) || ((msg[2] >> 3) & 0x0f) != 0)
		return ember_error_set(err, EMBER_E_INVALID, 0, "DNS query: not a standard query");
	if (get16(msg + 4) != 1 || get16(msg + 6) != 0 || get16(msg + 8) != 0 ||
	    get16(msg + 10) > 1)
		return ember_error_set(err, EMBER_E_INVALID, 0, "DNS query: not exactly one "
				       "question (and at most an OPT record)");
	if (read_name(msg, len, HEADER_LEN, &r, q->name) < 0)
		return ember_error_set(err, EMBER_E_INVALID, 0, "DNS query: bad question name "
				       "(truncated, compressed, too long or a byte outside "
				       "A-Z a-z 0-9 - _)");
	if (r.next + 4 > len)
		return ember_error_set(err, EMBER_E_INVALID, 0, "DNS query: truncated question");
	q->qtype = get16(msg + r.next);
	q->qclass = get16(msg + r.next + 2);
	q->question_end = r.next + 4;
	if (get16(msg + 10) == 1 ? check_opt(msg, len, q->question_end) < 0
				 : q->question_end != len)
		return ember_error_set(err, EMBER_E_INVALID, 0, "DNS query: bad or trailing bytes "
				       "after the question");
	return 0;
}

size_t dns_build_reply(const uint8_t *query, const struct dns_query *q, uint8_t rcode,
		       uint8_t *out, size_t size)
{
	size_t qlen;

	if (q->question_end < HEADER_LEN || q->question_end > DNS_MSG_MAX || size < q->question_end)
		return 0;
	qlen = q->question_end - HEADER_LEN;
	put16(out, q->id);
	out[2] = (uint8_t)(0x80 | (q->rd ? 0x01 : 0x00)); /* QR, opcode 0, RD echoed */
	out[3] = (uint8_t)(0x80 | (rcode & 0x0f));         /* RA, rcode */
	put16(out + 4, 1);
	put16(out + 6, 0);
	put16(out + 8, 0);
	put16(out + 10, 0);
	memmove(out + HEADER_LEN, query + HEADER_LEN, qlen);
	return q->question_end;
}

void dns_set_id(uint8_t *msg, uint16_t id)
{
	put16(msg, id);
}

struct record {
	size_t name_off;         /* owner name */
	uint16_t type;
	uint16_t rclass;
	uint32_t ttl;
	size_t rdata_off;
	uint16_t rdlength;
};

/* Walks the answer section from off, checking every name and rdlength against the message;
 * an A record of class IN must have 4 bytes of rdata, a CNAME's rdata must be exactly a name. */
static int read_records(const uint8_t *msg, size_t len, size_t off, unsigned count,
			struct record *recs)
{
	unsigned i;

	for (i = 0; i < count; i++) {
		struct name_reader r = { .strict = false };
		char name[DNS_NAME_MAX + 1];
		struct record *rec = &recs[i];

		if (read_name(msg, len, off, &r, name) < 0 || r.next + 10 > len)
			return -1;
		rec->name_off = off;
		rec->type = get16(msg + r.next);
		rec->rclass = get16(msg + r.next + 2);
		rec->ttl = get32(msg + r.next + 4);
		rec->rdlength = get16(msg + r.next + 8);
		rec->rdata_off = r.next + 10;
		if (rec->rdata_off + rec->rdlength > len)
			return -1;
		if (rec->type == DNS_TYPE_A && rec->rclass == DNS_CLASS_IN && rec->rdlength != 4)
			return -1;
		if (rec->type == DNS_TYPE_CNAME) {
			struct name_reader t = { .strict = false };

			if (read_name(msg, len, rec->rdata_off, &t, name) < 0 ||
			    t.next != rec->rdata_off + rec->rdlength)
				return -1;
		}
		off = rec->rdata_off + rec->rdlength;
	}
	return 0;
}

struct chain {
	char names[CHAIN_MAX][DNS_NAME_MAX + 1];
	size_t n;
};

static bool chain_has(const struct chain *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->names[i], name) == 0)
			return true;
	return false;
}

/* The question's name and every name a CNAME of the chain leads to, in any record order. */
static void follow_cnames(const uint8_t *msg, size_t len, const struct record *recs,
			  unsigned count, struct chain *c)
{
	bool grew = true;

	while (grew && c->n < CHAIN_MAX) {
		unsigned i;

		grew = false;
		for (i = 0; i < count && c->n < CHAIN_MAX; i++) {
			struct name_reader r = { .strict = false };
			char owner[DNS_NAME_MAX + 1];

			if (recs[i].type != DNS_TYPE_CNAME || recs[i].rclass != DNS_CLASS_IN ||
			    read_name(msg, len, recs[i].name_off, &r, owner) < 0 ||
			    !chain_has(c, owner) ||
			    read_name(msg, len, recs[i].rdata_off, &r, c->names[c->n]) < 0 ||
			    chain_has(c, c->names[c->n]))
				continue;
			c->n++;
			grew = true;
		}
	}
}

static void collect_a(const uint8_t *msg, size_t len, const struct record *recs, unsigned count,
		      const struct chain *c, struct dns_a_record *out, size_t *n)
{
	unsigned i;

	for (i = 0; i < count && *n < DNS_ANSWERS_MAX; i++) {
		struct name_reader r = { .strict = false };
		char owner[DNS_NAME_MAX + 1];

		if (recs[i].type != DNS_TYPE_A || recs[i].rclass != DNS_CLASS_IN ||
		    read_name(msg, len, recs[i].name_off, &r, owner) < 0 || !chain_has(c, owner))
			continue;
		out[*n].addr = get32(msg + recs[i].rdata_off);
		out[*n].ttl = recs[i].ttl;
		(*n)++;
	}
}

/* Header and question of an answer: ours (id, QR, opcode 0), one question equal to q's. */
static int check_answer_head(const uint8_t *msg, size_t len, uint16_t id,
			     const struct dns_query *q, size_t *off, struct ember_error **err)
{
	struct name_reader r = { .strict = false };
	char name[DNS_NAME_MAX + 1];

	if (len < HEADER_LEN || len > DNS_MSG_MAX)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0, "DNS answer of %zu bytes (12 to "
				       "%d)", len, DNS_MSG_MAX);
	if (get16(msg) != id || !(msg[2] & 0x80) || ((msg[2] >> 3) & 0x0f) != 0)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0, "DNS answer: not an answer to our "
				       "query (id, QR or opcode)");
	if (get16(msg + 4) != 1 || read_name(msg, len, HEADER_LEN, &r, name) < 0 ||
	    r.next + 4 > len)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0, "DNS answer: not exactly one "
				       "readable question");
	if (strcmp(name, q->name) != 0 || get16(msg + r.next) != q->qtype ||
	    get16(msg + r.next + 2) != q->qclass)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0, "DNS answer: the question is not "
				       "ours");
	*off = r.next + 4;
	return 0;
}

int dns_parse_answer(const uint8_t *msg, size_t len, uint16_t id, const struct dns_query *q,
		     struct dns_a_record *out, size_t *n, uint8_t *rcode,
		     struct ember_error **err)
{
	struct record recs[RECORDS_MAX]; /* about 15 KiB: on the stack, no shared state */
	struct chain chain = { .n = 1 };
	size_t off = 0;
	unsigned count;

	*n = 0;
	*rcode = 0;
	if (check_answer_head(msg, len, id, q, &off, err) < 0)
		return -1;
	*rcode = msg[3] & 0x0f;
	count = get16(msg + 6);
	/* Each record needs 11 bytes: more than fit is a lie, refused before reading any. */
	if (count > (len - off) / 11)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0, "DNS answer: %u answers cannot fit "
				       "in %zu bytes", count, len - off);
	if (read_records(msg, len, off, count, recs) < 0)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0, "DNS answer: a malformed record "
				       "(truncated, a bad name or pointer, or a bad rdlength)");
	memcpy(chain.names[0], q->name, sizeof(chain.names[0]));
	follow_cnames(msg, len, recs, count, &chain);
	collect_a(msg, len, recs, count, &chain, out, n);
	return 0;
}
