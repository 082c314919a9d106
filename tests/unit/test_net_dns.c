/* Unit tests for the DNS query/answer parsers and the reply builder (src/net/dns.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/dns.h"

/* A message under construction. */
struct msg {
	uint8_t b[DNS_MSG_MAX + 64];
	size_t n;
};

static void put8(struct msg *m, uint8_t v)
{
	assert_true(m->n < sizeof(m->b));
	m->b[m->n++] = v;
}

static void put16(struct msg *m, uint16_t v)
{
	put8(m, (uint8_t)(v >> 8));
	put8(m, (uint8_t)v);
}

static void put32(struct msg *m, uint32_t v)
{
	put16(m, (uint16_t)(v >> 16));
	put16(m, (uint16_t)v);
}

static void header(struct msg *m, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an,
		   uint16_t ns, uint16_t ar)
{
	m->n = 0;
	put16(m, id);
	put16(m, flags);
	put16(m, qd);
	put16(m, an);
	put16(m, ns);
	put16(m, ar);
}

/* "a.b.c" as labels, ending with the root (end_with_root) or not. */
static void labels(struct msg *m, const char *name, bool end_with_root)
{
	while (*name != '\0') {
		const char *dot = strchr(name, '.');
		size_t len = dot != NULL ? (size_t)(dot - name) : strlen(name);

		put8(m, (uint8_t)len);
		memcpy(m->b + m->n, name, len);
		m->n += len;
		name += len + (dot != NULL);
	}
	if (end_with_root)
		put8(m, 0);
}

static void pointer(struct msg *m, uint16_t off)
{
	put16(m, (uint16_t)(0xc000 | off));
}

static void query(struct msg *m, uint16_t id, const char *name, uint16_t type)
{
	header(m, id, 0x0100, 1, 0, 0, 0);
	labels(m, name, true);
	put16(m, type);
	put16(m, DNS_CLASS_IN);
}

static int parse_query(const struct msg *m, struct dns_query *q)
{
	struct ember_error *err = NULL;
	int rc = dns_parse_query(m->b, m->n, q, &err);

	if (rc < 0) {
		assert_non_null(err);
		assert_int_equal(err->kind, EMBER_E_INVALID);
		ember_error_free(&err);
	}
	return rc;
}

static void a_plain_query_is_parsed_and_lowered(void **state)
{
	struct dns_query q;
	struct msg m;

	(void)state;
	query(&m, 0x1234, "Files.PythonHosted.org", DNS_TYPE_A);
	assert_int_equal(parse_query(&m, &q), 0);
	assert_int_equal(q.id, 0x1234);
	assert_true(q.rd);
	assert_string_equal(q.name, "files.pythonhosted.org");
	assert_int_equal(q.qtype, DNS_TYPE_A);
	assert_int_equal(q.qclass, DNS_CLASS_IN);
	assert_int_equal(q.question_end, m.n);
	query(&m, 7, "", DNS_TYPE_AAAA);
	assert_int_equal(parse_query(&m, &q), 0);
	assert_string_equal(q.name, "");
	assert_int_equal(q.question_end, 17);
	query(&m, 7, "_sip._udp.x-y.com", 33);
	assert_int_equal(parse_query(&m, &q), 0);
	assert_string_equal(q.name, "_sip._udp.x-y.com");
}

static void a_query_with_an_opt_record_is_accepted(void **state)
{
	struct dns_query q;
	struct msg m;

	(void)state;
	header(&m, 1, 0x0120, 1, 0, 0, 1);
	labels(&m, "example.com", true);
	put16(&m, DNS_TYPE_A);
	put16(&m, DNS_CLASS_IN);
	put8(&m, 0);
	put16(&m, 41);
	put16(&m, 1232);
	put32(&m, 0);
	put16(&m, 4);
	put32(&m, 0x000a0000);
	assert_int_equal(parse_query(&m, &q), 0);
	assert_int_equal(q.question_end, 12 + 13 + 4);
	m.n--; /* rdata cut short */
	assert_int_equal(parse_query(&m, &q), -1);
	m.n++;
	put8(&m, 0); /* a trailing byte */
	assert_int_equal(parse_query(&m, &q), -1);
	m.n -= 11 + 4 + 1; /* the record type must be OPT */
	put8(&m, 0);
	put16(&m, DNS_TYPE_A);
	put16(&m, 1);
	put32(&m, 0);
	put16(&m, 4);
	put32(&m, 0);
	assert_int_equal(parse_query(&m, &q), -1);
}

