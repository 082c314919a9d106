/* resolver.c - the sandboxes' DNS responder (see resolver.h). One thread, one epoll set: each
 * sandbox's socket, the upstream socket, and an eventfd that stops the thread. The lock guards
 * the sandbox list and the pending table; the thread holds it while it handles one datagram
 * (the allow callback included), so a removed sandbox is never answered after resolver_remove()
 * returns. */
#include "net/resolver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/log.h"
#include "util/timeutil.h"

#define PORTS_MAX 16
/* Header (12) + the longest question (a 253-character name is 255 bytes on the wire) + type and
 * class. */
#define QUESTION_KEEP (12 + 255 + 4)
#define TAG_STOP 0
#define TAG_UPSTREAM 1
#define TAG_FIRST_SANDBOX 2

struct pending {
	bool used;
	uint16_t upstream_id;
	uint16_t guest_id;
	struct sockaddr_in guest;
	struct dns_query q;
	uint8_t query[QUESTION_KEEP];    /* the guest's header and question (for replies) */
	size_t query_len;
	bool record;                     /* allowlist mode: A answers go to the allow callback */
	bool any_port;
	uint16_t ports[PORTS_MAX];
	size_t nports;
	int64_t deadline_ms;
};

/* A sandbox: its socket, policy and its own share of pending queries (one sandbox flooding
 * the upstream cannot take another's). */
struct rsb {
	char id[72];
	int fd;
	uint64_t tag;                    /* epoll data: never reused */
	uint32_t guest_ip;               /* the only source answered */
	struct net_policy policy;
	struct pending pending[RESOLVER_PENDING_PER_SANDBOX];
	struct rsb *next;
};

struct resolver {
	struct resolver_config cfg;
	int epfd;
	int stop_fd;
	int up_fd;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	struct rsb *sandboxes;           /* [lock] */
	uint64_t next_tag;               /* [lock] */
	struct resolver_stats stats;     /* [lock] */
};

static struct rsb *find_tag_locked(struct resolver *r, uint64_t tag)
{
	struct rsb *s;

	for (s = r->sandboxes; s != NULL; s = s->next)
		if (s->tag == tag)
			return s;
	return NULL;
}

static struct rsb *find_id_locked(struct resolver *r, const char *id)
{
	struct rsb *s;

	for (s = r->sandboxes; s != NULL; s = s->next)
		if (strcmp(s->id, id) == 0)
			return s;
	return NULL;
}

static void reply_empty(int fd, const uint8_t *query, const struct dns_query *q, uint8_t rcode,
			const struct sockaddr_in *to)
{
	uint8_t out[DNS_MSG_MAX];
	size_t len = dns_build_reply(query, q, rcode, out, sizeof(out));

	if (len > 0)
		sendto(fd, out, len, MSG_DONTWAIT, (const struct sockaddr *)to, sizeof(*to));
}

/* The pending query upstream id belongs to (in any sandbox), or NULL; *owner set. */
static struct pending *pending_find_locked(struct resolver *r, uint16_t id, struct rsb **owner)
{
	struct rsb *s;
	size_t i;

	for (s = r->sandboxes; s != NULL; s = s->next) {
		for (i = 0; i < RESOLVER_PENDING_PER_SANDBOX; i++) {
			if (s->pending[i].used && s->pending[i].upstream_id == id) {
				*owner = s;
				return &s->pending[i];
			}
		}
	}
	return NULL;
}

/* A free slot of s's with an upstream id no pending query uses, or NULL (s has its share
 * upstream already). */
static struct pending *pending_alloc_locked(struct resolver *r, struct rsb *s)
{
	struct pending *free_slot = NULL;
	struct rsb *owner;
	uint16_t id;
	size_t i;

	for (i = 0; i < RESOLVER_PENDING_PER_SANDBOX && free_slot == NULL; i++)
		if (!s->pending[i].used)
			free_slot = &s->pending[i];
	if (free_slot == NULL)
		return NULL;
	do {
		if (getrandom(&id, sizeof(id), 0) != sizeof(id))
			return NULL;
	} while (pending_find_locked(r, id, &owner) != NULL);
	memset(free_slot, 0, sizeof(*free_slot));
	free_slot->used = true;
	free_slot->upstream_id = id;
	return free_slot;
}

