/* messages.c - strict JSON encoders/decoders for the control messages. */
#include "proto/messages.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"
#include "util/cleanup.h"
#include "util/hex.h"
#include "util/jsonutil.h"
#include "util/text.h"

#define KIND EMBER_E_PROTOCOL

char *proto_json_dump(json_t *obj, size_t *len, struct ember_error **err)
{
	char *text;

	if (obj == NULL) {
		ember_error_set(err, EMBER_E_INTERNAL, 0, "out of memory building a message");
		return NULL;
	}
	text = json_dump_compact(obj, len, err);
	json_decref(obj);
	return text;
}

/* Sandbox ids travel in both directions: keep them to a safe alphabet. */
static int check_id(const char *id, const char *field, struct ember_error **err)
{
	const char *p;

	for (p = id; *p != '\0'; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ||
		      *p == '-'))
			return ember_error_set(err, KIND, 0, "field `%s` has a character outside "
					       "[a-z0-9_-]", field);
	}
	return 0;
}

/* --- HELLO's net (version 5) --- */

#define IPV4_TEXT_MAX 15 /* "255.255.255.255" */
#define MAC_TEXT_LEN 17  /* "02:00:0a:e7:00:02" */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* A decimal number of 1..max_digits digits at *p, without a leading zero unless it is "0";
 * advances *p past it. */
static bool parse_decimal(const char **p, const char *end, unsigned max_digits, unsigned *out)
{
	const char *start = *p;
	unsigned v = 0;

	while (*p < end && is_digit(**p) && (unsigned)(*p - start) < max_digits) {
		v = v * 10 + (unsigned)(**p - '0');
		(*p)++;
	}
	if (*p == start || (*p < end && is_digit(**p)) || (*p - start > 1 && *start == '0'))
		return false;
	*out = v;
	return true;
}

/* Exactly four dotted decimal octets (no leading zeros, no blanks, nothing after) up to end. */
static bool parse_ipv4(const char **p, const char *end, uint32_t *out)
{
	uint32_t addr = 0;
	unsigned octet;
	int i;

	for (i = 0; i < 4; i++) {
		if (i > 0) {
			if (*p >= end || **p != '.')
				return false;
			(*p)++;
		}
		if (!parse_decimal(p, end, 3, &octet) || octet > 255)
			return false;
		addr = (addr << 8) | octet;
	}
	*out = addr;
	return true;
}

static int get_ipv4(json_t *obj, const char *key, bool with_prefix, uint32_t *addr,
		    uint8_t *prefix, struct ember_error **err)
{
	const char *text, *p, *end;
	size_t len;
	unsigned bits = 32;

	if (json_get_string(obj, key, true, IPV4_TEXT_MAX + 3, &text, &len, KIND, err) < 0)
		return -1;
	p = text;
	end = text + len;
	if (!parse_ipv4(&p, end, addr))
		goto bad;
	if (with_prefix) {
		if (p >= end || *p != '/')
			goto bad;
		p++;
		if (!parse_decimal(&p, end, 2, &bits))
			goto bad;
		*prefix = (uint8_t)bits;
	}
	if (p != end)
		goto bad;
	return 0;
bad:
	return ember_error_set(err, KIND, 0, "field `net.%s` must be %s", key,
			       with_prefix ? "a dotted-quad IPv4 address with a /prefix"
					   : "a dotted-quad IPv4 address");
}

static int get_mac(json_t *obj, uint8_t mac[6], struct ember_error **err)
{
	const char *text;
	size_t len, i;

	if (json_get_string(obj, "mac", true, MAC_TEXT_LEN, &text, &len, KIND, err) < 0)
		return -1;
	if (len != MAC_TEXT_LEN)
		goto bad;
	for (i = 0; i < 6; i++) {
		if (i > 0 && text[3 * i - 1] != ':')
			goto bad;
		if (hex_decode(text + 3 * i, 2, mac + i, 1) != 1)
			goto bad;
	}
	return 0;
bad:
	return ember_error_set(err, KIND, 0, "field `net.mac` must be six lowercase hex bytes "
			       "separated by colons");
}

static uint32_t prefix_mask(uint8_t prefix)
{
	return prefix == 0 ? 0 : UINT32_MAX << (32 - prefix);
}

int proto_hello_net_check(const struct proto_hello_net *net, struct ember_error **err)
{
	static const uint8_t zero[6];
	uint32_t mask, host;

	if (!net->present)
		return 0;
	if ((net->mac[0] & 1) != 0 || memcmp(net->mac, zero, sizeof(zero)) == 0)
		return ember_error_set(err, KIND, 0, "field `net.mac` must be a unicast address "
				       "(not multicast, not all zero)");
	if (net->prefix < PROTO_NET_PREFIX_MIN || net->prefix > PROTO_NET_PREFIX_MAX)
		return ember_error_set(err, KIND, 0, "field `net.address` must have a prefix of "
				       "/%d to /%d", PROTO_NET_PREFIX_MIN, PROTO_NET_PREFIX_MAX);
	mask = prefix_mask(net->prefix);
	host = net->address & ~mask;
	if (host == 0 || host == ~mask)
		return ember_error_set(err, KIND, 0, "field `net.address` is the network or "
				       "broadcast address of its subnet");
	host = net->gateway & ~mask;
	if ((net->gateway & mask) != (net->address & mask) || host == 0 || host == ~mask ||
	    net->gateway == net->address)
		return ember_error_set(err, KIND, 0, "field `net.gateway` must be another host of "
				       "the subnet of `net.address`");
	if (net->dns == 0 || net->dns == UINT32_MAX)
		return ember_error_set(err, KIND, 0, "field `net.dns` must be a host address");
	return 0;
}

