/* Unit tests for the JSON control messages (src/proto/messages.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/messages.h"
#include "util/text.h"

#define DECODE(fn, text, msg) fn((const uint8_t *)(text), strlen(text), (msg), NULL)

static void hello_roundtrips_with_entropy(void **state)
{
	struct proto_hello in = { .version = 1, .time_unix_ns = 1234567890123, .entropy_len = 4,
				  .entropy = { 0xde, 0xad, 0xbe, 0xef } };
	struct proto_hello out;
	size_t len;
	char *text;

	(void)state;
	strcpy(in.sandbox_id, "sb_00ff");
	text = proto_hello_encode(&in, &len, NULL);
	assert_non_null(text);
	assert_int_equal(proto_hello_decode((uint8_t *)text, len, &out, NULL), 0);
	assert_string_equal(out.sandbox_id, "sb_00ff");
	assert_int_equal(out.entropy_len, 4);
	assert_memory_equal(out.entropy, in.entropy, 4);
	assert_true(out.time_unix_ns == in.time_unix_ns);
	free(text);
}

static void hello_rejects_bad_fields(void **state)
{
	struct proto_hello h;

	(void)state;
	/* unknown key */
	assert_int_equal(DECODE(proto_hello_decode, "{\"version\":1,\"sandbox_id\":\"a\","
				"\"time_unix_ns\":0,\"entropy\":\"\",\"x\":1}", &h), -1);
	/* odd hex, upper case hex */
	assert_int_equal(DECODE(proto_hello_decode, "{\"version\":1,\"sandbox_id\":\"a\","
				"\"time_unix_ns\":0,\"entropy\":\"abc\"}", &h), -1);
	assert_int_equal(DECODE(proto_hello_decode, "{\"version\":1,\"sandbox_id\":\"a\","
				"\"time_unix_ns\":0,\"entropy\":\"AB\"}", &h), -1);
	/* id with a path character */
	assert_int_equal(DECODE(proto_hello_decode, "{\"version\":1,\"sandbox_id\":\"../x\","
				"\"time_unix_ns\":0,\"entropy\":\"\"}", &h), -1);
	/* version 0, wrong type, duplicate key, trailing garbage, not an object */
	assert_int_equal(DECODE(proto_hello_decode, "{\"version\":0,\"sandbox_id\":\"a\","
				"\"time_unix_ns\":0,\"entropy\":\"\"}", &h), -1);
	assert_int_equal(DECODE(proto_hello_decode, "{\"version\":\"1\",\"sandbox_id\":\"a\","
				"\"time_unix_ns\":0,\"entropy\":\"\"}", &h), -1);
	assert_int_equal(DECODE(proto_hello_decode, "{\"version\":1,\"version\":1,"
				"\"sandbox_id\":\"a\",\"time_unix_ns\":0,\"entropy\":\"\"}", &h), -1);
	assert_int_equal(DECODE(proto_hello_decode, "{\"version\":1,\"sandbox_id\":\"a\","
				"\"time_unix_ns\":0,\"entropy\":\"\"} x", &h), -1);
	assert_int_equal(DECODE(proto_hello_decode, "[1]", &h), -1);
	assert_int_equal(DECODE(proto_hello_decode, "{\"version\":1,\"sandbox_id\":\"a\","
				"\"time_unix_ns\":0,\"entropy\":\"\"}", &h), 0);
}

/* --- HELLO net (version 5) --- */

#define HELLO_HEAD "{\"version\":5,\"sandbox_id\":\"sb_1\",\"time_unix_ns\":0,\"entropy\":\"\""

/* A HELLO whose net object is `net` (the text of its value). */
static int decode_hello_net(const char *net, struct proto_hello *h)
{
	char text[512];

	snprintf(text, sizeof(text), HELLO_HEAD ",\"net\":%s}", net);
	return DECODE(proto_hello_decode, text, h);
}

static int decode_net_fields(const char *mac, const char *address, const char *gateway,
			     const char *dns, struct proto_hello *h)
{
	char net[256];

	snprintf(net, sizeof(net), "{\"mac\":\"%s\",\"address\":\"%s\",\"gateway\":\"%s\","
		 "\"dns\":\"%s\"}", mac, address, gateway, dns);
	return decode_hello_net(net, h);
}

static void hello_net_roundtrips(void **state)
{
	struct proto_hello in = { .version = 5 };
	struct proto_hello out;
	size_t len;
	char *text;

	(void)state;
	strcpy(in.sandbox_id, "sb_1");
	in.net = (struct proto_hello_net){ .present = true,
					   .mac = { 0x02, 0x00, 0x0a, 0xe7, 0x00, 0x02 },
					   .address = 0x0ae70002u, .prefix = 30,
					   .gateway = 0x0ae70001u, .dns = 0x0ae70001u };
	text = proto_hello_encode(&in, &len, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"net\":{\"mac\":\"02:00:0a:e7:00:02\","
				     "\"address\":\"10.231.0.2/30\",\"gateway\":\"10.231.0.1\","
				     "\"dns\":\"10.231.0.1\"}"));
	assert_int_equal(proto_hello_decode((uint8_t *)text, len, &out, NULL), 0);
	assert_true(out.net.present);
	assert_memory_equal(out.net.mac, in.net.mac, 6);
	assert_int_equal(out.net.address, in.net.address);
	assert_int_equal(out.net.prefix, 30);
	assert_int_equal(out.net.gateway, in.net.gateway);
	assert_int_equal(out.net.dns, in.net.dns);
	free(text);
}