/* Sends the guest's query upstream under a fresh id. */
static void forward_query_locked(struct resolver *r, struct rsb *s, const uint8_t *msg,
				 size_t len, const struct dns_query *q,
				 const struct sockaddr_in *from, bool any_port,
				 const uint16_t *ports, size_t nports)
{
	uint8_t out[DNS_MSG_MAX];
	struct pending *p;

	if ((p = pending_alloc_locked(r, s)) == NULL) {
		r->stats.failed++;
		reply_empty(s->fd, msg, q, DNS_RCODE_SERVFAIL, from);
		return;
	}
	p->guest_id = q->id;
	p->guest = *from;
	p->q = *q;
	memcpy(p->query, msg, q->question_end);
	p->query_len = q->question_end;
	p->record = s->policy.mode == NET_MODE_ALLOWLIST;
	p->any_port = any_port;
	memcpy(p->ports, ports, nports * sizeof(*ports));
	p->nports = nports;
	p->deadline_ms = time_mono_ms() + RESOLVER_TIMEOUT_MS;
	memcpy(out, msg, len);
	dns_set_id(out, p->upstream_id);
	if (send(r->up_fd, out, len, MSG_DONTWAIT) < 0) {
		p->used = false;
		r->stats.failed++;
		reply_empty(s->fd, msg, q, DNS_RCODE_SERVFAIL, from);
	}
}

/* One datagram from a sandbox. */
static void handle_guest_locked(struct resolver *r, struct rsb *s)
{
	uint8_t msg[DNS_MSG_MAX];
	struct sockaddr_in from;
	socklen_t fromlen = sizeof(from);
	struct ember_error *err = NULL;
	uint16_t ports[PORTS_MAX];
	size_t nports = 0;
	bool any_port = false;
	struct dns_query q;
	ssize_t n = recvfrom(s->fd, msg, sizeof(msg), MSG_DONTWAIT, (struct sockaddr *)&from,
			     &fromlen);

	/* Only the guest's own address (its table drops others already; this holds without). */
	if (n <= 0 || fromlen != sizeof(from) || ntohl(from.sin_addr.s_addr) != s->guest_ip)
		return;
	if (dns_parse_query(msg, (size_t)n, &q, &err) < 0) {
		/* Not a query we answer: nothing to echo a question from. */
		ember_error_free(&err);
		r->stats.refused++;
		return;
	}
	if (q.qclass != DNS_CLASS_IN) {
		r->stats.refused++;
		reply_empty(s->fd, msg, &q, DNS_RCODE_REFUSED, &from);
	} else if (!net_policy_name_allowed(&s->policy, q.name, &any_port, ports, PORTS_MAX,
					    &nports)) {
		r->stats.refused++;
		reply_empty(s->fd, msg, &q, DNS_RCODE_NXDOMAIN, &from);
	} else if (q.qtype == DNS_TYPE_AAAA) {
		r->stats.answered++;
		reply_empty(s->fd, msg, &q, DNS_RCODE_NOERROR, &from);
	} else {
		forward_query_locked(r, s, msg, (size_t)n, &q, &from, any_port, ports, nports);
	}
}

/* One datagram from upstream: the pending query it answers gets it (after the allow callback). */
static void handle_upstream_locked(struct resolver *r)
{
	struct dns_a_record recs[DNS_ANSWERS_MAX];
	struct ember_error *err = NULL;
	uint8_t msg[DNS_MSG_MAX];
	struct pending *p;
	uint8_t rcode = 0;
	struct rsb *s = NULL;
	size_t nrecs = 0;
	ssize_t n = recv(r->up_fd, msg, sizeof(msg), MSG_DONTWAIT);

	if (n < 12)
		return;
	p = pending_find_locked(r, (uint16_t)(msg[0] << 8 | msg[1]), &s);
	if (p == NULL)
		return;
	if (dns_parse_answer(msg, (size_t)n, p->upstream_id, &p->q, recs, &nrecs, &rcode,
			     &err) < 0) {
		log_event(LOG_WARN, s->id, "net.dns_bad_answer", -1, "%s", err->message);
		ember_error_free(&err);
		r->stats.failed++;
		reply_empty(s->fd, p->query, &p->q, DNS_RCODE_SERVFAIL, &p->guest);
	} else if (p->record && nrecs > 0 &&
		   r->cfg.allow(r->cfg.ctx, s->id, recs, nrecs, p->any_port, p->ports,
				p->nports) < 0) {
		r->stats.failed++;
		reply_empty(s->fd, p->query, &p->q, DNS_RCODE_SERVFAIL, &p->guest);
	} else {
		r->stats.answered++;
		dns_set_id(msg, p->guest_id);
		sendto(s->fd, msg, (size_t)n, MSG_DONTWAIT, (const struct sockaddr *)&p->guest,
		       sizeof(p->guest));
	}
	p->used = false;
}

