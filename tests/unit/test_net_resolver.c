/* Unit tests for the sandboxes' DNS responder (src/net/resolver.c), on loopback: a fake upstream
 * server, a policy, and a guest socket. Checks what reaches upstream, what the guest gets, and
 * what the allow callback is told. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/resolver.h"

#define LOOPBACK 0x7f000001u

struct upstream {
	int fd;
	uint16_t port;
	pthread_t thread;
	pthread_mutex_t lock;
	char seen[16][64];   /* names asked, in order */
	unsigned nseen;
};

struct allowed {
	pthread_mutex_t lock;
	unsigned calls;
	uint32_t addr;
	uint32_t ttl;
	bool any_port;
	uint16_t port;
};

static struct allowed allowed = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int record_allow(void *ctx, const char *sandbox_id, const struct dns_a_record *recs,
			size_t n, bool any_port, const uint16_t *ports, size_t nports)
{
	(void)ctx;
	assert_string_equal(sandbox_id, "sb_test");
	assert_true(n >= 1);
	pthread_mutex_lock(&allowed.lock);
	allowed.calls++;
	allowed.addr = recs[0].addr;
	allowed.ttl = recs[0].ttl;
	allowed.any_port = any_port;
	allowed.port = nports > 0 ? ports[0] : 0;
	pthread_mutex_unlock(&allowed.lock);
	return 0;
}

/* The question's name of a query, as dotted text. */
static void qname(const uint8_t *q, size_t len, char *out, size_t size)
{
	size_t i = 12, o = 0;

	while (i < len && q[i] != 0 && o + q[i] + 2 < size) {
		if (o > 0)
			out[o++] = '.';
		memcpy(out + o, q + i + 1, q[i]);
		o += q[i];
		i += 1 + (size_t)q[i];
	}
	out[o] = '\0';
}

/* Answers every query with one A record 192.0.2.<len of name> (TTL 5) and remembers the name. */
static void *upstream_main(void *arg)
{
	struct upstream *u = arg;
	uint8_t buf[512];

	for (;;) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(u->fd, buf, sizeof(buf) - 16, 0, (struct sockaddr *)&from, &fl);
		char name[64];
		size_t len;

		if (n <= 12)
			return NULL;
		len = (size_t)n;
		qname(buf, len, name, sizeof(name));
		pthread_mutex_lock(&u->lock);
		if (u->nseen < 16)
			snprintf(u->seen[u->nseen++], sizeof(u->seen[0]), "%s", name);
		pthread_mutex_unlock(&u->lock);
		buf[2] |= 0x80; /* QR */
		buf[7] = 1;     /* ANCOUNT */
		buf[11] = 0;    /* ARCOUNT: the OPT record, if any, is dropped below */
		len = 12;
		while (buf[len] != 0)
			len += 1 + buf[len];
		len += 5;
		memcpy(buf + len, "\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04\xc0\x00\x02", 15);
		buf[len + 15] = (uint8_t)strlen(name);
		len += 16;
		sendto(u->fd, buf, len, 0, (struct sockaddr *)&from, fl);
	}
}

static int bind_loopback(uint16_t *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* A query for name with type qtype and id. */
static size_t build_query(uint8_t *out, uint16_t id, const char *name, uint16_t qtype)
{
	size_t n = 12;
	const char *p = name;

	memset(out, 0, 12);
	out[0] = (uint8_t)(id >> 8);
	out[1] = (uint8_t)id;
	out[2] = 0x01; /* RD */
	out[5] = 1;    /* QDCOUNT */
	while (*p != '\0') {
		const char *dot = strchr(p, '.');
		size_t l = dot != NULL ? (size_t)(dot - p) : strlen(p);

		out[n++] = (uint8_t)l;
		memcpy(out + n, p, l);
		n += l;
		p += l + (dot != NULL);
	}
	out[n++] = 0;
	out[n++] = (uint8_t)(qtype >> 8);
	out[n++] = (uint8_t)qtype;
	out[n++] = 0;
	out[n++] = 1;
	return n;
}

/* Sends a query to the resolver's port and waits up to 3 s for the answer: its length, or 0. */
static size_t ask(int fd, uint16_t port, const uint8_t *q, size_t qlen, uint8_t *ans,
		  size_t size)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(LOOPBACK) };
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ssize_t n;

	assert_int_equal(sendto(fd, q, qlen, 0, (struct sockaddr *)&to, sizeof(to)), (ssize_t)qlen);
	if (poll(&pfd, 1, 3000) != 1)
		return 0;
	n = recv(fd, ans, size, 0);
	return n > 0 ? (size_t)n : 0;
}

static unsigned upstream_seen(struct upstream *u, const char *name)
{
	unsigned i, count = 0;

	pthread_mutex_lock(&u->lock);
	for (i = 0; i < u->nseen; i++)
		count += strcmp(u->seen[i], name) == 0;
	pthread_mutex_unlock(&u->lock);
	return count;
}