static void compressed_questions_are_refused(void **state)
{
	struct dns_query q;
	struct msg m;

	(void)state;
	header(&m, 1, 0x0100, 1, 0, 0, 0);
	labels(&m, "www", false);
	pointer(&m, 12);
	put16(&m, DNS_TYPE_A);
	put16(&m, DNS_CLASS_IN);
	assert_int_equal(parse_query(&m, &q), -1);
	header(&m, 1, 0x0100, 1, 0, 0, 0);
	put8(&m, 0x40); /* an extended label type */
	put16(&m, DNS_TYPE_A);
	put16(&m, DNS_CLASS_IN);
	assert_int_equal(parse_query(&m, &q), -1);
}

static void truncated_queries_are_refused(void **state)
{
	struct dns_query q;
	struct msg m;
	size_t full, cut;

	(void)state;
	query(&m, 1, "example.com", DNS_TYPE_A);
	full = m.n;
	for (cut = 0; cut < full; cut++) {
		m.n = cut;
		assert_int_equal(parse_query(&m, &q), -1);
	}
	m.n = full;
	put8(&m, 0);
	assert_int_equal(parse_query(&m, &q), -1);
}

static void bad_label_bytes_are_refused(void **state)
{
	static const char *const bad[] = { "a b.com", "a*.com", "a\x01.com", "caf\xc3\xa9.fr",
					   "a/b.com", "a\\.com" };
	struct dns_query q;
	struct msg m;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		query(&m, 1, bad[i], DNS_TYPE_A);
		assert_int_equal(parse_query(&m, &q), -1);
	}
	/* A label holding a dot cannot pass for two labels. */
	header(&m, 1, 0x0100, 1, 0, 0, 0);
	put8(&m, 5);
	memcpy(m.b + m.n, "a.com", 5);
	m.n += 5;
	put8(&m, 0);
	put16(&m, DNS_TYPE_A);
	put16(&m, DNS_CLASS_IN);
	assert_int_equal(parse_query(&m, &q), -1);
}

static void names_over_253_bytes_are_refused(void **state)
{
	char name[300], label[64];
	struct dns_query q;
	struct msg m;

	(void)state;
	memset(label, 'a', 63);
	label[63] = '\0';
	snprintf(name, sizeof(name), "%s.%s.%s.%.61s", label, label, label, label);
	query(&m, 1, name, DNS_TYPE_A);
	assert_int_equal(parse_query(&m, &q), 0);
	assert_int_equal(strlen(q.name), 253);
	snprintf(name, sizeof(name), "%s.%s.%s.%.62s", label, label, label, label);
	query(&m, 1, name, DNS_TYPE_A);
	assert_int_equal(parse_query(&m, &q), -1);
	header(&m, 1, 0x0100, 1, 0, 0, 0);
	put8(&m, 64); /* a label longer than 63 is an extended type byte: refused */
	memset(m.b + m.n, 'a', 64);
	m.n += 64;
	put8(&m, 0);
	put16(&m, DNS_TYPE_A);
	put16(&m, DNS_CLASS_IN);
	assert_int_equal(parse_query(&m, &q), -1);
}