/* Forgets pending queries past their deadline; returns ms until the next one (or -1). */
static int expire_locked(struct resolver *r)
{
	int64_t now = time_mono_ms(), next = -1;
	struct rsb *s;
	size_t i;

	for (s = r->sandboxes; s != NULL; s = s->next) {
		for (i = 0; i < RESOLVER_PENDING_PER_SANDBOX; i++) {
			struct pending *p = &s->pending[i];

			if (!p->used)
				continue;
			if (p->deadline_ms <= now) {
				r->stats.failed++;
				p->used = false;
			} else if (next < 0 || p->deadline_ms < next) {
				next = p->deadline_ms;
			}
		}
	}
	return next < 0 ? -1 : (int)(next - now);
}

static void *resolver_main(void *arg)
{
	struct resolver *r = arg;
	int timeout = -1;

	for (;;) {
		struct epoll_event evs[16];
		int n = epoll_wait(r->epfd, evs, 16, timeout), i;

		if (n < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&r->lock);
		for (i = 0; i < n; i++) {
			struct rsb *s;

			if (evs[i].data.u64 == TAG_STOP) {
				pthread_mutex_unlock(&r->lock);
				return NULL;
			}
			if (evs[i].data.u64 == TAG_UPSTREAM) {
				handle_upstream_locked(r);
				continue;
			}
			s = find_tag_locked(r, evs[i].data.u64);
			if (s != NULL)
				handle_guest_locked(r, s);
		}
		timeout = expire_locked(r);
		pthread_mutex_unlock(&r->lock);
	}
	return NULL;
}

static int watch(int epfd, int fd, uint64_t tag, struct ember_error **err)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return ember_error_sys(err, "epoll_ctl");
	return 0;
}

/* The upstream socket: connected to --egress-dns, leaving by the uplink. */
static int open_upstream(const struct resolver_config *cfg, struct ember_error **err)
{
	_cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	bool loopback = (ntohl(cfg->upstream.sin_addr.s_addr) >> 24) == 127;

	if (fd < 0)
		return ember_error_sys(err, "DNS upstream socket");
	if (!loopback && cfg->uplink != NULL &&
	    (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, cfg->uplink, strlen(cfg->uplink)) < 0 ||
	     setsockopt(fd, SOL_SOCKET, SO_MARK, &cfg->mark, sizeof(cfg->mark)) < 0))
		return ember_error_sys(err, "bind the DNS upstream socket to `%s`", cfg->uplink);
	if (connect(fd, (const struct sockaddr *)&cfg->upstream, sizeof(cfg->upstream)) < 0)
		return ember_error_sys(err, "DNS upstream %s", inet_ntoa(cfg->upstream.sin_addr));
	return steal_fd(&fd);
}

int resolver_start(const struct resolver_config *cfg, struct resolver **out,
		   struct ember_error **err)
{
	struct resolver *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	r->cfg = *cfg;
	r->next_tag = TAG_FIRST_SANDBOX;
	r->stop_fd = r->up_fd = -1;
	pthread_mutex_init(&r->lock, NULL);
	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (r->epfd < 0) {
		ember_error_sys(err, "epoll_create1");
		goto fail;
	}
	r->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->stop_fd < 0) {
		ember_error_sys(err, "eventfd");
		goto fail;
	}
	r->up_fd = open_upstream(cfg, err);
	if (r->up_fd < 0 || watch(r->epfd, r->stop_fd, TAG_STOP, err) < 0 ||
	    watch(r->epfd, r->up_fd, TAG_UPSTREAM, err) < 0)
		goto fail;
	if (pthread_create(&r->thread, NULL, resolver_main, r) != 0) {
		ember_error_set(err, EMBER_E_INTERNAL, EAGAIN, "start the resolver thread");
		goto fail;
	}
	r->thread_started = true;
	*out = r;
	return 0;
fail:
	resolver_stop(r);
	return -1;
}