static void hello_without_net_encodes_no_net(void **state)
{
	struct proto_hello in = { .version = 5 };
	struct proto_hello out;
	size_t len;
	char *text;

	(void)state;
	strcpy(in.sandbox_id, "sb_1");
	text = proto_hello_encode(&in, &len, NULL);
	assert_non_null(text);
	assert_null(strstr(text, "net"));
	assert_int_equal(proto_hello_decode((uint8_t *)text, len, &out, NULL), 0);
	assert_false(out.net.present);
	free(text);
}

static void hello_net_accepts_other_subnets(void **state)
{
	struct proto_hello h;

	(void)state;
	assert_int_equal(decode_net_fields("fe:ff:ff:ff:ff:fe", "192.168.7.200/24",
					   "192.168.7.1", "8.8.8.8", &h), 0);
	assert_int_equal(h.net.address, 0xc0a807c8u);
	assert_int_equal(h.net.prefix, 24);
	assert_int_equal(decode_net_fields("00:11:22:33:44:55", "10.0.0.9/8", "10.255.0.1",
					   "10.0.0.1", &h), 0);
	assert_int_equal(h.net.prefix, 8);
}

static void hello_net_rejects_bad_fields(void **state)
{
	struct ember_error *err = NULL;
	struct proto_hello h;
	const char *ok_mac = "02:00:0a:e7:00:02";

	(void)state;
	/* not an object, missing and unknown keys */
	assert_int_equal(decode_hello_net("null", &h), -1);
	assert_int_equal(decode_hello_net("\"10.0.0.2/30\"", &h), -1);
	assert_int_equal(decode_hello_net("{}", &h), -1);
	assert_int_equal(decode_hello_net("{\"mac\":\"02:00:0a:e7:00:02\",\"address\":"
					  "\"10.231.0.2/30\",\"gateway\":\"10.231.0.1\"}", &h), -1);
	assert_int_equal(decode_hello_net("{\"mac\":\"02:00:0a:e7:00:02\",\"address\":"
					  "\"10.231.0.2/30\",\"gateway\":\"10.231.0.1\",\"dns\":"
					  "\"10.231.0.1\",\"mtu\":1500}", &h), -1);
	assert_int_equal(decode_hello_net("{\"mac\":2,\"address\":\"10.231.0.2/30\","
					  "\"gateway\":\"10.231.0.1\",\"dns\":\"10.231.0.1\"}", &h),
			 -1);
	/* MAC: upper case, short, wrong separator, multicast, broadcast, all zero */
	assert_int_equal(decode_net_fields("02:00:0A:e7:00:02", "10.231.0.2/30", "10.231.0.1",
					   "10.231.0.1", &h), -1);
	assert_int_equal(decode_net_fields("02:00:0a:e7:00", "10.231.0.2/30", "10.231.0.1",
					   "10.231.0.1", &h), -1);
	assert_int_equal(decode_net_fields("02-00-0a-e7-00-02", "10.231.0.2/30", "10.231.0.1",
					   "10.231.0.1", &h), -1);
	assert_int_equal(decode_net_fields("02:00:0a:e7:00:2", "10.231.0.2/30", "10.231.0.1",
					   "10.231.0.1", &h), -1);
	assert_int_equal(decode_net_fields("03:00:0a:e7:00:02", "10.231.0.2/30", "10.231.0.1",
					   "10.231.0.1", &h), -1);
	assert_int_equal(decode_net_fields("ff:ff:ff:ff:ff:ff", "10.231.0.2/30", "10.231.0.1",
					   "10.231.0.1", &h), -1);
	assert_int_equal(decode_net_fields("00:00:00:00:00:00", "10.231.0.2/30", "10.231.0.1",
					   "10.231.0.1", &h), -1);
	/* dotted quads: leading zero, octet > 255, three parts, five parts, blanks, sign, hex */
	assert_int_equal(decode_net_fields(ok_mac, "10.231.0.02/30", "10.231.0.1", "10.231.0.1",
					   &h), -1);
	assert_int_equal(decode_net_fields(ok_mac, "10.231.0.2/30", "10.231.0.256", "10.231.0.1",
					   &h), -1);
	assert_int_equal(decode_net_fields(ok_mac, "10.231.2/30", "10.231.0.1", "10.231.0.1", &h),
			 -1);
	assert_int_equal(decode_net_fields(ok_mac, "10.231.0.2/30", "10.231.0.1", "1.2.3.4.5",
					   &h), -1);
	assert_int_equal(decode_net_fields(ok_mac, "10.231.0.2/30", "10.231.0.1 ", "10.231.0.1",
					   &h), -1);
	assert_int_equal(decode_net_fields(ok_mac, "10.231.0.2/30", "+10.231.0.1", "10.231.0.1",
					   &h), -1);
	assert_int_equal(decode_net_fields(ok_mac, "10.231.0.2/30", "10.231.0.1", "0x0a.0.0.1",
					   &h), -1);
	assert_int_equal(decode_net_fields(ok_mac, "10.231.0.2/30", "10.231.0.1", "1111.0.0.1",
					   &h), -1);
	assert_int_equal(decode_net_fields(ok_mac, "10.231.0.2/30", "10.231.0.1", "10.231.0.1/32",
					   &h), -1);
	/* prefix: missing, leading zero, out of 8-30, not a number */
	assert_int_equal(decode_net_fields(ok_mac, "10.231.0.2", "10.231.0.1", "10.231.0.1", &h),
			 -1);
	assert_int_equal(decode_net_fields(ok_mac, "10.231.0.2/030", "10.231.0.1", "10.231.0.1",
					   &h), -1);
	assert_int_equal(decode_net_fields(ok_mac, "10.231.0.2/7", "10.231.0.1", "10.231.0.1",
					   &h), -1);
	assert_int_equal(decode_net_fields(ok_mac, "10.231.0.2/31", "10.231.0.3", "10.231.0.1",
					   &h), -1);
	assert_int_equal(decode_net_fields(ok_mac, "10.231.0.2/", "10.231.0.1", "10.231.0.1",
					   &h), -1);
	/* address: network or broadcast of its subnet */
	assert_int_equal(decode_net_fields(ok_mac, "10.231.0.0/30", "10.231.0.1", "10.231.0.1",
					   &h), -1);
	assert_int_equal(decode_net_fields(ok_mac, "10.231.0.3/30", "10.231.0.1", "10.231.0.1",
					   &h), -1);
	/* gateway: outside the subnet, the address itself, its broadcast */
	assert_int_equal(decode_net_fields(ok_mac, "10.231.0.2/30", "10.231.0.5", "10.231.0.1",
					   &h), -1);
	assert_int_equal(decode_net_fields(ok_mac, "10.231.0.2/30", "10.231.0.2", "10.231.0.1",
					   &h), -1);
	assert_int_equal(decode_net_fields(ok_mac, "10.231.0.2/30", "10.231.0.3", "10.231.0.1",
					   &h), -1);
	/* dns: 0.0.0.0, broadcast */
	assert_int_equal(decode_net_fields(ok_mac, "10.231.0.2/30", "10.231.0.1", "0.0.0.0", &h),
			 -1);
	assert_int_equal(decode_net_fields(ok_mac, "10.231.0.2/30", "10.231.0.1",
					   "255.255.255.255", &h), -1);
	/* the error names the field */
	assert_int_equal(proto_hello_decode((const uint8_t *)HELLO_HEAD ",\"net\":{\"mac\":\"02:00:0a:"
					    "e7:00:02\",\"address\":\"10.231.0.2/30\",\"gateway\":"
					    "\"10.9.0.1\",\"dns\":\"10.231.0.1\"}}",
					    strlen(HELLO_HEAD ",\"net\":{\"mac\":\"02:00:0a:e7:00:02\","
						   "\"address\":\"10.231.0.2/30\",\"gateway\":"
						   "\"10.9.0.1\",\"dns\":\"10.231.0.1\"}}"),
					    &h, &err),
			 -1);
	assert_non_null(strstr(err->message, "net.gateway"));
	ember_error_free(&err);
}