static void header_counts_and_flags_are_checked(void **state)
{
	static const uint16_t counts[][4] = { { 2, 0, 0, 0 }, { 0, 0, 0, 0 }, { 1, 1, 0, 0 },
					      { 1, 0, 1, 0 }, { 1, 0, 0, 2 } };
	struct dns_query q;
	struct msg m;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		header(&m, 9, 0x0100, counts[i][0], counts[i][1], counts[i][2], counts[i][3]);
		labels(&m, "example.com", true);
		put16(&m, DNS_TYPE_A);
		put16(&m, DNS_CLASS_IN);
		assert_int_equal(parse_query(&m, &q), -1);
		assert_int_equal(q.id, 9); /* for a FORMERR reply */
	}
	/* Two questions, counted and present. */
	header(&m, 1, 0x0100, 2, 0, 0, 0);
	labels(&m, "a.com", true);
	put32(&m, 0x00010001);
	labels(&m, "b.com", true);
	put32(&m, 0x00010001);
	assert_int_equal(parse_query(&m, &q), -1);
	query(&m, 1, "a.com", DNS_TYPE_A);
	m.b[2] |= 0x80; /* QR: an answer, not a query */
	assert_int_equal(parse_query(&m, &q), -1);
	query(&m, 1, "a.com", DNS_TYPE_A);
	m.b[2] |= 0x10; /* opcode 2 (status) */
	assert_int_equal(parse_query(&m, &q), -1);
	query(&m, 1, "a.com", DNS_TYPE_A);
	m.b[2] &= (uint8_t)~0x01;
	assert_int_equal(parse_query(&m, &q), 0);
	assert_false(q.rd);
}

static void reply_copies_the_question_and_sets_the_flags(void **state)
{
	uint8_t out[DNS_MSG_MAX];
	struct dns_query q;
	struct msg m;
	size_t n;

	(void)state;
	query(&m, 0xbeef, "Blocked.Example", DNS_TYPE_A);
	assert_int_equal(parse_query(&m, &q), 0);
	n = dns_build_reply(m.b, &q, DNS_RCODE_NXDOMAIN, out, sizeof(out));
	assert_int_equal(n, m.n);
	assert_int_equal(out[0], 0xbe);
	assert_int_equal(out[1], 0xef);
	assert_int_equal(out[2], 0x81); /* QR, RD */
	assert_int_equal(out[3], 0x83); /* RA, NXDOMAIN */
	assert_int_equal(out[5], 1);
	assert_int_equal(out[7] | out[9] | out[11], 0);
	assert_memory_equal(out + 12, m.b + 12, m.n - 12);
	assert_int_equal(dns_build_reply(m.b, &q, 0, out, m.n - 1), 0);
	/* The OPT record of a query is not echoed. */
	header(&m, 2, 0x0000, 1, 0, 0, 1);
	labels(&m, "a.com", true);
	put32(&m, 0x001c0001);
	put8(&m, 0);
	put16(&m, 41);
	put16(&m, 512);
	put32(&m, 0);
	put16(&m, 0);
	assert_int_equal(parse_query(&m, &q), 0);
	n = dns_build_reply(m.b, &q, DNS_RCODE_NOERROR, out, sizeof(out));
	assert_int_equal(n, q.question_end);
	assert_int_equal(out[2], 0x80);
	assert_int_equal(out[3], 0x80);
	assert_int_equal(out[11], 0);
	/* In place, over the query itself. */
	n = dns_build_reply(m.b, &q, DNS_RCODE_REFUSED, m.b, sizeof(m.b));
	assert_int_equal(n, q.question_end);
	assert_int_equal(m.b[3], 0x85);
	dns_set_id(m.b, 0x0102);
	assert_int_equal(m.b[0], 1);
	assert_int_equal(m.b[1], 2);
}

/* An answer's header and question for q (id 0x4242, QR RD RA, rcode). */
static void answer_head(struct msg *m, uint16_t an, uint8_t rcode, const char *qname)
{
	header(m, 0x4242, (uint16_t)(0x8180 | rcode), 1, an, 0, 0);
	labels(m, qname, true);
	put16(m, DNS_TYPE_A);
	put16(m, DNS_CLASS_IN);
}

static void a_record(struct msg *m, uint16_t name_ptr, uint32_t ttl, uint32_t addr)
{
	pointer(m, name_ptr);
	put16(m, DNS_TYPE_A);
	put16(m, DNS_CLASS_IN);
	put32(m, ttl);
	put16(m, 4);
	put32(m, addr);
}

static struct dns_query query_for(const char *name)
{
	struct dns_query q;
	struct msg m;

	query(&m, 0x4242, name, DNS_TYPE_A);
	assert_int_equal(parse_query(&m, &q), 0);
	return q;
}