static void format_ipv4(uint32_t addr, char out[IPV4_TEXT_MAX + 1])
{
	snprintf(out, IPV4_TEXT_MAX + 1, "%u.%u.%u.%u", (unsigned)(addr >> 24),
		 (unsigned)(addr >> 16) & 255u, (unsigned)(addr >> 8) & 255u, (unsigned)addr & 255u);
}

static json_t *encode_net(const struct proto_hello_net *net)
{
	char mac[MAC_TEXT_LEN + 1], address[IPV4_TEXT_MAX + 4], gateway[IPV4_TEXT_MAX + 1];
	char dns[IPV4_TEXT_MAX + 1];

	snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", net->mac[0], net->mac[1],
		 net->mac[2], net->mac[3], net->mac[4], net->mac[5]);
	format_ipv4(net->address, address);
	snprintf(address + strlen(address), sizeof(address) - strlen(address), "/%u",
		 (unsigned)net->prefix);
	format_ipv4(net->gateway, gateway);
	format_ipv4(net->dns, dns);
	return json_pack("{s:s, s:s, s:s, s:s}", "mac", mac, "address", address, "gateway",
			 gateway, "dns", dns);
}

static int decode_net(json_t *root, struct proto_hello_net *net, struct ember_error **err)
{
	static const char *const keys[] = { "mac", "address", "gateway", "dns", NULL };
	json_t *obj = json_object_get(root, "net");

	if (obj == NULL)
		return 0;
	if (!json_is_object(obj))
		return ember_error_set(err, KIND, 0, "field `net` must be an object");
	if (json_check_keys(obj, keys, KIND, err) < 0 || get_mac(obj, net->mac, err) < 0 ||
	    get_ipv4(obj, "address", true, &net->address, &net->prefix, err) < 0 ||
	    get_ipv4(obj, "gateway", false, &net->gateway, NULL, err) < 0 ||
	    get_ipv4(obj, "dns", false, &net->dns, NULL, err) < 0)
		return -1;
	net->present = true;
	return proto_hello_net_check(net, err);
}

/* --- HELLO's mounts (version 7) --- */

static const char *const mount_fs_names[] = {
	[PROTO_MOUNT_9P] = "9p",
	[PROTO_MOUNT_SQUASHFS] = "squashfs",
};

/* Directories a mount may be neither on nor under: the system's own (a host tree there would
 * replace the guest's programs, libraries or configuration, or the kernel's pseudo file
 * systems), /run (the agent keeps code files in /run/emberd) and /var/run (its usual alias). */
static const char *const reserved_dirs[] = {
	"/proc", "/sys", "/dev", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
	"/libx32", "/boot", "/run", "/var/run",
};
#define RESERVED_PREFIX "/emberd" /* any top-level name starting so: kept for emberd itself */
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

bool proto_path_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return path[0] == '/';
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static bool mount_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' ||
	       c == '_' || c == '@' || c == '+' || c == '=' || c == ',' || c == '-';
}

/* Records why a path is refused; returns false. */
static bool refuse_path(const char **why, const char *text)
{
	if (why != NULL)
		*why = text;
	return false;
}

bool proto_mount_path_valid(const char *path, const char **why)
{
	const char *p, *start;
	size_t i, len = strnlen(path, PROTO_MOUNT_PATH_MAX + 1);

	if (path[0] != '/')
		return refuse_path(why, "must be an absolute path");
	if (len > PROTO_MOUNT_PATH_MAX)
		return refuse_path(why, "is longer than " STRINGIFY(PROTO_MOUNT_PATH_MAX) " bytes");
	if (len == 1)
		return refuse_path(why, "must not be `/`");
	if (path[len - 1] == '/')
		return refuse_path(why, "must not end with `/`");
	for (p = path; *p != '\0';) {
		start = ++p; /* past the '/' */
		while (*p != '\0' && *p != '/') {
			if (!mount_name_char(*p))
				return refuse_path(why, "may only have the characters A-Z a-z 0-9 "
						    ". _ @ + = , - between its slashes");
			p++;
		}
		if (p == start || (p - start == 1 && start[0] == '.') ||
		    (p - start == 2 && start[0] == '.' && start[1] == '.'))
			return refuse_path(why, "must not have an empty, `.` or `..` component");
		if (start[0] == '-')
			return refuse_path(why, "must not have a component starting with `-`");
	}
	for (i = 0; i < ARRAY_SIZE(reserved_dirs); i++)
		if (proto_path_within(path, reserved_dirs[i]))
			return refuse_path(why, "must not be a system directory or under one (/proc, "
					    "/sys, /dev, /etc, /usr, /bin, /sbin, /lib*, /boot, "
					    "/run, /var/run)");
	if (strncmp(path, RESERVED_PREFIX, strlen(RESERVED_PREFIX)) == 0)
		return refuse_path(why, "must not start with `/emberd` (kept for emberd itself)");
	return true;
}