static void hello_encode_refuses_a_bad_net(void **state)
{
	struct proto_hello in = { .version = 5 };
	struct ember_error *err = NULL;
	size_t len;

	(void)state;
	strcpy(in.sandbox_id, "sb_1");
	in.net = (struct proto_hello_net){ .present = true, .mac = { 0x03, 1, 2, 3, 4, 5 },
					   .address = 0x0ae70002u, .prefix = 30,
					   .gateway = 0x0ae70001u, .dns = 0x0ae70001u };
	assert_null(proto_hello_encode(&in, &len, &err));
	assert_non_null(strstr(err->message, "net.mac"));
	ember_error_free(&err);
	in.net.mac[0] = 0x02;
	in.net.prefix = 31;
	assert_null(proto_hello_encode(&in, &len, &err));
	assert_non_null(strstr(err->message, "net.address"));
	ember_error_free(&err);
}

/* --- HELLO mounts (version 7) --- */

static void set_mount(struct proto_hello_mount *m, enum proto_mount_fs fs, const char *source,
		      const char *path, bool readonly)
{
	memset(m, 0, sizeof(*m));
	m->fs = fs;
	snprintf(m->source, sizeof(m->source), "%s", source);
	snprintf(m->path, sizeof(m->path), "%s", path);
	m->readonly = readonly;
}

/* A HELLO whose mounts value is `mounts`; the error, if any, is left in *err. */
static int decode_hello_mounts(const char *mounts, struct proto_hello *h, struct ember_error **err)
{
	char text[4096];

	snprintf(text, sizeof(text), HELLO_HEAD ",\"mounts\":%s}", mounts);
	return proto_hello_decode((const uint8_t *)text, strlen(text), h, err);
}

/* Whether decoding the mounts value fails with an error that contains want. */
static bool mounts_refused(const char *mounts, const char *want)
{
	struct ember_error *err = NULL;
	struct proto_hello h;
	bool ok;

	if (decode_hello_mounts(mounts, &h, &err) == 0)
		return false;
	ok = strstr(err->message, want) != NULL;
	if (!ok)
		fprintf(stderr, "mounts %s: error `%s` lacks `%s`\n", mounts, err->message, want);
	ember_error_free(&err);
	return ok;
}

static void hello_mounts_roundtrip(void **state)
{
	struct proto_hello in = { .version = 7 };
	struct proto_hello out;
	size_t len;
	char *text;

	(void)state;
	strcpy(in.sandbox_id, "sb_1");
	set_mount(&in.mounts.m[0], PROTO_MOUNT_9P, "emberd0", "/mnt/data", false);
	set_mount(&in.mounts.m[1], PROTO_MOUNT_SQUASHFS, "vdb", "/home/sandbox/ds", true);
	in.mounts.n = 2;
	text = proto_hello_encode(&in, &len, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"mounts\":[{\"fs\":\"9p\",\"source\":\"emberd0\",\"path\":"
				     "\"/mnt/data\",\"readonly\":false},{\"fs\":\"squashfs\","
				     "\"source\":\"vdb\",\"path\":\"/home/sandbox/ds\","
				     "\"readonly\":true}]"));
	assert_int_equal(proto_hello_decode((uint8_t *)text, len, &out, NULL), 0);
	assert_int_equal(out.mounts.n, 2);
	assert_int_equal(out.mounts.m[0].fs, PROTO_MOUNT_9P);
	assert_string_equal(out.mounts.m[0].source, "emberd0");
	assert_string_equal(out.mounts.m[0].path, "/mnt/data");
	assert_false(out.mounts.m[0].readonly);
	assert_int_equal(out.mounts.m[1].fs, PROTO_MOUNT_SQUASHFS);
	assert_string_equal(out.mounts.m[1].source, "vdb");
	assert_string_equal(out.mounts.m[1].path, "/home/sandbox/ds");
	assert_true(out.mounts.m[1].readonly);
	free(text);
}