static int parse_answer(const struct msg *m, const struct dns_query *q, struct dns_a_record *out,
			size_t *n, uint8_t *rcode)
{
	struct ember_error *err = NULL;
	int rc = dns_parse_answer(m->b, m->n, 0x4242, q, out, n, rcode, &err);

	if (rc < 0) {
		assert_non_null(err);
		assert_int_equal(err->kind, EMBER_E_PROTOCOL);
		ember_error_free(&err);
	}
	return rc;
}

static void a_cname_chain_and_its_a_records_are_collected(void **state)
{
	struct dns_query q = query_for("www.example.com");
	struct dns_a_record out[DNS_ANSWERS_MAX];
	size_t n, cname_target;
	uint8_t rcode;
	struct msg m;

	(void)state;
	answer_head(&m, 4, 0, "WWW.example.com");
	/* www.example.com CNAME edge.cdn.net */
	pointer(&m, 12);
	put16(&m, DNS_TYPE_CNAME);
	put16(&m, DNS_CLASS_IN);
	put32(&m, 300);
	put16(&m, 14);
	cname_target = m.n;
	labels(&m, "edge.cdn.net", true);
	/* edge.cdn.net A 198.51.100.1 and .2; an unrelated name's A is ignored */
	a_record(&m, (uint16_t)cname_target, 60, 0xc6336401);
	a_record(&m, (uint16_t)cname_target, 20, 0xc6336402);
	pointer(&m, 16); /* "example.com": not in the chain */
	put16(&m, DNS_TYPE_A);
	put16(&m, DNS_CLASS_IN);
	put32(&m, 5);
	put16(&m, 4);
	put32(&m, 0x01020304);
	assert_int_equal(parse_answer(&m, &q, out, &n, &rcode), 0);
	assert_int_equal(rcode, 0);
	assert_int_equal(n, 2);
	assert_int_equal(out[0].addr, 0xc6336401);
	assert_int_equal(out[0].ttl, 60);
	assert_int_equal(out[1].addr, 0xc6336402);
	assert_int_equal(out[1].ttl, 20);
}

static void a_records_before_their_cname_still_count(void **state)
{
	struct dns_query q = query_for("a.example.com");
	struct dns_a_record out[DNS_ANSWERS_MAX];
	uint8_t rcode;
	struct msg m;
	size_t n, b_name;

	(void)state;
	answer_head(&m, 2, 0, "a.example.com");
	b_name = m.n;
	labels(&m, "b.example.com", true);
	put16(&m, DNS_TYPE_A);
	put16(&m, DNS_CLASS_IN);
	put32(&m, 1);
	put16(&m, 4);
	put32(&m, 0x0a0b0c0d);
	pointer(&m, 12);
	put16(&m, DNS_TYPE_CNAME);
	put16(&m, DNS_CLASS_IN);
	put32(&m, 1);
	put16(&m, 2);
	pointer(&m, (uint16_t)b_name);
	assert_int_equal(parse_answer(&m, &q, out, &n, &rcode), 0);
	assert_int_equal(n, 1);
	assert_int_equal(out[0].addr, 0x0a0b0c0d);
}

static void at_most_the_maximum_of_a_records_is_taken(void **state)
{
	struct dns_query q = query_for("many.example");
	struct dns_a_record out[DNS_ANSWERS_MAX];
	uint8_t rcode;
	struct msg m;
	size_t n;
	uint32_t i;

	(void)state;
	answer_head(&m, DNS_ANSWERS_MAX + 8, 0, "many.example");
	for (i = 0; i < DNS_ANSWERS_MAX + 8; i++)
		a_record(&m, 12, 30, 0x0a000000 + i);
	assert_int_equal(parse_answer(&m, &q, out, &n, &rcode), 0);
	assert_int_equal(n, DNS_ANSWERS_MAX);
	assert_int_equal(out[DNS_ANSWERS_MAX - 1].addr, 0x0a000000 + DNS_ANSWERS_MAX - 1);
}

