/* egress.c - sandbox networking on the host (see egress.h and docs/network.md). */
#include "net/egress.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/hostcmd.h"
#include "net/resolver.h"
#include "net/tap.h"
#include "util/buf.h"
#include "util/cleanup.h"
#include "util/fdio.h"
#include "util/jsonutil.h"
#include "util/log.h"
#include "util/sync.h"
#include "util/timeutil.h"

#define RULE_PREF_MAIN "25964"   /* to SUBNET lookup main: the host's replies stay on the TAP */
#define RULE_PREF_EGRESS "25965" /* from SUBNET / fwmark: the egress table */
#define TABLE_ID_BASE 0x656d0000u
#define EGRESS_FILE_MAX (256 * 1024)
#define TAP_PREFIX "emb"
/* Addresses a sandbox's sets hold at once: DNS answers beyond it get SERVFAIL. */
#define EGRESS_SET_SIZE 4096
/* The longest a resolved address stays allowed without a new lookup. */
#define EGRESS_TTL_MAX_S 3600
/* How often the watch checks that every sandbox's table is still there. */
#define EGRESS_WATCH_MS 5000

struct egress_link {
	char id[72];
	char run_dir[PATH_MAX];
	unsigned slot;
	char tap[IFNAMSIZ];
	int tap_fd;
	bool persistent;                 /* the VMM opens the TAP by name: detach deletes it */
	uint32_t host_ip, guest_ip;
	uint16_t dns_port;
	enum net_mode mode;              /* fixed: a PATCH changes the lists only */
	struct net_policy policy;        /* [egress lock] replaced by egress_update() */
	uint64_t seq;                    /* [egress lock] when it joined the links list */
	struct egress_link *next;        /* [egress lock] the links list (the watch) */
};

struct egress {
	unsigned modes;
	bool enabled;                    /* an uplink: networked sandboxes possible */
	char uplink[IFNAMSIZ];
	uint32_t subnet;                 /* host byte order */
	unsigned prefix;
	char subnet_text[32];
	uint32_t gateway;                /* 0: on-link */
	struct sockaddr_in dns;
	unsigned rate_mbit;
	unsigned max_connections;
	uint32_t table_id;
	char tag[8];                     /* 4 hex digits of the subnet: names this daemon's TAPs
					  * and tables apart from another daemon's (another subnet) */
	char global_table[32];
	char uplink_forwarding[8];       /* its value before we set 1 ("" if unchanged) */
	bool global_made;
	struct resolver *resolver;
	struct egress_link *links;       /* [lock] every live link */
	uint64_t link_seq;               /* [lock] */
	pthread_t watch;                 /* restores a table something else removed */
	bool watching;
	bool stopping;                   /* [lock] */
	pthread_cond_t watch_cond;
	pthread_mutex_t gen_lock;
	uint32_t generation;             /* [gen_lock] the last table generation (ct mark) */
	pthread_mutex_t lock;
	uint8_t *slots;                  /* [lock] one byte per /30 of the subnet */
	unsigned nslots;
	char description[384];
};

/* ---- addresses and settings ---------------------------------------------------------------- */

static void ip_text(uint32_t addr, char out[INET_ADDRSTRLEN])
{
	struct in_addr in = { .s_addr = htonl(addr) };

	inet_ntop(AF_INET, &in, out, INET_ADDRSTRLEN);
}

static int parse_ipv4(const char *text, uint32_t *out)
{
	struct in_addr in;

	if (inet_pton(AF_INET, text, &in) != 1)
		return -1;
	*out = ntohl(in.s_addr);
	return 0;
}

static int parse_subnet(struct egress *e, const char *text, struct ember_error **err)
{
	char addr[INET_ADDRSTRLEN + 4];
	const char *slash = strchr(text, '/');
	char *end;
	long prefix;

	if (slash == NULL || (size_t)(slash - text) >= sizeof(addr))
		goto bad;
	memcpy(addr, text, (size_t)(slash - text));
	addr[slash - text] = '\0';
	prefix = strtol(slash + 1, &end, 10);
	if (*end != '\0' || prefix < 8 || prefix > 24 || parse_ipv4(addr, &e->subnet) < 0)
		goto bad;
	e->prefix = (unsigned)prefix;
	if (e->subnet & ~(~(uint32_t)0 << (32 - e->prefix)))
		return ember_error_set(err, EMBER_E_INVALID, 0, "--egress-subnet `%s`: not a network "
				       "address for /%ld", text, prefix);
	snprintf(e->subnet_text, sizeof(e->subnet_text), "%s/%u", addr, e->prefix);
	e->nslots = 1u << (32 - e->prefix - 2);
	return 0;
bad:
	return ember_error_set(err, EMBER_E_INVALID, 0, "--egress-subnet `%s`: expected an IPv4 "
			       "network A.B.C.D/N with N from 8 to 24", text);
}

/* The first IPv4 nameserver of /etc/resolv.conf. */
static int resolv_conf_server(char *out, size_t size, struct ember_error **err)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	char *line, *save = NULL;

	if (file_read_all("/etc/resolv.conf", 64 * 1024, &text, &len, err) < 0)
		return ember_error_wrap(err, "no --egress-dns given");
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char addr[64];
		uint32_t ip;

		if (sscanf(line, " nameserver %63s", addr) == 1 && parse_ipv4(addr, &ip) == 0) {
			snprintf(out, size, "%s", addr);
			return 0;
		}
	}
	return ember_error_set(err, EMBER_E_INVALID, 0, "/etc/resolv.conf names no IPv4 "
			       "nameserver: give --egress-dns ADDR[:PORT]");
}

static int parse_dns(struct egress *e, const char *flag, struct ember_error **err)
{
	char text[80], *colon;
	uint32_t ip;
	long port = 53;

	if (flag != NULL)
		snprintf(text, sizeof(text), "%s", flag);
	else if (resolv_conf_server(text, sizeof(text), err) < 0)
		return -1;
	colon = strchr(text, ':');
	if (colon != NULL) {
		char *end;

		*colon = '\0';
		port = strtol(colon + 1, &end, 10);
		if (*end != '\0' || port < 1 || port > 65535)
			goto bad;
	}
	if (parse_ipv4(text, &ip) < 0)
		goto bad;
	e->dns = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				       .sin_addr.s_addr = htonl(ip) };
	return 0;