static void hello_without_mounts_encodes_no_mounts(void **state)
{
	struct proto_hello in = { .version = 7 };
	struct proto_hello out;
	size_t len;
	char *text;

	(void)state;
	strcpy(in.sandbox_id, "sb_1");
	text = proto_hello_encode(&in, &len, NULL);
	assert_non_null(text);
	assert_null(strstr(text, "mounts"));
	assert_int_equal(proto_hello_decode((uint8_t *)text, len, &out, NULL), 0);
	assert_int_equal(out.mounts.n, 0);
	free(text);
}

/* Eight mounts with the longest paths, a net and the longest id still fit HELLO's frame. */
static void hello_with_the_most_mounts_fits_its_frame(void **state)
{
	struct proto_hello in = { .version = 7, .time_unix_ns = INT64_MAX,
				  .entropy_len = PROTO_ENTROPY_MAX };
	char path[PROTO_MOUNT_PATH_MAX + 1], source[16];
	struct proto_hello out;
	size_t len, i;
	char *text;

	(void)state;
	memset(in.sandbox_id, 'a', PROTO_ID_MAX);
	in.net = (struct proto_hello_net){ .present = true, .mac = { 2, 0, 0xa, 0xe7, 0, 2 },
					   .address = 0xc0a80a0au, .prefix = 24,
					   .gateway = 0xc0a80a01u, .dns = 0xc0a80a01u };
	for (i = 0; i < PROTO_MOUNTS_MAX; i++) {
		memset(path, 'x', sizeof(path) - 1);
		path[0] = '/';
		path[1] = (char)('a' + i); /* distinct, none under another */
		path[sizeof(path) - 1] = '\0';
		snprintf(source, sizeof(source), "emberd%zu", i);
		set_mount(&in.mounts.m[i], PROTO_MOUNT_9P, source, path, false);
	}
	in.mounts.n = PROTO_MOUNTS_MAX;
	text = proto_hello_encode(&in, &len, NULL);
	assert_non_null(text);
	assert_true(len <= 4096); /* HELLO's bound (frame.c type_max_payload) */
	assert_int_equal(proto_hello_decode((uint8_t *)text, len, &out, NULL), 0);
	assert_int_equal(out.mounts.n, PROTO_MOUNTS_MAX);
	free(text);
}

static void mount_path_rules(void **state)
{
	static const char *const good[] = {
		"/tmp", "/mnt", "/mnt/data", "/home", "/home/sandbox/work", "/srv", "/data",
		"/workspace", "/var/lib/x", "/opt/a.b_c@d+e=f,g-h", "/x/.hidden", "/x/...",
		"/runner", "/devices", "/library", "/var/running", "/ember",
	};
	static const char *const bad[] = {
		"", "mnt", "/", "/mnt/", "//mnt", "/mnt//x", "/mnt/./x", "/mnt/..", "/./mnt", "/..",
		"/mnt/a b", "/mnt/a\\b", "/mnt/ä", "/mnt/-x", "/mnt/$x", "/mnt/x:y", "/proc",
		"/proc/x", "/sys", "/dev", "/dev/shm", "/etc", "/etc/x", "/usr", "/usr/local",
		"/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/boot", "/run",
		"/run/emberd/exec", "/var/run", "/var/run/x", "/emberd", "/emberd-data",
	};
	char longest[PROTO_MOUNT_PATH_MAX + 2];
	const char *why;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		why = NULL;
		if (!proto_mount_path_valid(good[i], &why))
			fail_msg("`%s` refused: %s", good[i], why);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		if (proto_mount_path_valid(bad[i], &why))
			fail_msg("`%s` accepted", bad[i]);
		assert_non_null(why);
	}
	assert_true(proto_mount_path_valid("/mnt", NULL)); /* why may be NULL */
	assert_false(proto_mount_path_valid("/proc", NULL));
	memset(longest, 'x', sizeof(longest));
	longest[0] = '/';
	longest[PROTO_MOUNT_PATH_MAX] = '\0';
	assert_true(proto_mount_path_valid(longest, &why));
	longest[PROTO_MOUNT_PATH_MAX] = 'x';
	longest[PROTO_MOUNT_PATH_MAX + 1] = '\0';
	assert_false(proto_mount_path_valid(longest, &why));
	assert_non_null(strstr(why, "longer"));
}