void resolver_stop(struct resolver *r)
{
	struct rsb *s;

	if (r == NULL)
		return;
	if (r->thread_started) {
		uint64_t one = 1;

		if (write(r->stop_fd, &one, sizeof(one)) != sizeof(one))
			log_event(LOG_WARN, NULL, "net.resolver_stop", -1, "eventfd write failed");
		pthread_join(r->thread, NULL);
	}
	while ((s = r->sandboxes) != NULL) {
		r->sandboxes = s->next;
		close(s->fd);
		net_policy_release(&s->policy);
		free(s);
	}
	if (r->up_fd >= 0)
		close(r->up_fd);
	if (r->stop_fd >= 0)
		close(r->stop_fd);
	if (r->epfd >= 0)
		close(r->epfd);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static int bind_sandbox_socket(const char *device, uint32_t host_ip, uint16_t *port,
			       struct ember_error **err)
{
	_cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(host_ip) };
	socklen_t len = sizeof(sin);

	if (fd < 0)
		return ember_error_sys(err, "DNS socket");
	/* Only what arrives by the sandbox's own TAP: not the LAN, not a local user. */
	if (device != NULL &&
	    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, device, strlen(device)) < 0)
		return ember_error_sys(err, "bind the sandbox's DNS socket to `%s`", device);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
		return ember_error_sys(err, "bind the sandbox's DNS socket");
	*port = ntohs(sin.sin_port);
	return steal_fd(&fd);
}

int resolver_add(struct resolver *r, const char *sandbox_id, const char *device, uint32_t host_ip,
		 uint32_t guest_ip, const struct net_policy *policy, uint16_t *port,
		 struct ember_error **err)
{
	_cleanup_free_ struct rsb *s = calloc(1, sizeof(*s));
	int ret = 0;

	if (s == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	snprintf(s->id, sizeof(s->id), "%s", sandbox_id);
	s->guest_ip = guest_ip;
	if (net_policy_copy(policy, &s->policy, err) < 0)
		return -1;
	s->fd = bind_sandbox_socket(device, host_ip, port, err);
	if (s->fd < 0) {
		net_policy_release(&s->policy);
		return -1;
	}
	pthread_mutex_lock(&r->lock);
	s->tag = r->next_tag++;
	if (find_id_locked(r, sandbox_id) != NULL)
		ret = ember_error_set(err, EMBER_E_INTERNAL, EEXIST, "resolver: %s twice",
				      sandbox_id);
	else
		ret = watch(r->epfd, s->fd, s->tag, err);
	if (ret == 0) {
		s->next = r->sandboxes;
		r->sandboxes = steal_pointer(&s);
	}
	pthread_mutex_unlock(&r->lock);
	if (s != NULL) {
		close(s->fd);
		net_policy_release(&s->policy);
	}
	return ret;
}

int resolver_set_policy(struct resolver *r, const char *sandbox_id,
			const struct net_policy *policy, struct ember_error **err)
{
	struct net_policy copy;
	struct rsb *s;

	if (net_policy_copy(policy, &copy, err) < 0)
		return -1;
	pthread_mutex_lock(&r->lock);
	s = find_id_locked(r, sandbox_id);
	if (s != NULL) {
		size_t i;

		net_policy_release(&s->policy);
		s->policy = copy;
		for (i = 0; i < RESOLVER_PENDING_PER_SANDBOX; i++)
			s->pending[i].used = false;
	}
	pthread_mutex_unlock(&r->lock);
	if (s == NULL) {
		net_policy_release(&copy);
		return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "resolver: no sandbox %s",
				       sandbox_id);
	}
	return 0;
}

void resolver_remove(struct resolver *r, const char *sandbox_id)
{
	struct rsb **pp, *s = NULL;

	pthread_mutex_lock(&r->lock);
	for (pp = &r->sandboxes; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->id, sandbox_id) == 0) {
			s = *pp;
			*pp = s->next;
			break;
		}
	}
	if (s != NULL) {
		epoll_ctl(r->epfd, EPOLL_CTL_DEL, s->fd, NULL);
		close(s->fd);
	}
	pthread_mutex_unlock(&r->lock);
	if (s != NULL) {
		net_policy_release(&s->policy);
		free(s);
	}
}

void resolver_stats(struct resolver *r, struct resolver_stats *out)
{
	pthread_mutex_lock(&r->lock);
	*out = r->stats;
	pthread_mutex_unlock(&r->lock);
}