/* Whether source is prefix followed by one character of first..last. */
static bool source_is(const char *source, const char *prefix, char first, char last)
{
	size_t n = strlen(prefix);

	return strncmp(source, prefix, n) == 0 && source[n] >= first && source[n] <= last &&
	       source[n + 1] == '\0';
}

static int check_mount(const struct proto_hello_mount *m, size_t i, struct ember_error **err)
{
	const char *why;

	switch (m->fs) {
	case PROTO_MOUNT_9P:
		if (!source_is(m->source, "emberd", '0', '7'))
			return ember_error_set(err, KIND, 0, "field `mounts[%zu].source` must be a 9p "
					       "tag emberd0..emberd7", i);
		break;
	case PROTO_MOUNT_SQUASHFS:
		if (!source_is(m->source, "vd", 'b', 'i'))
			return ember_error_set(err, KIND, 0, "field `mounts[%zu].source` must be a "
					       "disk vdb..vdi", i);
		if (!m->readonly)
			return ember_error_set(err, KIND, 0, "field `mounts[%zu].readonly` must be "
					       "true for squashfs", i);
		break;
	default:
		return ember_error_set(err, KIND, 0, "field `mounts[%zu].fs` must be \"9p\" or "
				       "\"squashfs\"", i);
	}
	if (!proto_mount_path_valid(m->path, &why))
		return ember_error_set(err, KIND, 0, "field `mounts[%zu].path` %s", i, why);
	return 0;
}

int proto_hello_mounts_check(const struct proto_hello_mounts *mounts, struct ember_error **err)
{
	const struct proto_hello_mount *a, *b;
	size_t i, j;

	if (mounts->n > PROTO_MOUNTS_MAX)
		return ember_error_set(err, KIND, 0, "field `mounts` has more than %d entries",
				       PROTO_MOUNTS_MAX);
	for (i = 0; i < mounts->n; i++) {
		a = &mounts->m[i];
		/* Fixed-size fields of a caller's struct: a missing NUL is a bug, not input. */
		if (strnlen(a->source, sizeof(a->source)) == sizeof(a->source) ||
		    strnlen(a->path, sizeof(a->path)) == sizeof(a->path))
			return ember_error_set(err, KIND, 0, "field `mounts[%zu]` is not terminated",
					       i);
		if (check_mount(a, i, err) < 0)
			return -1;
		for (j = 0; j < i; j++) {
			b = &mounts->m[j];
			if (a->fs == b->fs && strcmp(a->source, b->source) == 0)
				return ember_error_set(err, KIND, 0, "field `mounts[%zu].source` is "
						       "the same as mounts[%zu]'s", i, j);
			if (proto_path_within(a->path, b->path) || proto_path_within(b->path, a->path))
				return ember_error_set(err, KIND, 0, "field `mounts[%zu].path` is the "
						       "same as, under or above mounts[%zu].path",
						       i, j);
		}
	}
	return 0;
}

static json_t *encode_mounts(const struct proto_hello_mounts *mounts)
{
	json_t *arr = json_array();
	size_t i;

	if (arr == NULL)
		return NULL;
	for (i = 0; i < mounts->n; i++) {
		const struct proto_hello_mount *m = &mounts->m[i];

		if (json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:b}", "fs",
							 mount_fs_names[m->fs], "source",
							 m->source, "path", m->path, "readonly",
							 m->readonly)) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static int decode_mount(json_t *obj, struct proto_hello_mount *m, struct ember_error **err)
{
	static const char *const keys[] = { "fs", "source", "path", "readonly", NULL };
	const char *fs, *source, *path;
	size_t fs_len, source_len, path_len;

	if (!json_is_object(obj))
		return ember_error_set(err, KIND, 0, "must be an object");
	if (json_check_keys(obj, keys, KIND, err) < 0 ||
	    json_get_string(obj, "fs", true, 16, &fs, &fs_len, KIND, err) < 0 ||
	    json_get_string(obj, "source", true, sizeof(m->source) - 1, &source, &source_len, KIND,
			    err) < 0 ||
	    json_get_string(obj, "path", true, PROTO_MOUNT_PATH_MAX, &path, &path_len, KIND,
			    err) < 0 ||
	    json_get_bool(obj, "readonly", true, &m->readonly, KIND, err) < 0)
		return -1;
	if (strcmp(fs, mount_fs_names[PROTO_MOUNT_9P]) == 0)
		m->fs = PROTO_MOUNT_9P;
	else if (strcmp(fs, mount_fs_names[PROTO_MOUNT_SQUASHFS]) == 0)
		m->fs = PROTO_MOUNT_SQUASHFS;
	else
		return ember_error_set(err, KIND, 0, "field `fs` must be \"9p\" or \"squashfs\"");
	memcpy(m->source, source, source_len + 1);
	memcpy(m->path, path, path_len + 1);
	return 0;
}