static void hello_mounts_rejects_bad_fields(void **state)
{
	struct proto_hello h;

	(void)state;
	assert_int_equal(decode_hello_mounts("[{\"fs\":\"9p\",\"source\":\"emberd7\",\"path\":"
					     "\"/mnt/a\",\"readonly\":true},{\"fs\":\"squashfs\","
					     "\"source\":\"vdi\",\"path\":\"/mnt/b\",\"readonly\":"
					     "true}]", &h, NULL), 0);
	assert_int_equal(h.mounts.n, 2);
	/* shape: not an array, empty, too many, not objects, missing and unknown keys, types */
	assert_true(mounts_refused("{}", "field `mounts`"));
	assert_true(mounts_refused("null", "field `mounts`"));
	assert_true(mounts_refused("[]", "field `mounts`"));
	assert_true(mounts_refused("[1,2,3,4,5,6,7,8,9]", "more than 8"));
	assert_true(mounts_refused("[\"/mnt\"]", "mounts[0]"));
	assert_true(mounts_refused("[{\"fs\":\"9p\",\"source\":\"emberd0\",\"path\":\"/mnt\"}]",
				   "`readonly` is required"));
	assert_true(mounts_refused("[{\"fs\":\"9p\",\"source\":\"emberd0\",\"path\":\"/mnt\","
				   "\"readonly\":true,\"uid\":0}]", "unknown field `uid`"));
	assert_true(mounts_refused("[{\"fs\":\"9p\",\"source\":\"emberd0\",\"path\":\"/mnt\","
				   "\"readonly\":1}]", "mounts[0]: field `readonly`"));
	assert_true(mounts_refused("[{\"fs\":9,\"source\":\"emberd0\",\"path\":\"/mnt\","
				   "\"readonly\":true}]", "field `fs`"));
	assert_true(mounts_refused("[{\"fs\":\"9p\",\"source\":\"emberd0\",\"path\":\"/mnt\","
				   "\"readonly\":true},{\"fs\":\"9p\",\"source\":\"emberd1\","
				   "\"path\":\"/srv\",\"readonly\":null}]",
				   "mounts[1]: field `readonly`"));
	/* fs and source */
	assert_true(mounts_refused("[{\"fs\":\"virtiofs\",\"source\":\"emberd0\",\"path\":\"/mnt\","
				   "\"readonly\":true}]", "field `fs` must be"));
	assert_true(mounts_refused("[{\"fs\":\"9p\",\"source\":\"emberd8\",\"path\":\"/mnt\","
				   "\"readonly\":true}]", "mounts[0].source"));
	assert_true(mounts_refused("[{\"fs\":\"9p\",\"source\":\"emberd00\",\"path\":\"/mnt\","
				   "\"readonly\":true}]", "mounts[0].source"));
	assert_true(mounts_refused("[{\"fs\":\"9p\",\"source\":\"vdb\",\"path\":\"/mnt\","
				   "\"readonly\":true}]", "mounts[0].source"));
	assert_true(mounts_refused("[{\"fs\":\"squashfs\",\"source\":\"vda\",\"path\":\"/mnt\","
				   "\"readonly\":true}]", "mounts[0].source"));
	assert_true(mounts_refused("[{\"fs\":\"squashfs\",\"source\":\"vdj\",\"path\":\"/mnt\","
				   "\"readonly\":true}]", "mounts[0].source"));
	assert_true(mounts_refused("[{\"fs\":\"squashfs\",\"source\":\"emberd0\",\"path\":"
				   "\"/mnt\",\"readonly\":true}]", "mounts[0].source"));
	assert_true(mounts_refused("[{\"fs\":\"9p\",\"source\":\"emberd0123456789a\",\"path\":"
				   "\"/mnt\",\"readonly\":true}]", "field `source` is longer"));
	assert_true(mounts_refused("[{\"fs\":\"squashfs\",\"source\":\"vdb\",\"path\":\"/mnt\","
				   "\"readonly\":false}]", "mounts[0].readonly"));
	/* paths */
	assert_true(mounts_refused("[{\"fs\":\"9p\",\"source\":\"emberd0\",\"path\":\"/mnt\","
				   "\"readonly\":true},{\"fs\":\"9p\",\"source\":\"emberd1\","
				   "\"path\":\"/etc/x\",\"readonly\":true}]",
				   "field `mounts[1].path` must not be a system directory"));
	assert_true(mounts_refused("[{\"fs\":\"9p\",\"source\":\"emberd0\",\"path\":\"mnt\","
				   "\"readonly\":true}]", "mounts[0].path"));
	/* duplicates and nesting */
	assert_true(mounts_refused("[{\"fs\":\"9p\",\"source\":\"emberd0\",\"path\":\"/mnt/a\","
				   "\"readonly\":true},{\"fs\":\"9p\",\"source\":\"emberd0\","
				   "\"path\":\"/mnt/b\",\"readonly\":true}]", "mounts[1].source"));
	assert_true(mounts_refused("[{\"fs\":\"9p\",\"source\":\"emberd0\",\"path\":\"/mnt/a\","
				   "\"readonly\":true},{\"fs\":\"9p\",\"source\":\"emberd1\","
				   "\"path\":\"/mnt/a\",\"readonly\":true}]", "mounts[1].path"));
	assert_true(mounts_refused("[{\"fs\":\"9p\",\"source\":\"emberd0\",\"path\":\"/mnt/a\","
				   "\"readonly\":true},{\"fs\":\"9p\",\"source\":\"emberd1\","
				   "\"path\":\"/mnt/a/b\",\"readonly\":true}]", "mounts[1].path"));
	assert_true(mounts_refused("[{\"fs\":\"9p\",\"source\":\"emberd0\",\"path\":\"/mnt/a/b\","
				   "\"readonly\":true},{\"fs\":\"squashfs\",\"source\":\"vdb\","
				   "\"path\":\"/mnt/a\",\"readonly\":true}]", "mounts[1].path"));
	/* a sibling with a common prefix is not nested */
	assert_int_equal(decode_hello_mounts("[{\"fs\":\"9p\",\"source\":\"emberd0\",\"path\":"
					     "\"/mnt/a\",\"readonly\":true},{\"fs\":\"9p\","
					     "\"source\":\"emberd1\",\"path\":\"/mnt/ab\","
					     "\"readonly\":true}]", &h, NULL), 0);
}