bad:
	return ember_error_set(err, EMBER_E_INVALID, 0, "--egress-dns `%s`: expected an IPv4 "
			       "address with an optional :PORT", flag != NULL ? flag : text);
}

/* The main table's default gateway via the uplink (/proc/net/route), or 0: on-link. */
static uint32_t default_gateway(const char *uplink)
{
	_cleanup_free_ char *text = NULL;
	struct ember_error *err = NULL;
	char *line, *save = NULL;
	size_t len;

	if (file_read_all("/proc/net/route", 1024 * 1024, &text, &len, &err) < 0) {
		ember_error_free(&err);
		return 0;
	}
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char iface[IFNAMSIZ + 1];
		unsigned dest, gw, flags;

		if (sscanf(line, "%16s %x %x %x", iface, &dest, &gw, &flags) == 4 &&
		    strcmp(iface, uplink) == 0 && dest == 0 && gw != 0)
			return ntohl(gw); /* the file holds network byte order, in hex */
	}
	return 0;
}

/* ---- the daemon-wide setup ----------------------------------------------------------------- */

/* Runs a command given as its words (hostcmd_run() with a NULL-terminated argv). */
#define RUN(err, ...) hostcmd_run((char *const *)(const char *[]){ __VA_ARGS__, NULL }, err)

/* RUN() for a cleanup step whose failure means there was nothing to remove. */
#define RUN_QUIET(...)                                                                     \
	do {                                                                               \
		struct ember_error *quiet_err = NULL;                                      \
		if (RUN(&quiet_err, __VA_ARGS__) < 0)                                      \
			ember_error_free(&quiet_err);                                      \
	} while (0)

/* Removes our routing rules, table and global nftables table (also an earlier daemon's). */
static void global_remove(struct egress *e)
{
	char table[16], mark[16], script[96];
	struct ember_error *err = NULL;
	int i;

	snprintf(table, sizeof(table), "%u", e->table_id);
	snprintf(mark, sizeof(mark), "0x%x", e->table_id);
	/* A crashed daemon's rules may be there more than once; each del removes one. */
	for (i = 0; i < 4; i++) {
		RUN_QUIET("ip", "-4", "rule", "del", "to", e->subnet_text, "lookup", "main", "pref",
			  RULE_PREF_MAIN);
		RUN_QUIET("ip", "-4", "rule", "del", "from", e->subnet_text, "lookup", table, "pref",
			  RULE_PREF_EGRESS);
		RUN_QUIET("ip", "-4", "rule", "del", "fwmark", mark, "lookup", table, "pref",
			  RULE_PREF_EGRESS);
	}
	RUN_QUIET("ip", "-4", "route", "flush", "table", table);
	snprintf(script, sizeof(script), "add table ip %s\ndelete table ip %s\n", e->global_table,
		 e->global_table);
	if (hostcmd_nft(script, NULL, &err) < 0)
		ember_error_free(&err);
}

static int global_make(struct egress *e, struct ember_error **err)
{
	char table[16], mark[16], gw[INET_ADDRSTRLEN], script[512];

	snprintf(table, sizeof(table), "%u", e->table_id);
	snprintf(mark, sizeof(mark), "0x%x", e->table_id);
	if (e->gateway != 0) {
		ip_text(e->gateway, gw);
		if (RUN(err, "ip", "-4", "route", "replace", "default", "via", gw, "dev", e->uplink,
			"table", table) < 0)
			return -1;
	} else if (RUN(err, "ip", "-4", "route", "replace", "default", "dev", e->uplink, "table",
		       table) < 0) {
		return -1;
	}
	if (RUN(err, "ip", "-4", "rule", "add", "to", e->subnet_text, "lookup", "main", "pref",
		RULE_PREF_MAIN) < 0 ||
	    RUN(err, "ip", "-4", "rule", "add", "from", e->subnet_text, "lookup", table, "pref",
		RULE_PREF_EGRESS) < 0 ||
	    RUN(err, "ip", "-4", "rule", "add", "fwmark", mark, "lookup", table, "pref",
		RULE_PREF_EGRESS) < 0)
		return -1;
	snprintf(script, sizeof(script),
		 "table ip %s {\n"
		 "  chain postrouting {\n"
		 "    type nat hook postrouting priority srcnat; policy accept;\n"
		 "    ip saddr %s oifname \"%s\" masquerade\n"
		 "  }\n"
		 "}\n", e->global_table, e->subnet_text, e->uplink);
	if (hostcmd_nft(script, NULL, err) < 0)
		return -1;
	/* Replies to the sandboxes come in by the uplink and are forwarded to their TAPs. */
	if (net_sysctl_get("ipv4", e->uplink, "forwarding", e->uplink_forwarding,
			   sizeof(e->uplink_forwarding), err) < 0)
		return -1;
	if (strcmp(e->uplink_forwarding, "1") == 0) {
		e->uplink_forwarding[0] = '\0';
		return 0;
	}
	/* The uplink did not forward before: it still forwards nothing but to sandbox TAPs (any
	 * daemon's: another one sharing this uplink gets its replies too; each TAP's own table
	 * lets in only its connections). */
	snprintf(script, sizeof(script),
		 "table ip %s {\n"
		 "  chain forward {\n"
		 "    type filter hook forward priority filter; policy accept;\n"
		 "    iifname \"%s\" oifname != \"" TAP_PREFIX "*\" drop\n"
		 "  }\n"
		 "}\n", e->global_table, e->uplink);
	if (hostcmd_nft(script, NULL, err) < 0)
		return -1;
	return net_sysctl_set("ipv4", e->uplink, "forwarding", "1", err);
}

static int resolver_allow(void *ctx, const char *sandbox_id, const struct dns_a_record *recs,
			  size_t n, bool any_port, const uint16_t *ports, size_t nports);
static void *watch_main(void *arg);