/* The optional `mounts` array: absent is none; present, it has 1..PROTO_MOUNTS_MAX entries
 * (the encoder leaves an empty one out) that pass proto_hello_mounts_check. */
static int decode_mounts(json_t *root, struct proto_hello_mounts *mounts, struct ember_error **err)
{
	json_t *arr = json_object_get(root, "mounts"), *item;
	size_t i;

	if (arr == NULL)
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) == 0)
		return ember_error_set(err, KIND, 0, "field `mounts` must be a non-empty array");
	if (json_array_size(arr) > PROTO_MOUNTS_MAX)
		return ember_error_set(err, KIND, 0, "field `mounts` has more than %d entries",
				       PROTO_MOUNTS_MAX);
	json_array_foreach(arr, i, item) {
		if (decode_mount(item, &mounts->m[i], err) < 0)
			return ember_error_wrap(err, "mounts[%zu]", i);
	}
	mounts->n = json_array_size(arr);
	return proto_hello_mounts_check(mounts, err);
}

/* --- HELLO --- */

char *proto_hello_encode(const struct proto_hello *msg, size_t *len, struct ember_error **err)
{
	char entropy[2 * PROTO_ENTROPY_MAX + 1];
	json_t *obj;

	if (proto_hello_net_check(&msg->net, err) < 0 ||
	    proto_hello_mounts_check(&msg->mounts, err) < 0)
		return NULL;
	hex_encode(msg->entropy, msg->entropy_len, entropy);
	obj = json_pack("{s:I, s:s, s:I, s:s}", "version", (json_int_t)msg->version, "sandbox_id",
			msg->sandbox_id, "time_unix_ns", (json_int_t)msg->time_unix_ns, "entropy",
			entropy);
	/* Version 5's net only when present: an older agent's strict decoder never sees it. */
	if (obj != NULL && msg->net.present &&
	    json_object_set_new(obj, "net", encode_net(&msg->net)) < 0) {
		json_decref(obj);
		obj = NULL;
	}
	/* Version 7's mounts likewise only when there are some. */
	if (obj != NULL && msg->mounts.n > 0 &&
	    json_object_set_new(obj, "mounts", encode_mounts(&msg->mounts)) < 0) {
		json_decref(obj);
		obj = NULL;
	}
	return proto_json_dump(obj, len, err);
}

int proto_hello_decode(const uint8_t *buf, size_t len, struct proto_hello *msg,
		       struct ember_error **err)
{
	static const char *const keys[] = { "version", "sandbox_id", "time_unix_ns", "entropy",
					    "net", "mounts", NULL };
	json_t *root = NULL;
	uint64_t version;
	int64_t time_ns = 0;
	const char *id, *entropy;
	size_t id_len, entropy_len;
	long n;
	int ret = -1;

	memset(msg, 0, sizeof(*msg));
	if (json_parse_object(buf, len, &root, KIND, err) < 0)
		return -1;
	if (json_check_keys(root, keys, KIND, err) < 0 ||
	    json_get_uint(root, "version", true, 1, UINT32_MAX, &version, KIND, err) < 0 ||
	    json_get_string(root, "sandbox_id", true, PROTO_ID_MAX, &id, &id_len, KIND, err) < 0 ||
	    check_id(id, "sandbox_id", err) < 0 ||
	    json_get_int(root, "time_unix_ns", true, 0, INT64_MAX, &time_ns, KIND, err) < 0 ||
	    json_get_string(root, "entropy", true, 2 * PROTO_ENTROPY_MAX, &entropy, &entropy_len,
			    KIND, err) < 0 ||
	    decode_net(root, &msg->net, err) < 0 || decode_mounts(root, &msg->mounts, err) < 0)
		goto out;
	n = hex_decode(entropy, entropy_len, msg->entropy, sizeof(msg->entropy));
	if (n < 0) {
		ember_error_set(err, KIND, 0, "field `entropy` must be lowercase hex");
		goto out;
	}
	msg->version = (uint32_t)version;
	memcpy(msg->sandbox_id, id, id_len + 1);
	msg->time_unix_ns = time_ns;
	msg->entropy_len = (size_t)n;
	ret = 0;
out:
	json_decref(root);
	return ret;
}

char *proto_ready_encode(const struct proto_ready *msg, size_t *len, struct ember_error **err)
{
	return proto_json_dump(json_pack("{s:I, s:s, s:s, s:I}", "version", (json_int_t)msg->version,
				       "agent", msg->agent, "sandbox_id", msg->sandbox_id,
				       "uptime_ms", (json_int_t)msg->uptime_ms),
			     len, err);
}