static void hello_encode_refuses_bad_mounts(void **state)
{
	struct proto_hello in = { .version = 7 };
	struct ember_error *err = NULL;
	size_t len;

	(void)state;
	strcpy(in.sandbox_id, "sb_1");
	set_mount(&in.mounts.m[0], PROTO_MOUNT_9P, "emberd0", "/mnt/a", true);
	set_mount(&in.mounts.m[1], PROTO_MOUNT_9P, "emberd1", "/proc", true);
	in.mounts.n = 2;
	assert_null(proto_hello_encode(&in, &len, &err));
	assert_non_null(strstr(err->message, "mounts[1].path"));
	ember_error_free(&err);
	set_mount(&in.mounts.m[1], PROTO_MOUNT_SQUASHFS, "vdb", "/srv", false);
	assert_null(proto_hello_encode(&in, &len, &err));
	assert_non_null(strstr(err->message, "mounts[1].readonly"));
	ember_error_free(&err);
	in.mounts.m[1].fs = (enum proto_mount_fs)7;
	assert_null(proto_hello_encode(&in, &len, &err));
	assert_non_null(strstr(err->message, "mounts[1].fs"));
	ember_error_free(&err);
	in.mounts.n = PROTO_MOUNTS_MAX + 1;
	assert_null(proto_hello_encode(&in, &len, &err));
	assert_non_null(strstr(err->message, "more than"));
	ember_error_free(&err);
}

static void exec_roundtrips_and_owns_strings(void **state)
{
	char *argv0 = "/usr/bin/python3";
	char *env0 = "A=b";
	struct proto_exec in = { .argc = 1, .envc = 1, .code = "print(\"\\u00e9\")\n",
				 .timeout_ms = 500, .output_limit = 77, .max_processes = 64,
				 .stdin_follows = true };
	struct proto_exec out;
	size_t len;
	char *text;

	(void)state;
	in.argv[0] = argv0;
	in.env[0] = env0;
	in.code_len = strlen(in.code);
	text = proto_exec_encode(&in, &len, NULL);
	assert_non_null(text);
	assert_int_equal(proto_exec_decode((uint8_t *)text, len, &out, NULL), 0);
	free(text);
	assert_int_equal(out.argc, 1);
	assert_string_equal(out.argv[0], argv0);
	assert_null(out.argv[1]);
	assert_string_equal(out.env[0], "A=b");
	assert_string_equal(out.code, in.code);
	assert_int_equal(out.timeout_ms, 500);
	assert_int_equal(out.output_limit, 77);
	assert_int_equal(out.max_processes, 64);
	assert_true(out.stdin_follows);
	proto_exec_release(&out);
}

static void exec_code_argument_roundtrips_and_is_bounded(void **state)
{
	char *argv[] = { "/bin/sh", "-c", NULL };
	struct proto_exec in = { .argc = 2, .code = "echo hi", .code_len = 7, .timeout_ms = 5,
				 .max_processes = 1, .code_argument = true };
	struct proto_exec out;
	size_t len, big = PROTO_CODE_ARG_MAX + 1;
	char *text;

	(void)state;
	in.argv[0] = argv[0];
	in.argv[1] = argv[1];
	text = proto_exec_encode(&in, &len, NULL);
	assert_non_null(text);
	assert_int_equal(proto_exec_decode((uint8_t *)text, len, &out, NULL), 0);
	assert_true(out.code_argument);
	assert_string_equal(out.code, "echo hi");
	proto_exec_release(&out);
	free(text);
	/* absent: false */
	in.code_argument = false;
	text = proto_exec_encode(&in, &len, NULL);
	assert_null(strstr(text, "code_argument"));
	free(text);
	/* one byte over the argv string limit */
	in.code_argument = true;
	in.code = malloc(big + 1);
	assert_non_null(in.code);
	memset(in.code, 'x', big);
	in.code[big] = '\0';
	in.code_len = big;
	text = proto_exec_encode(&in, &len, NULL);
	assert_non_null(text);
	assert_int_equal(proto_exec_decode((uint8_t *)text, len, &out, NULL), -1);
	in.code_len = big - 1;
	in.code[big - 1] = '\0';
	free(text);
	text = proto_exec_encode(&in, &len, NULL);
	assert_int_equal(proto_exec_decode((uint8_t *)text, len, &out, NULL), 0);
	proto_exec_release(&out);
	free(text);
	free(in.code);
}