static int enable(struct egress *e, const struct egress_config *cfg, struct ember_error **err)
{
	struct resolver_config rcfg = { .allow = resolver_allow, .ctx = e };
	char why[256], dns[INET_ADDRSTRLEN], gw[INET_ADDRSTRLEN];

	if (strlen(cfg->uplink) >= IFNAMSIZ || !tap_exists(cfg->uplink))
		return ember_error_set(err, EMBER_E_INVALID, 0, "--egress-uplink `%s`: no such "
				       "interface", cfg->uplink);
	snprintf(e->uplink, sizeof(e->uplink), "%s", cfg->uplink);
	if (parse_dns(e, cfg->dns, err) < 0)
		return -1;
	if (cfg->gateway != NULL && parse_ipv4(cfg->gateway, &e->gateway) < 0)
		return ember_error_set(err, EMBER_E_INVALID, 0, "--egress-gateway `%s`: expected an "
				       "IPv4 address", cfg->gateway);
	if (cfg->gateway == NULL)
		e->gateway = default_gateway(e->uplink);
	if (!hostcmd_nft_usable(why, sizeof(why)))
		return ember_error_set(err, EMBER_E_UNAVAILABLE, 0, "networked sandboxes need "
				       "nftables: %s", why);
	if (access("/dev/net/tun", R_OK | W_OK) < 0)
		return ember_error_sys(err, "networked sandboxes need /dev/net/tun");
	e->slots = calloc(e->nslots, 1);
	if (e->slots == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	global_remove(e);
	e->global_made = true;
	if (global_make(e, err) < 0)
		return ember_error_wrap(err, "egress setup");
	rcfg.upstream = e->dns;
	rcfg.uplink = e->uplink;
	rcfg.mark = e->table_id;
	if (resolver_start(&rcfg, &e->resolver, err) < 0)
		return -1;
	if (pthread_create(&e->watch, NULL, watch_main, e) != 0)
		return ember_error_set(err, EMBER_E_INTERNAL, EAGAIN, "start the network watch");
	e->watching = true;
	e->enabled = true;
	ip_text(ntohl(e->dns.sin_addr.s_addr), dns);
	if (e->gateway != 0)
		ip_text(e->gateway, gw);
	else
		snprintf(gw, sizeof(gw), "on-link");
	net_modes_format(e->modes, why, sizeof(why));
	snprintf(e->description, sizeof(e->description), "%s via %s (gateway %s, dns %s:%u, "
		 "subnet %s, tag %s: TAPs " TAP_PREFIX "%ss<N>, routing table and mark 0x%08x)", why,
		 e->uplink, gw, dns, ntohs(e->dns.sin_port), e->subnet_text, e->tag, e->tag,
		 e->table_id);
	return 0;
}

/* 16 bits of FNV-1a over "A.B.C.D/N": different subnets (also two /24s of one /16) get
 * different tags but for a 1 in 65536 chance. */
static uint32_t subnet_tag(const char *text)
{
	uint32_t h = 2166136261u;

	for (; *text != '\0'; text++)
		h = (h ^ (uint8_t)*text) * 16777619u;
	return (h ^ (h >> 16)) & 0xffffu;
}

int egress_create(const struct egress_config *cfg, struct egress **out, struct ember_error **err)
{
	struct egress *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	pthread_mutex_init(&e->lock, NULL);
	pthread_mutex_init(&e->gen_lock, NULL);
	cond_init_monotonic(&e->watch_cond);
	/* Generations of an earlier daemon's tables must not repeat: start anywhere. */
	if (getrandom(&e->generation, sizeof(e->generation), 0) != sizeof(e->generation))
		e->generation = (uint32_t)time_mono_ms();
	e->modes = cfg->modes | NET_MODE_BIT(NET_MODE_NONE);
	e->rate_mbit = cfg->rate_mbit;
	e->max_connections = cfg->max_connections != 0 ? cfg->max_connections
						       : EGRESS_MAX_CONNECTIONS_DEFAULT;
	if (parse_subnet(e, cfg->subnet != NULL ? cfg->subnet : EGRESS_SUBNET_DEFAULT, err) < 0)
		goto fail;
	e->table_id = TABLE_ID_BASE | subnet_tag(e->subnet_text);
	snprintf(e->tag, sizeof(e->tag), "%04x", subnet_tag(e->subnet_text));
	snprintf(e->global_table, sizeof(e->global_table), "%sg%08x", EGRESS_TABLE_PREFIX,
		 e->table_id);
	snprintf(e->description, sizeof(e->description), "off (no --egress-uplink)");
	if (cfg->uplink != NULL && enable(e, cfg, err) < 0)
		goto fail;
	if (cfg->uplink == NULL && e->modes != NET_MODE_BIT(NET_MODE_NONE))
		log_event(LOG_WARN, NULL, "net.no_uplink", -1, "--network-modes allows networked "
			  "sandboxes but no --egress-uplink is set: every networked create fails");
	*out = e;
	return 0;
fail:
	egress_free(e);
	return -1;
}

void egress_free(struct egress *e)
{
	struct ember_error *err = NULL;

	if (e == NULL)
		return;
	if (e->watching) {
		pthread_mutex_lock(&e->lock);
		e->stopping = true;
		pthread_cond_broadcast(&e->watch_cond);
		pthread_mutex_unlock(&e->lock);
		pthread_join(e->watch, NULL);
	}
	if (e->resolver != NULL)
		resolver_stop(e->resolver);
	if (e->global_made) {
		global_remove(e);
		if (e->uplink_forwarding[0] != '\0' &&
		    net_sysctl_set("ipv4", e->uplink, "forwarding", e->uplink_forwarding, &err) < 0)
			ember_error_free(&err);
	}
	free(e->slots);
	pthread_mutex_destroy(&e->gen_lock);
	pthread_cond_destroy(&e->watch_cond);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

const char *egress_description(const struct egress *e)
{
	return e->description;
}

int egress_check(const struct egress *e, const struct net_policy *p, struct ember_error **err)
{
	if (p->mode == NET_MODE_NONE)
		return 0;
	if (!(e->modes & NET_MODE_BIT(p->mode))) {
		char modes[64];

		net_modes_format(e->modes, modes, sizeof(modes));
		return ember_error_set(err, EMBER_E_INVALID, 0, "field `network.mode`: mode `%s` "
				       "is not enabled on this daemon (--network-modes %s)",
				       net_mode_name(p->mode), modes);
	}
	if (!e->enabled)
		return ember_error_set(err, EMBER_E_INVALID, 0, "networked sandboxes need "
				       "--egress-uplink IFACE (and --network-modes allowlist or "
				       "open); see docs/network.md");
	return 0;
}

/* ---- a sandbox's nftables table --------------------------------------------------------------- */

/* An nft script being written; one failed append fails it. */
struct script {
	struct buf b;
	bool failed;
};

static void sp(struct script *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sp(struct script *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) || buf_append(&s->b, line, (size_t)n) < 0)
		s->failed = true;
}

static const char *script_text(struct script *s)
{
	if (s->failed || buf_terminate(&s->b) < 0)
		return NULL;
	return (const char *)s->b.data;
}

static void script_release(struct script *s)
{
	buf_release(&s->b);
}

static void table_name(const struct egress *e, const char *id, char *out, size_t size)
{
	snprintf(out, size, "%s%s_%s", EGRESS_TABLE_PREFIX, e->tag, id);
}

static void rule_match(struct script *s, const struct net_rule *r)
{
	char net[INET_ADDRSTRLEN];

	ip_text(r->addr, net);
	sp(s, "ip daddr %s/%u ", net, r->prefix);
	/* A port means TCP or UDP: other protocols have no port where th dport looks. */
	if (r->port != 0)
		sp(s, "meta l4proto { tcp, udp } th dport %u ", r->port);
}

/* The whole table for link l under policy p: one transaction that replaces an older one. */
static void table_script(const struct egress *e, const struct egress_link *l,
			 const struct net_policy *p, uint32_t gen, struct script *s)
{
	char name[96], host[INET_ADDRSTRLEN], guest[INET_ADDRSTRLEN];
	size_t i;

	table_name(e, l->id, name, sizeof(name));
	ip_text(l->host_ip, host);
	ip_text(l->guest_ip, guest);
	sp(s, "add table inet %s\ndelete table inet %s\n", name, name);
	sp(s, "table inet %s {\n"
		   "  set dyn_any { type ipv4_addr; flags timeout; size %u; }\n"
		   "  set dyn_port { type ipv4_addr . inet_service; flags timeout; size %u; }\n"
		   "  counter tx { }\n  counter rx { }\n  counter dropped { }\n", name,
		   EGRESS_SET_SIZE, EGRESS_SET_SIZE);
	/* Before anything else (the DNS redirect included): only the guest's own IPv4 address. */
	sp(s, "  chain guard {\n"
		   "    type filter hook prerouting priority raw; policy accept;\n"
		   "    iifname \"%s\" meta nfproto != ipv4 counter name \"dropped\" drop\n"
		   "    iifname \"%s\" ip saddr != %s counter name \"dropped\" drop\n  }\n",
		   l->tap, l->tap, guest);
	/* The guest's only resolver: udp/53 to anything goes to the daemon's socket. */
	sp(s, "  chain prerouting {\n"
		   "    type nat hook prerouting priority dstnat; policy accept;\n"
		   "    iifname \"%s\" udp dport 53 redirect to :%u\n  }\n", l->tap, l->dns_port);
	/* Nothing of the host but that socket. */
	sp(s, "  chain input {\n"
		   "    type filter hook input priority filter; policy accept;\n"
		   "    iifname \"%s\" ip daddr %s udp dport %u accept\n"
		   "    iifname \"%s\" counter name \"dropped\" drop\n  }\n",
		   l->tap, host, l->dns_port, l->tap);
	sp(s, "  chain forward {\n"
		   "    type filter hook forward priority filter; policy accept;\n"
		   "    iifname \"%s\" jump from_guest\n"
		   "    oifname \"%s\" jump to_guest\n  }\n", l->tap, l->tap);
	/* Connections carry the generation of the table that let them in (ct mark): after a
	 * PATCH, or for a new sandbox on a reused address, an older one's packets are judged
	 * afresh, and its replies wait for that. */
	sp(s, "  chain to_guest {\n"
		   "    ct state established,related ct mark 0x%08x counter name \"rx\" accept\n"
		   "    counter name \"dropped\" drop\n  }\n", gen);
	sp(s, "  chain from_guest {\n"
		   "    meta nfproto != ipv4 counter name \"dropped\" drop\n"
		   "    ip saddr != %s counter name \"dropped\" drop\n"
		   "    oifname != \"%s\" counter name \"dropped\" drop\n", guest, e->uplink);
	if (e->rate_mbit != 0)
		sp(s, "    limit rate over %u kbytes/second burst 256 kbytes "
			   "counter name \"dropped\" drop\n", e->rate_mbit * 125);
	sp(s, "    ct state established,related ct mark 0x%08x counter name \"tx\" accept\n"
		   "    ip daddr { 0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16, 224.0.0.0/4, "
		   "240.0.0.0/4, %s } counter name \"dropped\" drop\n", gen, e->subnet_text);
	for (i = 0; i < p->ndeny; i++) {
		if (p->deny[i].kind != NET_RULE_CIDR)
			continue;
		sp(s, "    ");
		rule_match(s, &p->deny[i]);
		sp(s, "counter name \"dropped\" drop\n");
	}
	sp(s, "    ct state new ct count over %u counter name \"dropped\" drop\n",
		   e->max_connections);
	for (i = 0; i < p->nallow; i++) {
		if (p->allow[i].kind != NET_RULE_CIDR)
			continue;
		sp(s, "    ");
		rule_match(s, &p->allow[i]);
		sp(s, "ct mark set 0x%08x counter name \"tx\" accept\n", gen);
	}
	sp(s, "    ip daddr { 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10 } "
		   "counter name \"dropped\" drop\n");
	if (p->mode == NET_MODE_OPEN)
		sp(s, "    ct mark set 0x%08x counter name \"tx\" accept\n", gen);
	else
		sp(s, "    ip daddr @dyn_any ct mark set 0x%08x counter name \"tx\" accept\n"
			   "    meta l4proto { tcp, udp } ip daddr . th dport @dyn_port "
			   "ct mark set 0x%08x counter name \"tx\" accept\n", gen, gen);
	sp(s, "    counter name \"dropped\" drop\n  }\n}\n");
}

/* Writes the link's table for policy p under a new generation (its connections from before
 * are judged again); the link's gen is updated when it took. */
static int table_apply(struct egress *e, struct egress_link *l, const struct net_policy *p,
		       struct ember_error **err)
{
	struct script s = { 0 };
	const char *text;
	uint32_t gen;
	int ret;

	pthread_mutex_lock(&e->gen_lock);
	gen = ++e->generation;
	pthread_mutex_unlock(&e->gen_lock);
	table_script(e, l, p, gen, &s);
	text = script_text(&s);
	ret = text != NULL ? hostcmd_nft(text, NULL, err)
			   : ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	script_release(&s);
	return ret;
}

static void table_delete(const struct egress *e, const char *id)
{
	struct ember_error *err = NULL;
	char name[96], script[256];

	table_name(e, id, name, sizeof(name));
	snprintf(script, sizeof(script), "add table inet %s\ndelete table inet %s\n", name, name);
	if (hostcmd_nft(script, NULL, &err) < 0) {
		log_event(LOG_WARN, id, "net.table_delete_failed", -1, "%s", err->message);
		ember_error_free(&err);
	}
}

/* The resolver's answers: each address into the sandbox's set for max(TTL, floor). An address
 * already there gets the new timeout (delete + add in the same transaction). */
static int resolver_allow(void *ctx, const char *sandbox_id, const struct dns_a_record *recs,
			  size_t n, bool any_port, const uint16_t *ports, size_t nports)
{
	struct script s = { 0 };
	struct ember_error *err = NULL;
	const char *text;
	char name[96];
	size_t i, j;
	int ret = 0;

	table_name(ctx, sandbox_id, name, sizeof(name));
	for (i = 0; i < n; i++) {
		char addr[INET_ADDRSTRLEN];
		uint32_t ttl = recs[i].ttl < RESOLVER_TTL_FLOOR_S ? RESOLVER_TTL_FLOOR_S
								   : recs[i].ttl;

		if (ttl > EGRESS_TTL_MAX_S)
			ttl = EGRESS_TTL_MAX_S;
		ip_text(recs[i].addr, addr);
		for (j = 0; j < (any_port ? 1 : nports); j++) {
			char elem[40];
			const char *set = any_port ? "dyn_any" : "dyn_port";

			if (any_port)
				snprintf(elem, sizeof(elem), "%s", addr);
			else
				snprintf(elem, sizeof(elem), "%s . %u", addr, ports[j]);
			sp(&s, "add element inet %s %s { %s }\n"
				   "delete element inet %s %s { %s }\n"
				   "add element inet %s %s { %s timeout %us }\n",
				   name, set, elem, name, set, elem, name, set, elem, ttl);
		}
	}
	text = script_text(&s);
	if (text == NULL || (s.b.len > 0 && hostcmd_nft(text, NULL, &err) < 0)) {
		log_event(LOG_WARN, sandbox_id, "net.allow_failed", -1, "%s",
			  err != NULL ? err->message : "out of memory");
		ember_error_free(&err);
		ret = -1;
	}
	script_release(&s);
	return ret;
}

/* ---- links ----------------------------------------------------------------------------------- */

static int slot_take(struct egress *e, int want, unsigned *slot, struct ember_error **err)
{
	unsigned i;
	int ret = 0;

	pthread_mutex_lock(&e->lock);
	if (want >= 0) {
		if ((unsigned)want >= e->nslots || e->slots[want])
			ret = ember_error_set(err, EMBER_E_INTERNAL, EEXIST, "address slot %d is "
					      "not free", want);
		else
			*slot = (unsigned)want;
	} else {
		for (i = 0; i < e->nslots && e->slots[i]; i++)
			;
		if (i == e->nslots)
			ret = ember_error_set(err, EMBER_E_CAPACITY, 0, "every address of "
					      "--egress-subnet %s is in use", e->subnet_text);
		*slot = i;
	}
	if (ret == 0)
		e->slots[*slot] = 1;
	pthread_mutex_unlock(&e->lock);
	return ret;
}

static void slot_give(struct egress *e, unsigned slot)
{
	pthread_mutex_lock(&e->lock);
	e->slots[slot] = 0;
	pthread_mutex_unlock(&e->lock);
}

static struct egress_link *link_new(struct egress *e, const char *id, const char *run_dir,
				    unsigned slot)
{
	struct egress_link *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	snprintf(l->id, sizeof(l->id), "%s", id);
	snprintf(l->run_dir, sizeof(l->run_dir), "%s", run_dir);
	l->slot = slot;
	l->tap_fd = -1;
	l->host_ip = e->subnet + slot * 4 + 1;
	l->guest_ip = l->host_ip + 1;
	snprintf(l->tap, sizeof(l->tap), TAP_PREFIX "%ss%u", e->tag, slot);
	return l;
}

static int link_file_write(const struct egress_link *l, const struct net_policy *p,
			   struct ember_error **err)
{
	_cleanup_free_ char *text = NULL;
	char path[PATH_MAX + 32];
	json_t *obj = json_pack("{s:I, s:s, s:b, s:o?}", "slot", (json_int_t)l->slot, "tap",
				l->tap, "persistent", l->persistent, "policy",
				net_policy_to_json(p));

	text = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
	json_decref(obj);
	if (text == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "%s/%s", l->run_dir, EGRESS_FILE);
	/* Durable: a recovery that finds it empty would kill a sandbox that was fine. */
	return file_write_atomic(path, text, strlen(text), 0600, true, err);
}

/* The host end of the link: address, no IPv6, forwarding, and the bandwidth to the guest. */
static int link_host_side(const struct egress *e, const struct egress_link *l,
			  struct ember_error **err)
{
	struct ember_error *v6_err = NULL;
	char rate[24];

	/* No IPv6 on the host end (absent when the host has IPv6 off: fine). */
	if (net_sysctl_set("ipv6", l->tap, "disable_ipv6", "1", &v6_err) < 0)
		ember_error_free(&v6_err);
	if (tap_set_address(l->tap, l->host_ip, 30, err) < 0 ||
	    net_sysctl_set("ipv4", l->tap, "forwarding", "1", err) < 0)
		return -1;
	if (e->rate_mbit == 0)
		return 0;
	/* The guest's download is shaped here; its upload is policed in its table (`limit`):
	 * ingress policing needs tc classifiers, which not every kernel has. */
	snprintf(rate, sizeof(rate), "%umbit", e->rate_mbit);
	return RUN(err, "tc", "qdisc", "replace", "dev", l->tap, "root", "tbf", "rate", rate,
		   "burst", "256kb", "latency", "100ms");
}

/* A persistent TAP outlives the VMM: deleted by name (logged when it cannot be, e.g. a VMM
 * still attached). */
static void tap_remove(const char *id, const char *tap)
{
	struct ember_error *err = NULL;

	if (tap_delete_by_name(tap, &err) < 0) {
		if (err->kind != EMBER_E_NOT_FOUND)
			log_event(LOG_WARN, id, "net.tap_delete_failed", -1, "%s", err->message);
		ember_error_free(&err);
	}
}

static void link_free(struct egress *e, struct egress_link *l)
{
	if (l->tap_fd >= 0)
		close(l->tap_fd);
	net_policy_release(&l->policy);
	slot_give(e, l->slot);
	free(l);
}

/* Table, resolver and file for a link whose TAP exists. */
static void link_register(struct egress *e, struct egress_link *l)
{
	pthread_mutex_lock(&e->lock);
	l->seq = ++e->link_seq;
	l->next = e->links;
	e->links = l;
	pthread_mutex_unlock(&e->lock);
}

static void link_unregister(struct egress *e, struct egress_link *l)
{
	struct egress_link **pp;

	pthread_mutex_lock(&e->lock);
	for (pp = &e->links; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	}
	pthread_mutex_unlock(&e->lock);
}

static int link_services(struct egress *e, struct egress_link *l, struct ember_error **err)
{
	if (resolver_add(e->resolver, l->id, l->tap, l->host_ip, l->guest_ip, &l->policy,
			 &l->dns_port, err) < 0)
		return -1;
	if (table_apply(e, l, &l->policy, err) < 0 || link_file_write(l, &l->policy, err) < 0) {
		resolver_remove(e->resolver, l->id);
		table_delete(e, l->id);
		return -1;
	}
	link_register(e, l);
	return 0;
}

/* ---- the watch: a sandbox's table is its only filter ------------------------------------------- */

/* The host's inet tables: the parsed JSON of `list tables inet` (NULL with err set). */
static json_t *list_tables(struct ember_error **err)
{
	_cleanup_free_ char *out = NULL;
	json_t *root;

	if (hostcmd_nft("list tables inet", &out, err) < 0)
		return NULL;
	root = json_loads(out, 0, NULL);
	if (root == NULL)
		ember_error_set(err, EMBER_E_INTERNAL, 0, "nftables listed its tables as bad JSON");
	return root;
}

/* The name of the i-th table of a list_tables() answer; NULL past the end or for an entry
 * that is not a table (the metainfo). */
static const char *listed_table(json_t *tables, size_t i)
{
	json_t *item = json_array_get(json_object_get(tables, "nftables"), i);

	return json_string_value(json_object_get(json_object_get(item, "table"), "name"));
}

static size_t listed_count(json_t *tables)
{
	return json_array_size(json_object_get(tables, "nftables"));
}

/* Whether a list_tables() answer names table `name`. */
static bool listed(json_t *tables, const char *name)
{
	size_t i;

	for (i = 0; i < listed_count(tables); i++) {
		const char *n = listed_table(tables, i);

		if (n != NULL && strcmp(n, name) == 0)
			return true;
	}
	return false;
}

/* Puts back the table of every link that was live before the listing and is not in it (an
 * `nft flush ruleset`, a firewall reload): without it the guest's traffic is not filtered. */
static void restore_missing(struct egress *e, json_t *tables, uint64_t listed_at)
{
	struct egress_link *l;

	for (l = e->links; l != NULL; l = l->next) {
		struct ember_error *err = NULL;
		char name[96];

		table_name(e, l->id, name, sizeof(name));
		if (l->seq > listed_at || listed(tables, name))
			continue;
		if (table_apply(e, l, &l->policy, &err) < 0) {
			log_event(LOG_ERROR, l->id, "net.table_lost", -1, "its table `%s` is gone "
				  "and could not be made again: %s", name, err->message);
			ember_error_free(&err);
		} else {
			log_event(LOG_WARN, l->id, "net.table_restored", -1, "its table `%s` was "
				  "removed by something else; made it again", name);
		}
	}
}

static void *watch_main(void *arg)
{
	struct egress *e = arg;

	pthread_mutex_lock(&e->lock);
	for (;;) {
		int64_t next = time_mono_ms() + EGRESS_WATCH_MS;
		struct ember_error *err = NULL;
		uint64_t listed_at;
		json_t *tables;

		while (!e->stopping && cond_wait_until(&e->watch_cond, &e->lock, next))
			;
		if (e->stopping)
			break;
		if (e->links == NULL)
			continue;
		listed_at = e->link_seq;
		pthread_mutex_unlock(&e->lock);
		tables = list_tables(&err);
		if (tables == NULL) {
			log_event(LOG_WARN, NULL, "net.watch_failed", -1, "%s", err->message);
			ember_error_free(&err);
		}
		pthread_mutex_lock(&e->lock);
		if (tables != NULL)
			restore_missing(e, tables, listed_at);
		json_decref(tables);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

int egress_attach(struct egress *e, const char *sandbox_id, const char *run_dir,
		  const struct net_policy *p, struct egress_link **out, struct ember_error **err)
{
	struct egress_link *l;
	unsigned slot;

	if (egress_check(e, p, err) < 0)
		return -1;
	if (slot_take(e, -1, &slot, err) < 0)
		return -1;
	l = link_new(e, sandbox_id, run_dir, slot);
	if (l == NULL) {
		slot_give(e, slot);
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	}
	if (net_policy_copy(p, &l->policy, err) < 0)
		goto fail;
	l->mode = p->mode;
	l->tap_fd = tap_create(l->tap, err);
	if (l->tap_fd < 0 || link_host_side(e, l, err) < 0 || link_services(e, l, err) < 0)
		goto fail;
	*out = l;
	return 0;
fail:
	link_free(e, l);
	return ember_error_wrap(err, "sandbox network");
}

static int link_file_read(struct egress *e, const char *run_dir, unsigned *slot,
			  bool *persistent, struct net_policy *p, struct ember_error **err)
{
	int persist = 0;
	_cleanup_free_ char *text = NULL;
	char path[PATH_MAX + 32];
	json_t *root = NULL, *policy;
	json_int_t s;
	size_t len;
	int ret = -1;

	snprintf(path, sizeof(path), "%s/%s", run_dir, EGRESS_FILE);
	if (access(path, F_OK) < 0)
		return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no network");
	if (file_read_all(path, EGRESS_FILE_MAX, &text, &len, err) < 0)
		return -1;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	if (root == NULL || json_unpack(root, "{s:I, s:o, s?b}", "slot", &s, "policy", &policy,
					"persistent", &persist) != 0 ||
	    s < 0 || (json_int_t)e->nslots <= s) {
		ember_error_set(err, EMBER_E_INVALID, 0, "%s does not parse", path);
		goto out;
	}
	*slot = (unsigned)s;
	*persistent = persist != 0;
	ret = net_policy_parse(policy, ~0u, p, err);
out:
	json_decref(root);
	return ret;
}

int egress_adopt(struct egress *e, const char *sandbox_id, const char *run_dir,
		 struct egress_link **out, struct ember_error **err)
{
	struct net_policy p = { 0 };
	struct egress_link *l;
	bool persistent = false;
	unsigned slot;

	if (link_file_read(e, run_dir, &slot, &persistent, &p, err) < 0)
		return -1;
	if (egress_check(e, &p, err) < 0 || slot_take(e, (int)slot, &slot, err) < 0) {
		net_policy_release(&p);
		return -1;
	}
	l = link_new(e, sandbox_id, run_dir, slot);
	if (l == NULL) {
		net_policy_release(&p);
		slot_give(e, slot);
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	}
	l->policy = p;
	l->mode = p.mode;
	l->persistent = persistent;
	if (!tap_exists(l->tap)) {
		ember_error_set(err, EMBER_E_GUEST, 0, "its TAP `%s` is gone", l->tap);
		goto fail;
	}
	if (link_services(e, l, err) < 0)
		goto fail;
	*out = l;
	return 0;
fail:
	link_free(e, l);
	return ember_error_wrap(err, "adopt the sandbox network");
}

int egress_link_tap_fd(const struct egress_link *l)
{
	return l->tap_fd;
}

int egress_link_close_tap(struct egress *e, struct egress_link *l, struct ember_error **err)
{
	int ret;

	if (l->tap_fd < 0)
		return 0;
	pthread_mutex_lock(&e->lock);
	l->persistent = true;
	ret = link_file_write(l, &l->policy, err);
	pthread_mutex_unlock(&e->lock);
	if (ret < 0) {
		l->persistent = false;
		return ember_error_wrap(err, "sandbox network");
	}
	close(l->tap_fd);
	l->tap_fd = -1;
	return 0;
}

const char *egress_link_tap_name(const struct egress_link *l)
{
	return l->tap;
}

enum net_mode egress_link_mode(const struct egress_link *l)
{
	return l->mode;
}

void egress_link_hello(const struct egress_link *l, struct proto_hello_net *out)
{
	memset(out, 0, sizeof(*out));
	out->present = true;
	/* Locally administered, unicast, and unique per link: 02:00 + the guest's address. */
	out->mac[0] = 0x02;
	out->mac[1] = 0x00;
	out->mac[2] = (uint8_t)(l->guest_ip >> 24);
	out->mac[3] = (uint8_t)(l->guest_ip >> 16);
	out->mac[4] = (uint8_t)(l->guest_ip >> 8);
	out->mac[5] = (uint8_t)l->guest_ip;
	out->address = l->guest_ip;
	out->prefix = 30;
	out->gateway = l->host_ip;
	out->dns = l->host_ip;
}

static int merge_patch(const struct egress_link *l, const struct net_policy *patch,
		       bool has_deny, struct net_policy *out, struct ember_error **err)
{
	struct net_policy merged = { .mode = l->policy.mode };

	merged.allow = patch->allow;
	merged.nallow = patch->nallow;
	merged.deny = has_deny ? patch->deny : l->policy.deny;
	merged.ndeny = has_deny ? patch->ndeny : l->policy.ndeny;
	return net_policy_copy(&merged, out, err);
}

int egress_update(struct egress *e, struct egress_link *l, const struct net_policy *patch,
		  bool has_deny, struct ember_error **err)
{
	struct net_policy next;
	int ret;

	pthread_mutex_lock(&e->lock);
	ret = merge_patch(l, patch, has_deny, &next, err);
	/* The resolver first: no answer under the old lists may fill the new table's sets. */
	if (ret == 0 && resolver_set_policy(e->resolver, l->id, &next, err) < 0) {
		net_policy_release(&next);
		ret = -1;
	} else if (ret == 0 && table_apply(e, l, &next, err) < 0) {
		/* Back to the old lists (the table is the old one still: nft changes nothing on
		 * a failed transaction). */
		struct ember_error *undo = NULL;

		if (resolver_set_policy(e->resolver, l->id, &l->policy, &undo) < 0)
			ember_error_free(&undo);
		net_policy_release(&next);
		ret = -1;
	} else if (ret == 0) {
		struct ember_error *file_err = NULL;

		net_policy_release(&l->policy);
		l->policy = next;
		if (link_file_write(l, &l->policy, &file_err) < 0) {
			log_event(LOG_WARN, l->id, "net.file_failed", -1, "%s", file_err->message);
			ember_error_free(&file_err);
		}
	}
	pthread_mutex_unlock(&e->lock);
	return ret;
}

static void read_counters(const struct egress *e, struct egress_link *l, json_int_t *rx,
			  json_int_t *tx, json_int_t *dropped)
{
	_cleanup_free_ char *out = NULL;
	struct ember_error *err = NULL;
	char script[160], name[96];
	json_t *root, *items, *item;
	size_t i;

	*rx = *tx = *dropped = 0;
	table_name(e, l->id, name, sizeof(name));
	snprintf(script, sizeof(script), "list counters table inet %s", name);
	if (hostcmd_nft(script, &out, &err) < 0) {
		ember_error_free(&err);
		return;
	}
	root = json_loads(out, 0, NULL);
	items = json_object_get(root, "nftables");
	json_array_foreach(items, i, item) {
		json_t *c = json_object_get(item, "counter");
		const char *cname = json_string_value(json_object_get(c, "name"));

		if (cname == NULL)
			continue;
		if (strcmp(cname, "rx") == 0)
			*rx = json_integer_value(json_object_get(c, "bytes"));
		else if (strcmp(cname, "tx") == 0)
			*tx = json_integer_value(json_object_get(c, "bytes"));
		else if (strcmp(cname, "dropped") == 0)
			*dropped = json_integer_value(json_object_get(c, "packets"));
	}
	json_decref(root);
}

json_t *egress_link_json(struct egress *e, struct egress_link *l)
{
	char addr[INET_ADDRSTRLEN], gw[INET_ADDRSTRLEN];
	json_int_t rx, tx, dropped;
	json_t *obj;

	read_counters(e, l, &rx, &tx, &dropped);
	ip_text(l->guest_ip, addr);
	ip_text(l->host_ip, gw);
	pthread_mutex_lock(&e->lock);
	obj = net_policy_to_json(&l->policy);
	pthread_mutex_unlock(&e->lock);
	if (obj == NULL ||
	    json_object_update_new(obj, json_pack("{s:s, s:s, s:I, s:I, s:I}", "address", addr,
					      "gateway", gw, "rx_bytes", rx, "tx_bytes", tx,
					      "dropped", dropped)) < 0) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

void egress_detach(struct egress *e, struct egress_link *l)
{
	char path[PATH_MAX + 32];

	if (l == NULL)
		return;
	/* Off the watch's list first, or it would make the table again. */
	link_unregister(e, l);
	resolver_remove(e->resolver, l->id);
	table_delete(e, l->id);
	snprintf(path, sizeof(path), "%s/%s", l->run_dir, EGRESS_FILE);
	unlink(path);
	if (l->tap_fd >= 0) {
		close(l->tap_fd);
		l->tap_fd = -1;
	}
	/* Persistent (its VMM opened it by name), or made persistent by a driver whose VMM then
	 * failed before egress_link_close_tap(): a non-persistent TAP is gone with the descriptor
	 * once its VMM has stopped. */
	if (l->persistent || tap_exists(l->tap))
		tap_remove(l->id, l->tap);
	link_free(e, l);
}

void egress_forget(struct egress *e, struct egress_link *l)
{
	if (l == NULL)
		return;
	link_unregister(e, l);
	resolver_remove(e->resolver, l->id);
	link_free(e, l);
}

int egress_dummy_tap(struct egress *e, struct ember_error **err)
{
	char name[IFNAMSIZ] = TAP_PREFIX "t%d";
	struct ember_error *v6_err = NULL;
	int fd;

	if (!e->enabled)
		return ember_error_set(err, EMBER_E_INVALID, 0, "no --egress-uplink");
	fd = tap_create(name, err);
	if (fd >= 0 && net_sysctl_set("ipv6", name, "disable_ipv6", "1", &v6_err) < 0)
		ember_error_free(&v6_err);
	return fd;
}

/* Whether name is one of this daemon's sandbox TAPs (`emb<tag>s<N>`) whose slot no adopted
 * link holds. */
static bool stray_tap(struct egress *e, const char *name)
{
	char prefix[16], *end;
	unsigned long slot;
	bool stray;

	snprintf(prefix, sizeof(prefix), TAP_PREFIX "%ss", e->tag);
	if (strncmp(name, prefix, strlen(prefix)) != 0)
		return false;
	name += strlen(prefix);
	if (*name < '0' || *name > '9')
		return false;
	slot = strtoul(name, &end, 10);
	if (*end != '\0' || slot >= e->nslots)
		return false;
	pthread_mutex_lock(&e->lock);
	stray = e->slots == NULL || !e->slots[slot];
	pthread_mutex_unlock(&e->lock);
	return stray;
}

/* Deletes the persistent TAPs (a Firecracker sandbox's) of slots no recovered sandbox uses. A
 * TAP a VMM still holds, or a non-persistent one, is not deleted (TUNSETIFF fails with EBUSY
 * on it, or it goes with its descriptors anyway). Returns how many. */
static unsigned sweep_taps(struct egress *e)
{
	DIR *dir = opendir("/sys/class/net");
	struct dirent *ent;
	unsigned removed = 0;

	if (dir == NULL)
		return 0;
	while ((ent = readdir(dir)) != NULL) {
		struct ember_error *err = NULL;

		if (!stray_tap(e, ent->d_name))
			continue;
		if (tap_delete_by_name(ent->d_name, &err) == 0)
			removed++;
		else
			ember_error_free(&err);
	}
	closedir(dir);
	return removed;
}

unsigned egress_sweep(struct egress *e, const char *const *keep, size_t nkeep)
{
	struct ember_error *err = NULL;
	unsigned removed = 0;
	char prefix[32];
	json_t *root;
	size_t i, k;

	snprintf(prefix, sizeof(prefix), "%s%s_", EGRESS_TABLE_PREFIX, e->tag);
	removed += sweep_taps(e);
	root = list_tables(&err);
	if (root == NULL) {
		ember_error_free(&err);
		return removed;
	}
	for (i = 0; i < listed_count(root); i++) {
		const char *name = listed_table(root, i);
		const char *id;
		bool kept = false;

		if (name == NULL || strncmp(name, prefix, strlen(prefix)) != 0)
			continue;
		id = name + strlen(prefix);
		for (k = 0; k < nkeep && !kept; k++)
			kept = strcmp(keep[k], id) == 0;
		if (kept)
			continue;
		table_delete(e, id);
		removed++;
	}
	json_decref(root);
	return removed;
}