int proto_ready_decode(const uint8_t *buf, size_t len, struct proto_ready *msg,
		       struct ember_error **err)
{
	static const char *const keys[] = { "version", "agent", "sandbox_id", "uptime_ms", NULL };
	json_t *root = NULL;
	uint64_t version, uptime;
	const char *agent, *id;
	size_t agent_len, id_len;
	int ret = -1;

	memset(msg, 0, sizeof(*msg));
	if (json_parse_object(buf, len, &root, KIND, err) < 0)
		return -1;
	if (json_check_keys(root, keys, KIND, err) < 0 ||
	    json_get_uint(root, "version", true, 1, UINT32_MAX, &version, KIND, err) < 0 ||
	    json_get_string(root, "agent", true, sizeof(msg->agent) - 1, &agent, &agent_len, KIND,
			    err) < 0 ||
	    json_get_string(root, "sandbox_id", true, PROTO_ID_MAX, &id, &id_len, KIND, err) < 0 ||
	    check_id(id, "sandbox_id", err) < 0 ||
	    json_get_uint(root, "uptime_ms", true, 0, UINT64_MAX >> 1, &uptime, KIND, err) < 0)
		goto out;
	msg->version = (uint32_t)version;
	memcpy(msg->agent, agent, agent_len + 1);
	memcpy(msg->sandbox_id, id, id_len + 1);
	msg->uptime_ms = uptime;
	ret = 0;
out:
	json_decref(root);
	return ret;
}