static void compression_loops_and_forward_pointers_are_refused(void **state)
{
	struct dns_query q = query_for("x.example");
	struct dns_a_record out[DNS_ANSWERS_MAX];
	uint8_t rcode;
	struct msg m;
	size_t n, here;

	(void)state;
	/* A record whose name points at itself. */
	answer_head(&m, 1, 0, "x.example");
	here = m.n;
	pointer(&m, (uint16_t)here);
	put16(&m, DNS_TYPE_A);
	put16(&m, DNS_CLASS_IN);
	put32(&m, 1);
	put16(&m, 4);
	put32(&m, 1);
	assert_int_equal(parse_answer(&m, &q, out, &n, &rcode), -1);
	/* A pointer forwards (to a good name after the record). */
	answer_head(&m, 1, 0, "x.example");
	pointer(&m, (uint16_t)(m.n + 16));
	put16(&m, DNS_TYPE_A);
	put16(&m, DNS_CLASS_IN);
	put32(&m, 1);
	put16(&m, 4);
	put32(&m, 1);
	labels(&m, "x.example", true);
	assert_int_equal(parse_answer(&m, &q, out, &n, &rcode), -1);
	/* A loop through backward pointers: a label, then a pointer back to it. */
	answer_head(&m, 1, 0, "x.example");
	here = m.n;
	labels(&m, "x", false);
	pointer(&m, (uint16_t)here);
	put16(&m, DNS_TYPE_A);
	put16(&m, DNS_CLASS_IN);
	put32(&m, 1);
	put16(&m, 4);
	put32(&m, 1);
	assert_int_equal(parse_answer(&m, &q, out, &n, &rcode), -1);
	/* A pointer cut in half at the end of the message. */
	answer_head(&m, 1, 0, "x.example");
	put8(&m, 0xc0);
	assert_int_equal(parse_answer(&m, &q, out, &n, &rcode), -1);
}

static void truncated_rdata_and_bad_rdlength_are_refused(void **state)
{
	struct dns_query q = query_for("t.example");
	struct dns_a_record out[DNS_ANSWERS_MAX];
	uint8_t rcode;
	struct msg m;
	size_t n, full, cut;

	(void)state;
	answer_head(&m, 1, 0, "t.example");
	a_record(&m, 12, 1, 0x01020304);
	full = m.n;
	assert_int_equal(parse_answer(&m, &q, out, &n, &rcode), 0);
	for (cut = 12; cut < full; cut++) {
		m.n = cut;
		assert_int_equal(parse_answer(&m, &q, out, &n, &rcode), -1);
	}
	/* An A record of class IN with 5 bytes of rdata. */
	answer_head(&m, 1, 0, "t.example");
	pointer(&m, 12);
	put16(&m, DNS_TYPE_A);
	put16(&m, DNS_CLASS_IN);
	put32(&m, 1);
	put16(&m, 5);
	put32(&m, 1);
	put8(&m, 1);
	assert_int_equal(parse_answer(&m, &q, out, &n, &rcode), -1);
	/* A CNAME whose name runs past its rdlength. */
	answer_head(&m, 1, 0, "t.example");
	pointer(&m, 12);
	put16(&m, DNS_TYPE_CNAME);
	put16(&m, DNS_CLASS_IN);
	put32(&m, 1);
	put16(&m, 3);
	labels(&m, "abc.example", true);
	assert_int_equal(parse_answer(&m, &q, out, &n, &rcode), -1);
	/* An answer count that cannot fit. */
	answer_head(&m, 400, 0, "t.example");
	a_record(&m, 12, 1, 1);
	assert_int_equal(parse_answer(&m, &q, out, &n, &rcode), -1);
}