static void answers_only_what_the_policy_allows(void **state)
{
	struct upstream u = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct resolver_config cfg = { .allow = record_allow };
	struct net_policy policy = { 0 }, patch = { 0 };
	struct ember_error *err = NULL;
	struct resolver *r = NULL;
	struct resolver_stats stats;
	uint8_t q[512], a[512];
	json_t *obj;
	uint16_t port, client_port;
	int client;
	size_t n;
	bool has_deny;

	(void)state;
	u.fd = bind_loopback(&u.port);
	assert_int_equal(pthread_create(&u.thread, NULL, upstream_main, &u), 0);
	cfg.upstream = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(u.port),
					     .sin_addr.s_addr = htonl(LOOPBACK) };
	assert_int_equal(resolver_start(&cfg, &r, &err), 0);
	obj = json_loads("{\"mode\":\"allowlist\",\"allow\":[\"allowed.test\",\"api.test:443\"]}",
			 0, NULL);
	assert_int_equal(net_policy_parse(obj, ~0u, &policy, &err), 0);
	json_decref(obj);
	assert_int_equal(resolver_add(r, "sb_test", NULL, LOOPBACK, LOOPBACK, &policy, &port, &err), 0);
	client = bind_loopback(&client_port);

	/* An allowed name: forwarded, answered under the guest's id, its address allowed first. */
	n = ask(client, port, q, build_query(q, 0x4242, "allowed.test", 1), a, sizeof(a));
	assert_true(n > 12);
	assert_int_equal(a[0], 0x42);
	assert_int_equal(a[1], 0x42);
	assert_int_equal(a[3] & 0x0f, 0);
	assert_int_equal(upstream_seen(&u, "allowed.test"), 1);
	pthread_mutex_lock(&allowed.lock);
	assert_int_equal(allowed.calls, 1);
	assert_int_equal(allowed.addr, 0xc000020c); /* 192.0.2.12: "allowed.test" */
	assert_int_equal(allowed.ttl, 5);
	assert_true(allowed.any_port);
	pthread_mutex_unlock(&allowed.lock);

	/* A port rule: the callback gets the port. Names are case-insensitive. */
	n = ask(client, port, q, build_query(q, 7, "API.test", 1), a, sizeof(a));
	assert_true(n > 12);
	pthread_mutex_lock(&allowed.lock);
	assert_false(allowed.any_port);
	assert_int_equal(allowed.port, 443);
	pthread_mutex_unlock(&allowed.lock);

	/* Not allowed: NXDOMAIN from the resolver itself, nothing upstream. */
	n = ask(client, port, q, build_query(q, 9, "blocked.test", 1), a, sizeof(a));
	assert_true(n >= 12);
	assert_int_equal(a[3] & 0x0f, 3);
	assert_int_equal(upstream_seen(&u, "blocked.test"), 0);

	/* AAAA of an allowed name: an empty answer, nothing upstream. */
	n = ask(client, port, q, build_query(q, 10, "allowed.test", 28), a, sizeof(a));
	assert_true(n >= 12);
	assert_int_equal(a[3] & 0x0f, 0);
	assert_int_equal(a[7], 0);
	assert_int_equal(upstream_seen(&u, "allowed.test"), 1);

	/* Garbage gets no answer, and the resolver still serves afterwards. */
	assert_int_equal(ask(client, port, (const uint8_t *)"\x01\x02\x03", 3, a, sizeof(a)), 0);

	/* A new policy takes effect for the next query. */
	obj = json_loads("{\"allow\":[\"blocked.test\"]}", 0, NULL);
	assert_int_equal(net_policy_parse_patch(obj, &patch, &has_deny, &err), 0);
	json_decref(obj);
	patch.mode = NET_MODE_ALLOWLIST;
	assert_int_equal(resolver_set_policy(r, "sb_test", &patch, &err), 0);
	n = ask(client, port, q, build_query(q, 11, "blocked.test", 1), a, sizeof(a));
	assert_true(n > 12);
	assert_int_equal(a[3] & 0x0f, 0);
	assert_int_equal(upstream_seen(&u, "blocked.test"), 1);
	n = ask(client, port, q, build_query(q, 12, "allowed.test", 1), a, sizeof(a));
	assert_int_equal(a[3] & 0x0f, 3);

	resolver_stats(r, &stats);
	assert_true(stats.answered >= 4);
	assert_true(stats.refused >= 3);

	/* Removed: its socket is closed, nothing answers. */
	resolver_remove(r, "sb_test");
	assert_int_equal(ask(client, port, q, build_query(q, 13, "blocked.test", 1), a, sizeof(a)),
			 0);
	resolver_stop(r);
	shutdown(u.fd, SHUT_RDWR);
	pthread_join(u.thread, NULL);
	close(u.fd);
	close(client);
	net_policy_release(&policy);
	net_policy_release(&patch);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(answers_only_what_the_policy_allows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