static void exec_rejects_bad_requests(void **state)
{
	struct proto_exec e;

	(void)state;
	/* empty argv */
	assert_int_equal(DECODE(proto_exec_decode, "{\"argv\":[],\"env\":[],\"code\":\"\","
				"\"timeout_ms\":1,\"output_limit\":0,\"stdin_follows\":false}", &e),
			 -1);
	/* env without '=' */
	assert_int_equal(DECODE(proto_exec_decode, "{\"argv\":[\"/bin/sh\"],\"env\":[\"AB\"],"
				"\"code\":\"\",\"timeout_ms\":1,\"output_limit\":0,"
				"\"stdin_follows\":false}", &e), -1);
	/* timeout 0, NUL in code */
	assert_int_equal(DECODE(proto_exec_decode, "{\"argv\":[\"/bin/sh\"],\"env\":[],"
				"\"code\":\"\",\"timeout_ms\":0,\"output_limit\":0,"
				"\"stdin_follows\":false}", &e), -1);
	assert_int_equal(DECODE(proto_exec_decode, "{\"argv\":[\"/bin/sh\"],\"env\":[],"
				"\"code\":\"a\\u0000b\",\"timeout_ms\":1,\"output_limit\":0,"
				"\"stdin_follows\":false}", &e), -1);
	/* output limit above the protocol maximum */
	assert_int_equal(DECODE(proto_exec_decode, "{\"argv\":[\"/bin/sh\"],\"env\":[],"
				"\"code\":\"\",\"timeout_ms\":1,\"output_limit\":99999999999,"
				"\"stdin_follows\":false}", &e), -1);
	/* max_processes 0 or missing */
	assert_int_equal(DECODE(proto_exec_decode, "{\"argv\":[\"/bin/sh\"],\"env\":[],"
				"\"code\":\"\",\"timeout_ms\":1,\"output_limit\":0,"
				"\"max_processes\":0,\"stdin_follows\":false}", &e), -1);
	assert_int_equal(DECODE(proto_exec_decode, "{\"argv\":[\"/bin/sh\"],\"env\":[],"
				"\"code\":\"\",\"timeout_ms\":1,\"output_limit\":0,"
				"\"stdin_follows\":false}", &e), -1);
	/* code_argument with a command, with a context, or with code too long for one argv string */
	assert_int_equal(DECODE(proto_exec_decode, "{\"argv\":[\"/bin/sh\"],\"env\":[],"
				"\"code\":\"\",\"timeout_ms\":1,\"output_limit\":0,\"max_processes\":1,"
				"\"stdin_follows\":false,\"command\":true,\"code_argument\":true}", &e),
			 -1);
	assert_int_equal(DECODE(proto_exec_decode, "{\"argv\":[\"/bin/sh\"],\"env\":[],"
				"\"code\":\"1\",\"timeout_ms\":1,\"output_limit\":0,\"max_processes\":1,"
				"\"stdin_follows\":false,\"context\":\"ctx_0123456789abcdef0123456789abcdef\","
				"\"code_argument\":true}", &e),
			 -1);
	/* argv entry not a string */
	assert_int_equal(DECODE(proto_exec_decode, "{\"argv\":[1],\"env\":[],\"code\":\"\","
				"\"timeout_ms\":1,\"output_limit\":0,\"stdin_follows\":false}", &e),
			 -1);
}

static void exit_and_error_roundtrip(void **state)
{
	struct proto_exit in = { .exit_code = -1, .signal = 9, .timed_out = true,
				 .oom_killed = true, .duration_ms = 5, .stdout_truncated = true };
	struct proto_exit out;
	struct proto_error_msg em;
	size_t len;
	char *text;

	(void)state;
	text = proto_exit_encode(&in, &len, NULL);
	assert_int_equal(proto_exit_decode((uint8_t *)text, len, &out, NULL), 0);
	free(text);
	assert_int_equal(out.exit_code, -1);
	assert_int_equal(out.signal, 9);
	assert_true(out.timed_out);
	assert_true(out.oom_killed);
	assert_true(out.stdout_truncated);
	assert_false(out.stderr_truncated);
	/* oom_killed is optional (older agents) and, when present, a boolean */
	out.oom_killed = true;
	assert_int_equal(DECODE(proto_exit_decode, "{\"exit_code\":0,\"signal\":0,"
				"\"timed_out\":false,\"duration_ms\":1,\"stdout_truncated\":false,"
				"\"stderr_truncated\":false}", &out), 0);
	assert_false(out.oom_killed);
	assert_int_equal(DECODE(proto_exit_decode, "{\"exit_code\":0,\"signal\":0,"
				"\"timed_out\":false,\"oom_killed\":1,\"duration_ms\":1,"
				"\"stdout_truncated\":false,\"stderr_truncated\":false}", &out), -1);
	assert_int_equal(DECODE(proto_exit_decode, "{\"exit_code\":256,\"signal\":0,"
				"\"timed_out\":false,\"duration_ms\":1,\"stdout_truncated\":false,"
				"\"stderr_truncated\":false}", &out), -1);

	text = proto_error_encode("too_many_execs", "64 running", &len, NULL);
	assert_int_equal(proto_error_decode((uint8_t *)text, len, &em, NULL), 0);
	free(text);
	assert_string_equal(em.code, "too_many_execs");
	assert_string_equal(em.message, "64 running");
}

static void ps_roundtrips_and_rejects_bad_entries(void **state)
{
	struct proto_process in[2] = {
		{ .pid = 1, .ppid = 0, .uid = 0, .state = 'S', .comm = "init" },
		{ .pid = 42, .ppid = 1, .uid = 1000, .state = 'Z', .comm = "sh" },
	};
	struct proto_process *out = NULL;
	size_t count = 0, len;
	char *text;

	(void)state;
	text = proto_ps_encode(in, 2, &len, NULL);
	assert_int_equal(proto_ps_decode((uint8_t *)text, len, &out, &count, NULL), 0);
	free(text);
	assert_int_equal(count, 2);
	assert_int_equal(out[1].pid, 42);
	assert_int_equal(out[1].state, 'Z');
	assert_string_equal(out[1].comm, "sh");
	free(out);
	text = "{\"processes\":[{\"pid\":0,\"ppid\":0,\"uid\":0,\"state\":\"S\",\"comm\":\"x\"}]}";
	assert_int_equal(proto_ps_decode((uint8_t *)text, strlen(text), &out, &count, NULL), -1);
	text = "{\"processes\":[{\"pid\":1,\"ppid\":0,\"uid\":0,\"state\":\"\",\"comm\":\"x\"}]}";
	assert_int_equal(proto_ps_decode((uint8_t *)text, strlen(text), &out, &count, NULL), -1);
}