static void answers_to_another_query_are_refused(void **state)
{
	struct dns_query q = query_for("mine.example");
	struct dns_a_record out[DNS_ANSWERS_MAX];
	struct ember_error *err = NULL;
	uint8_t rcode;
	struct msg m;
	size_t n;

	(void)state;
	answer_head(&m, 1, 0, "mine.example");
	a_record(&m, 12, 1, 1);
	assert_int_equal(dns_parse_answer(m.b, m.n, 0x4243, &q, out, &n, &rcode, &err), -1);
	assert_non_null(strstr(err->message, "not an answer to our query"));
	ember_error_free(&err);
	answer_head(&m, 1, 0, "other.example");
	a_record(&m, 12, 1, 1);
	assert_int_equal(parse_answer(&m, &q, out, &n, &rcode), -1);
	answer_head(&m, 0, 0, "mine.example");
	m.b[m.n - 3] = DNS_TYPE_AAAA; /* the question's type differs */
	assert_int_equal(parse_answer(&m, &q, out, &n, &rcode), -1);
	answer_head(&m, 0, 0, "mine.example");
	m.b[2] &= 0x7f; /* not QR */
	assert_int_equal(parse_answer(&m, &q, out, &n, &rcode), -1);
	header(&m, 0x4242, 0x8180, 0, 0, 0, 0); /* no question */
	assert_int_equal(parse_answer(&m, &q, out, &n, &rcode), -1);
}

static void nxdomain_returns_its_rcode_and_no_records(void **state)
{
	struct dns_query q = query_for("gone.example");
	struct dns_a_record out[DNS_ANSWERS_MAX];
	uint8_t rcode;
	struct msg m;
	size_t n = 5;

	(void)state;
	answer_head(&m, 0, DNS_RCODE_NXDOMAIN, "gone.example");
	/* an SOA in the authority section is not read */
	m.b[9] = 1;
	pointer(&m, 12);
	put16(&m, 6);
	put16(&m, DNS_CLASS_IN);
	put32(&m, 60);
	put16(&m, 0);
	assert_int_equal(parse_answer(&m, &q, out, &n, &rcode), 0);
	assert_int_equal(rcode, DNS_RCODE_NXDOMAIN);
	assert_int_equal(n, 0);
	answer_head(&m, 0, DNS_RCODE_SERVFAIL, "gone.example");
	assert_int_equal(parse_answer(&m, &q, out, &n, &rcode), 0);
	assert_int_equal(rcode, DNS_RCODE_SERVFAIL);
}

static void other_record_types_and_classes_are_skipped(void **state)
{
	struct dns_query q = query_for("s.example");
	struct dns_a_record out[DNS_ANSWERS_MAX];
	uint8_t rcode;
	struct msg m;
	size_t n;

	(void)state;
	answer_head(&m, 3, 0, "s.example");
	pointer(&m, 12); /* TXT with 7 bytes */
	put16(&m, 16);
	put16(&m, DNS_CLASS_IN);
	put32(&m, 1);
	put16(&m, 7);
	put8(&m, 6);
	memcpy(m.b + m.n, "hello!", 6);
	m.n += 6;
	pointer(&m, 12); /* A of class CH with odd rdata */
	put16(&m, DNS_TYPE_A);
	put16(&m, 3);
	put32(&m, 1);
	put16(&m, 2);
	put16(&m, 0);
	a_record(&m, 12, 9, 0x08080808);
	assert_int_equal(parse_answer(&m, &q, out, &n, &rcode), 0);
	assert_int_equal(n, 1);
	assert_int_equal(out[0].addr, 0x08080808);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_plain_query_is_parsed_and_lowered),
		cmocka_unit_test(a_query_with_an_opt_record_is_accepted),
		cmocka_unit_test(compressed_questions_are_refused),
		cmocka_unit_test(truncated_queries_are_refused),
		cmocka_unit_test(bad_label_bytes_are_refused),
		cmocka_unit_test(names_over_253_bytes_are_refused),
		cmocka_unit_test(header_counts_and_flags_are_checked),
		cmocka_unit_test(reply_copies_the_question_and_sets_the_flags),
		cmocka_unit_test(a_cname_chain_and_its_a_records_are_collected),
		cmocka_unit_test(a_records_before_their_cname_still_count),
		cmocka_unit_test(at_most_the_maximum_of_a_records_is_taken),
		cmocka_unit_test(compression_loops_and_forward_pointers_are_refused),
		cmocka_unit_test(truncated_rdata_and_bad_rdlength_are_refused),
		cmocka_unit_test(answers_to_another_query_are_refused),
		cmocka_unit_test(nxdomain_returns_its_rcode_and_no_records),
		cmocka_unit_test(other_record_types_and_classes_are_skipped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