json_t *proto_json_strings(char *const *items, size_t count)
{
	json_t *arr = json_array();
	size_t i;

	if (arr == NULL)
		return NULL;
	for (i = 0; i < count; i++) {
		if (json_array_append_new(arr, json_string(items[i])) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

char *proto_exec_encode(const struct proto_exec *msg, size_t *len, struct ember_error **err)
{
	json_t *argv = proto_json_strings(msg->argv, msg->argc);
	json_t *env = proto_json_strings(msg->env, msg->envc);
	json_t *code = json_stringn(msg->code, msg->code_len);
	json_t *obj;

	if (argv == NULL || env == NULL || code == NULL) {
		json_decref(argv);
		json_decref(env);
		json_decref(code);
		ember_error_set(err, EMBER_E_INVALID, 0,
				"exec request has a string that is not valid UTF-8");
		return NULL;
	}
	obj = json_pack("{s:o, s:o, s:o, s:I, s:I, s:I, s:b}", "argv", argv, "env", env, "code",
			code, "timeout_ms", (json_int_t)msg->timeout_ms, "output_limit",
			(json_int_t)msg->output_limit, "max_processes",
			(json_int_t)msg->max_processes, "stdin_follows", msg->stdin_follows);
	/* Version-3 fields only when set: an older agent's strict decoder never sees them. */
	if (obj != NULL && msg->background)
		json_object_set_new(obj, "background", json_true());
	if (obj != NULL && msg->command)
		json_object_set_new(obj, "command", json_true());
	if (obj != NULL && msg->cwd != NULL) {
		json_t *cwd = json_string(msg->cwd);

		if (cwd == NULL) {
			json_decref(obj);
			ember_error_set(err, EMBER_E_INVALID, 0, "cwd is not valid UTF-8");
			return NULL;
		}
		json_object_set_new(obj, "cwd", cwd);
	}
	/* Version-4 fields, likewise. */
	if (obj != NULL && msg->context != NULL)
		json_object_set_new(obj, "context", json_string(msg->context));
	if (obj != NULL && msg->fresh_interpreter)
		json_object_set_new(obj, "fresh_interpreter", json_true());
	/* Version 6, likewise. */
	if (obj != NULL && msg->code_argument)
		json_object_set_new(obj, "code_argument", json_true());
	return proto_json_dump(obj, len, err);
}

void proto_exec_release(struct proto_exec *msg)
{
	size_t i;

	for (i = 0; i < msg->argc; i++)
		free(msg->argv[i]);
	for (i = 0; i < msg->envc; i++)
		free(msg->env[i]);
	free(msg->code);
	free(msg->cwd);
	free(msg->context);
	memset(msg, 0, sizeof(*msg));
}

/* Copies a JSON array of bounded strings into out[] (NULL-terminated). */
int proto_json_copy_strings(json_t *root, const char *key, size_t max_count, bool need_one,
			bool env_style, char **out, size_t *count, struct ember_error **err)
{
	json_t *arr = json_object_get(root, key);
	size_t i;

	if (!json_is_array(arr))
		return ember_error_set(err, KIND, 0, "field `%s` must be an array of strings", key);
	if (json_array_size(arr) > max_count || (need_one && json_array_size(arr) == 0))
		return ember_error_set(err, KIND, 0, "field `%s` must have %s%zu entries", key,
				       need_one ? "1 to " : "at most ", max_count);
	for (i = 0; i < json_array_size(arr); i++) {
		json_t *v = json_array_get(arr, i);
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);

		if (!json_is_string(v) || n > PROTO_STRING_MAX || strlen(s) != n || n == 0)
			return ember_error_set(err, KIND, 0,
					       "field `%s` entry %zu must be a non-empty string of "
					       "at most %u bytes without NUL", key, i,
					       PROTO_STRING_MAX);
		if (env_style && (strchr(s, '=') == NULL || s[0] == '='))
			return ember_error_set(err, KIND, 0, "field `%s` entry %zu is not NAME=value",
					       key, i);
		out[i] = strdup(s);
		if (out[i] == NULL)
			return ember_error_set(err, EMBER_E_INTERNAL, 0, "out of memory");
		*count = i + 1;
	}
	out[*count] = NULL;
	return 0;
}

int proto_exec_decode(const uint8_t *buf, size_t len, struct proto_exec *msg,
		      struct ember_error **err)
{
	static const char *const keys[] = { "argv", "env", "code", "timeout_ms", "output_limit",
					    "max_processes", "stdin_follows", "background", "command",
					    "cwd", "context", "fresh_interpreter", "code_argument",
					    NULL };
	json_t *root = NULL;
	uint64_t timeout, limit, nproc;
	const char *code, *cwd = NULL, *context = NULL;
	size_t code_len, cwd_len = 0, context_len = 0;
	bool stdin_follows = false;

	memset(msg, 0, sizeof(*msg));
	if (json_parse_object(buf, len, &root, KIND, err) < 0)
		return -1;
	if (json_check_keys(root, keys, KIND, err) < 0 ||
	    proto_json_copy_strings(root, "argv", PROTO_ARGV_MAX, true, false, msg->argv, &msg->argc, err) < 0 ||
	    proto_json_copy_strings(root, "env", PROTO_ENV_MAX, false, true, msg->env, &msg->envc, err) < 0 ||
	    json_get_string(root, "code", true, PROTO_CODE_MAX, &code, &code_len, KIND, err) < 0 ||
	    json_get_uint(root, "timeout_ms", true, 1, PROTO_TIMEOUT_MS_MAX, &timeout, KIND,
			  err) < 0 ||
	    json_get_uint(root, "output_limit", true, 0, PROTO_OUTPUT_LIMIT_MAX, &limit, KIND,
			  err) < 0 ||
	    json_get_uint(root, "max_processes", true, 1, PROTO_MAX_PROCESSES_MAX, &nproc, KIND,
			  err) < 0 ||
	    json_get_bool(root, "stdin_follows", true, &stdin_follows, KIND, err) < 0 ||
	    json_get_bool(root, "background", false, &msg->background, KIND, err) < 0 ||
	    json_get_bool(root, "command", false, &msg->command, KIND, err) < 0 ||
	    json_get_string(root, "cwd", false, PROTO_STRING_MAX, &cwd, &cwd_len, KIND, err) < 0 ||
	    json_get_string(root, "context", false, PROTO_CONTEXT_ID_MAX, &context, &context_len,
			    KIND, err) < 0 ||
	    json_get_bool(root, "fresh_interpreter", false, &msg->fresh_interpreter, KIND, err) < 0 ||
	    json_get_bool(root, "code_argument", false, &msg->code_argument, KIND, err) < 0)
		goto fail;
	if (msg->code_argument && (msg->command || context != NULL || code_len > PROTO_CODE_ARG_MAX)) {
		ember_error_set(err, KIND, 0, "field `code_argument` needs `code` of at most %u bytes, "
				"without `command` or `context`", PROTO_CODE_ARG_MAX);
		goto fail;
	}
	if (context != NULL && (!proto_context_id_valid(context) || msg->background ||
				msg->command || stdin_follows)) {
		ember_error_set(err, KIND, 0, "field `context` must be a context id, without "
				"`background`, `command` or stdin");
		goto fail;
	}
	if (context != NULL && (msg->context = strdup(context)) == NULL) {
		ember_error_set(err, EMBER_E_INTERNAL, 0, "out of memory");
		goto fail;
	}
	if (msg->command && code_len > 0) {
		ember_error_set(err, KIND, 0, "field `code` must be empty with `command`");
		goto fail;
	}
	if (cwd != NULL && cwd_len == 0) {
		ember_error_set(err, KIND, 0, "field `cwd` must not be empty");
		goto fail;
	}
	if (cwd != NULL && (msg->cwd = strdup(cwd)) == NULL) {
		ember_error_set(err, EMBER_E_INTERNAL, 0, "out of memory");
		goto fail;
	}
	msg->code = malloc(code_len + 1);
	if (msg->code == NULL) {
		ember_error_set(err, EMBER_E_INTERNAL, 0, "out of memory");
		goto fail;
	}
	memcpy(msg->code, code, code_len + 1);
	msg->code_len = code_len;
	msg->timeout_ms = (uint32_t)timeout;
	msg->output_limit = limit;
	msg->max_processes = (uint32_t)nproc;
	msg->stdin_follows = stdin_follows;
	json_decref(root);
	return 0;
fail:
	json_decref(root);
	proto_exec_release(msg);
	return -1;
}

char *proto_exit_encode(const struct proto_exit *msg, size_t *len, struct ember_error **err)
{
	json_t *obj = json_pack("{s:i, s:i, s:b, s:b, s:I, s:b, s:b}", "exit_code",
				msg->exit_code, "signal", msg->signal, "timed_out", msg->timed_out,
				"oom_killed", msg->oom_killed, "duration_ms",
				(json_int_t)msg->duration_ms, "stdout_truncated",
				msg->stdout_truncated, "stderr_truncated", msg->stderr_truncated);
	json_t *context;

	if (obj != NULL && msg->has_timing)
		json_object_set_new(obj, "timing",
				    json_pack("{s:I, s:I, s:I}", "queued_us",
					      (json_int_t)msg->queued_us, "spawn_us",
					      (json_int_t)msg->spawn_us, "run_us",
					      (json_int_t)msg->run_us));
	if (obj != NULL && msg->context.present) {
		context = proto_outcome_to_json(&msg->context, err);
		if (context == NULL) {
			json_decref(obj);
			return NULL;
		}
		json_object_set_new(obj, "context", context);
	}
	return proto_json_dump(obj, len, err);
}

void proto_exit_release(struct proto_exit *msg)
{
	proto_outcome_release(&msg->context);
}

int proto_exit_decode(const uint8_t *buf, size_t len, struct proto_exit *msg,
		      struct ember_error **err)
{
	static const char *const keys[] = { "exit_code",        "signal",     "timed_out",
					    "oom_killed",       "duration_ms", "stdout_truncated",
					    "stderr_truncated", "context", "timing", NULL };
	static const char *const timing_keys[] = { "queued_us", "spawn_us", "run_us", NULL };
	json_t *root = NULL, *context, *timing;
	int64_t code, sig;
	uint64_t duration;
	int ret = -1;

	memset(msg, 0, sizeof(*msg));
	if (json_parse_object(buf, len, &root, KIND, err) < 0)
		return -1;
	if (json_check_keys(root, keys, KIND, err) < 0 ||
	    json_get_int(root, "exit_code", true, -1, 255, &code, KIND, err) < 0 ||
	    json_get_int(root, "signal", true, 0, 64, &sig, KIND, err) < 0 ||
	    json_get_bool(root, "timed_out", true, &msg->timed_out, KIND, err) < 0 ||
	    /* optional: agents before it never sent it */
	    json_get_bool(root, "oom_killed", false, &msg->oom_killed, KIND, err) < 0 ||
	    json_get_uint(root, "duration_ms", true, 0, UINT64_MAX >> 1, &duration, KIND, err) < 0 ||
	    json_get_bool(root, "stdout_truncated", true, &msg->stdout_truncated, KIND, err) < 0 ||
	    json_get_bool(root, "stderr_truncated", true, &msg->stderr_truncated, KIND, err) < 0)
		goto out;
	timing = json_object_get(root, "timing");
	if (timing != NULL &&
	    (!json_is_object(timing) || json_check_keys(timing, timing_keys, KIND, err) < 0 ||
	     json_get_uint(timing, "queued_us", true, 0, UINT64_MAX >> 1, &msg->queued_us, KIND,
			   err) < 0 ||
	     json_get_uint(timing, "spawn_us", true, 0, UINT64_MAX >> 1, &msg->spawn_us, KIND,
			   err) < 0 ||
	     json_get_uint(timing, "run_us", true, 0, UINT64_MAX >> 1, &msg->run_us, KIND,
			   err) < 0)) {
		ember_error_set(err, KIND, 0, "field `timing` must be {queued_us, spawn_us, run_us}");
		goto out;
	}
	msg->has_timing = timing != NULL;
	context = json_object_get(root, "context");
	if (context != NULL && proto_outcome_from_json(context, true, &msg->context, err) < 0)
		goto out;
	msg->exit_code = (int32_t)code;
	msg->signal = (int32_t)sig;
	msg->duration_ms = duration;
	ret = 0;
out:
	json_decref(root);
	return ret;
}

char *proto_error_encodev(const char *code, size_t *len, struct ember_error **err,
			  const char *fmt, va_list ap)
{
	char message[sizeof(((struct proto_error_msg *)0)->message)];

	vsnprintf(message, sizeof(message), fmt, ap);
	return proto_error_encode(code, message, len, err);
}

char *proto_error_encode(const char *code, const char *message, size_t *len,
			 struct ember_error **err)
{
	/* Messages may quote hostile input: bytes that are not UTF-8 become U+FFFD, and the text is
	 * cut to what the decoder accepts at a character boundary, so the message survives. */
	char *clean = utf8_lossy(message, strlen(message));
	json_t *msg_str;

	if (clean != NULL)
		utf8_truncate(clean, sizeof(((struct proto_error_msg *)0)->message) - 1);
	msg_str = json_string(clean != NULL ? clean : "(out of memory)");
	free(clean);
	return proto_json_dump(json_pack("{s:s, s:o}", "code", code, "message", msg_str), len, err);
}

int proto_error_decode(const uint8_t *buf, size_t len, struct proto_error_msg *msg,
		       struct ember_error **err)
{
	static const char *const keys[] = { "code", "message", NULL };
	json_t *root = NULL;
	const char *code, *message;
	size_t code_len, message_len;
	int ret = -1;

	memset(msg, 0, sizeof(*msg));
	if (json_parse_object(buf, len, &root, KIND, err) < 0)
		return -1;
	if (json_check_keys(root, keys, KIND, err) < 0 ||
	    json_get_string(root, "code", true, sizeof(msg->code) - 1, &code, &code_len, KIND,
			    err) < 0 ||
	    json_get_string(root, "message", true, sizeof(msg->message) - 1, &message,
			    &message_len, KIND, err) < 0)
		goto out;
	memcpy(msg->code, code, code_len + 1);
	memcpy(msg->message, message, message_len + 1);
	ret = 0;
out:
	json_decref(root);
	return ret;
}

char *proto_started_encode(const struct proto_started *msg, size_t *len,
			   struct ember_error **err)
{
	return proto_json_dump(json_pack("{s:i}", "pid", msg->pid), len, err);
}

int proto_started_decode(const uint8_t *buf, size_t len, struct proto_started *msg,
			 struct ember_error **err)
{
	static const char *const keys[] = { "pid", NULL };
	json_t *root = NULL;
	int64_t pid;
	int ret = -1;

	memset(msg, 0, sizeof(*msg));
	if (json_parse_object(buf, len, &root, KIND, err) < 0)
		return -1;
	if (json_check_keys(root, keys, KIND, err) < 0 ||
	    json_get_int(root, "pid", true, 1, INT32_MAX, &pid, KIND, err) < 0)
		goto out;
	msg->pid = (int32_t)pid;
	ret = 0;
out:
	json_decref(root);
	return ret;
}

char *proto_ps_encode(const struct proto_process *procs, size_t count, size_t *len,
		      struct ember_error **err)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr != NULL && i < count; i++) {
		char state[2] = { procs[i].state, '\0' };
		json_t *comm = json_string(procs[i].comm);

		if (comm == NULL)
			comm = json_string("?");
		if (json_array_append_new(arr, json_pack("{s:i, s:i, s:I, s:s, s:o}", "pid",
							 procs[i].pid, "ppid", procs[i].ppid, "uid",
							 (json_int_t)procs[i].uid, "state", state,
							 "comm", comm)) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	if (arr == NULL) {
		ember_error_set(err, EMBER_E_INTERNAL, 0, "out of memory building a PS reply");
		return NULL;
	}
	return proto_json_dump(json_pack("{s:o}", "processes", arr), len, err);
}

int proto_ps_decode(const uint8_t *buf, size_t len, struct proto_process **procs, size_t *count,
		    struct ember_error **err)
{
	static const char *const keys[] = { "processes", NULL };
	static const char *const proc_keys[] = { "pid", "ppid", "uid", "state", "comm", NULL };
	json_t *root = NULL, *arr;
	struct proto_process *out = NULL;
	size_t i, n;

	if (json_parse_object(buf, len, &root, KIND, err) < 0)
		return -1;
	if (json_check_keys(root, keys, KIND, err) < 0)
		goto fail;
	arr = json_object_get(root, "processes");
	if (!json_is_array(arr) || json_array_size(arr) > PROTO_PS_MAX) {
		ember_error_set(err, KIND, 0, "field `processes` must be an array of at most %d",
				PROTO_PS_MAX);
		goto fail;
	}
	n = json_array_size(arr);
	out = calloc(n + 1, sizeof(*out));
	if (out == NULL) {
		ember_error_set(err, EMBER_E_INTERNAL, 0, "out of memory");
		goto fail;
	}
	for (i = 0; i < n; i++) {
		json_t *p = json_array_get(arr, i);
		int64_t pid, ppid;
		uint64_t uid;
		const char *state, *comm;
		size_t state_len, comm_len;

		if (!json_is_object(p)) {
			ember_error_set(err, KIND, 0, "process %zu is not an object", i);
			goto fail;
		}
		if (json_check_keys(p, proc_keys, KIND, err) < 0 ||
		    json_get_int(p, "pid", true, 1, INT32_MAX, &pid, KIND, err) < 0 ||
		    json_get_int(p, "ppid", true, 0, INT32_MAX, &ppid, KIND, err) < 0 ||
		    json_get_uint(p, "uid", true, 0, UINT32_MAX, &uid, KIND, err) < 0 ||
		    json_get_string(p, "state", true, 1, &state, &state_len, KIND, err) < 0 ||
		    json_get_string(p, "comm", true, sizeof(out[i].comm) - 1, &comm, &comm_len, KIND,
				    err) < 0)
			goto fail;
		if (state_len != 1) {
			ember_error_set(err, KIND, 0, "process %zu has an empty state", i);
			goto fail;
		}
		out[i].pid = (int32_t)pid;
		out[i].ppid = (int32_t)ppid;
		out[i].uid = (uint32_t)uid;
		out[i].state = state[0];
		memcpy(out[i].comm, comm, comm_len + 1);
	}
	json_decref(root);
	*procs = out;
	*count = n;
	return 0;
fail:
	free(out);
	json_decref(root);
	return -1;
}