static void error_text_is_cut_at_a_character_and_never_replaced(void **state)
{
	char msg[1200], *text;
	struct proto_error_msg out;
	size_t i, len;

	(void)state;
	for (i = 0; i + 2 < sizeof(msg); i += 2)
		memcpy(msg + i, "\xc3\xa9", 2);
	msg[i] = '\0';
	msg[5] = '\xff'; /* and one byte that is not UTF-8 */
	text = proto_error_encode("hostile", msg, &len, NULL);
	assert_non_null(text);
	assert_int_equal(proto_error_decode((const uint8_t *)text, len, &out, NULL), 0);
	assert_true(utf8_valid_text((const uint8_t *)out.message, strlen(out.message)));
	assert_true(strlen(out.message) >= sizeof(out.message) - 4);
	assert_memory_equal(out.message, "\xc3\xa9\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd", 10);
	free(text);
}

static void background_command_exec_roundtrips(void **state)
{
	char *argv0 = "python3", *argv1 = "-m";
	struct proto_exec in = { .argc = 2, .code = "", .code_len = 0, .timeout_ms = 5,
				 .output_limit = 10, .max_processes = 3, .stdin_follows = true,
				 .background = true, .command = true, .cwd = "work" };
	struct proto_exec out;
	size_t len;
	char *text;

	(void)state;
	in.argv[0] = argv0;
	in.argv[1] = argv1;
	text = proto_exec_encode(&in, &len, NULL);
	assert_non_null(text);
	assert_int_equal(proto_exec_decode((uint8_t *)text, len, &out, NULL), 0);
	assert_true(out.background);
	assert_true(out.command);
	assert_string_equal(out.cwd, "work");
	assert_true(out.stdin_follows);
	proto_exec_release(&out);
	free(text);
	/* a plain exec does not name the version-3 fields at all (older agents reject them) */
	in.background = in.command = false;
	in.cwd = NULL;
	text = proto_exec_encode(&in, &len, NULL);
	assert_non_null(text);
	assert_null(strstr(text, "background"));
	assert_null(strstr(text, "cwd"));
	free(text);
}

static void command_exec_rejects_code_and_empty_cwd(void **state)
{
	struct proto_exec e;

	(void)state;
	assert_int_equal(DECODE(proto_exec_decode, "{\"argv\":[\"/bin/sh\"],\"env\":[],"
				"\"code\":\"x\",\"timeout_ms\":1,\"output_limit\":0,"
				"\"max_processes\":1,\"stdin_follows\":false,\"command\":true}",
				&e), -1);
	assert_int_equal(DECODE(proto_exec_decode, "{\"argv\":[\"/bin/sh\"],\"env\":[],"
				"\"code\":\"\",\"timeout_ms\":1,\"output_limit\":0,"
				"\"max_processes\":1,\"stdin_follows\":false,\"cwd\":\"\"}",
				&e), -1);
	assert_int_equal(DECODE(proto_exec_decode, "{\"argv\":[\"/bin/sh\"],\"env\":[],"
				"\"code\":\"\",\"timeout_ms\":1,\"output_limit\":0,"
				"\"max_processes\":1,\"stdin_follows\":false,\"background\":1}",
				&e), -1);
}

static void started_roundtrips_and_rejects_bad_pids(void **state)
{
	struct proto_started in = { .pid = 4242 }, out;
	size_t len;
	char *text;

	(void)state;
	text = proto_started_encode(&in, &len, NULL);
	assert_non_null(text);
	assert_int_equal(proto_started_decode((uint8_t *)text, len, &out, NULL), 0);
	assert_int_equal(out.pid, 4242);
	free(text);
	assert_int_equal(DECODE(proto_started_decode, "{\"pid\":0}", &out), -1);
	assert_int_equal(DECODE(proto_started_decode, "{\"pid\":-3}", &out), -1);
	assert_int_equal(DECODE(proto_started_decode, "{\"pid\":1,\"x\":1}", &out), -1);
	assert_int_equal(DECODE(proto_started_decode, "{\"pid\":\"1\"}", &out), -1);
	assert_int_equal(DECODE(proto_started_decode, "{}", &out), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(error_text_is_cut_at_a_character_and_never_replaced),
		cmocka_unit_test(hello_roundtrips_with_entropy),
		cmocka_unit_test(hello_rejects_bad_fields),
		cmocka_unit_test(hello_net_roundtrips),
		cmocka_unit_test(hello_without_net_encodes_no_net),
		cmocka_unit_test(hello_net_accepts_other_subnets),
		cmocka_unit_test(hello_net_rejects_bad_fields),
		cmocka_unit_test(hello_encode_refuses_a_bad_net),
		cmocka_unit_test(hello_mounts_roundtrip),
		cmocka_unit_test(hello_without_mounts_encodes_no_mounts),
		cmocka_unit_test(hello_with_the_most_mounts_fits_its_frame),
		cmocka_unit_test(mount_path_rules),
		cmocka_unit_test(hello_mounts_rejects_bad_fields),
		cmocka_unit_test(hello_encode_refuses_bad_mounts),
		cmocka_unit_test(exec_roundtrips_and_owns_strings),
		cmocka_unit_test(exec_rejects_bad_requests),
		cmocka_unit_test(exec_code_argument_roundtrips_and_is_bounded),
		cmocka_unit_test(exit_and_error_roundtrip),
		cmocka_unit_test(ps_roundtrips_and_rejects_bad_entries),
		cmocka_unit_test(background_command_exec_roundtrips),
		cmocka_unit_test(command_exec_rejects_code_and_empty_cwd),
		cmocka_unit_test(started_roundtrips_and_rejects_bad_pids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
