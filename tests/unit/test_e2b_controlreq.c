/* Unit tests for the E2B control plane's decoders (src/e2b/controlreq.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "e2b/controlreq.h"

static int create(const char *json, struct e2b_create_body *out, char *why, size_t size)
{
	struct ember_error *err = NULL;
	int ret = e2b_parse_create(json, strlen(json), out, &err);

	if (ret < 0) {
		snprintf(why, size, "%s", err->message);
		ember_error_free(&err);
	}
	return ret;
}

static void the_sdk_create_body_maps_to_template_timeout_labels(void **state)
{
	struct e2b_create_body body;
	char why[1024];

	(void)state;
	/* what Sandbox.create({metadata, timeoutMs, allowInternetAccess}) posts, with the fields
	 * the SDK sends empty when their options are not used */
	assert_int_equal(create("{\"templateID\":\"base\",\"metadata\":{\"user_id\":\"a b\"},"
				"\"timeout\":300,\"allow_internet_access\":true,\"autoPause\":false,"
				"\"network\":{},\"iam\":{\"tokens\":{}},\"envVars\":{},"
				"\"autoResume\":{\"enabled\":false},\"mcp\":null,\"volumeMounts\":[]}",
				&body, why, sizeof(why)),
			 0);
	assert_string_equal(body.template_id, "base");
	assert_int_equal(body.timeout_s, 300);
	assert_true(body.allow_internet);
	assert_int_equal(body.labels.count, 1);
	assert_string_equal(sandbox_labels_get(&body.labels, "user_id"), "a b");
	assert_int_equal(body.env.count, 0);
	assert_int_equal(create("{\"templateID\":\"base\",\"envVars\":{\"A\":\"1\",\"B_2\":\"x=y\"}}",
				&body, why, sizeof(why)),
			 0);
	assert_int_equal(body.env.count, 2);
	assert_int_equal(body.env.used, 12);
	assert_memory_equal(body.env.block, "A=1\0B_2=x=y\0", 12);
	assert_int_equal(create("{\"templateID\":\"python\"}", &body, why, sizeof(why)), 0);
	assert_int_equal(body.timeout_s, 0);
	assert_false(body.allow_internet);
}

static void what_emberd_cannot_honour_is_refused_naming_the_field(void **state)
{
	static const struct {
		const char *json;
		const char *words;
	} cases[] = {
		{ "{}", "templateID" },
		{ "{\"templateID\":\"\"}", "empty" },
		{ "{\"templateID\":\"base\",\"autoPause\":true}", "autoPause" },
		{ "{\"templateID\":\"base\",\"autoResume\":{\"enabled\":true}}", "autoResume" },
		{ "{\"templateID\":\"base\",\"network\":{\"allowOut\":[\"1.1.1.1\"]}}", "network" },
		{ "{\"templateID\":\"base\",\"iam\":{\"tokens\":{\"a\":{}}}}", "iam" },
		{ "{\"templateID\":\"base\",\"mcp\":{\"x\":1}}", "mcp" },
		{ "{\"templateID\":\"base\",\"volumeMounts\":[{\"name\":\"v\"}]}", "volumeMounts" },
		{ "{\"templateID\":\"base\",\"envVars\":{\"1A\":\"1\"}}", "envVars" },
		{ "{\"templateID\":\"base\",\"envVars\":{\"A\":1}}", "envVars" },
		{ "{\"templateID\":\"base\",\"metadata\":{\"e2b.dev/template\":\"x\"}}", "reserved" },
		{ "{\"templateID\":\"base\",\"metadata\":{\"k\":1}}", "string" },
		{ "{\"templateID\":\"base\",\"metadata\":{\"-k\":\"v\"}}", "metadata" },
		{ "{\"templateID\":\"base\",\"timeout\":0}", "timeout" },
		{ "{\"templateID\":\"base\",\"timeout\":\"60\"}", "timeout" },
		{ "{\"templateID\":\"base\",\"surprise\":1}", "surprise" },
		{ "[]", "object" },
	};
	struct e2b_create_body body;
	char why[1024];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (create(cases[i].json, &body, why, sizeof(why)) == 0)
			fail_msg("accepted %s", cases[i].json);
		if (strstr(why, cases[i].words) == NULL)
			fail_msg("%s: `%s` does not say `%s`", cases[i].json, why, cases[i].words);
	}
}

static void timeout_and_connect_bodies(void **state)
{
	struct e2b_resume_body r;
	unsigned t = 7;

	(void)state;
	assert_int_equal(e2b_parse_timeout("{\"timeout\":60}", 14, &t, NULL), 0);
	assert_int_equal(t, 60);
	assert_int_equal(e2b_parse_timeout("{}", 2, &t, NULL), -1);
	assert_int_equal(e2b_parse_connect("", 0, &r, NULL), 0);
	assert_int_equal(r.timeout_s, 0);
	assert_false(r.reboot);
	assert_int_equal(e2b_parse_connect("{\"memory\":false}", 16, &r, NULL), 0);
	assert_true(r.reboot);
	assert_int_equal(e2b_parse_connect("{\"timeout\":30}", 14, &r, NULL), 0);
	assert_int_equal(r.timeout_s, 30);
	assert_false(r.reboot);
	assert_int_equal(e2b_parse_connect("{\"timeout\":30,\"x\":1}", 20, &r, NULL), -1);
	/* connect has no autoPause; the deprecated resume has, and refuses true */
	assert_int_equal(e2b_parse_connect("{\"autoPause\":false}", 19, &r, NULL), -1);
}

static int pause_body(const char *json, struct ember_error **err)
{
	return e2b_parse_pause(json, strlen(json), err);
}

static int resume_body(const char *json, struct e2b_resume_body *r, struct ember_error **err)
{
	return e2b_parse_resume(json, strlen(json), r, err);
}

static void pause_and_resume_bodies_refuse_what_emberd_cannot_do(void **state)
{
	struct e2b_resume_body r;
	struct ember_error *err = NULL;

	(void)state;
	assert_int_equal(pause_body("", NULL), 0);
	assert_int_equal(pause_body("{}", NULL), 0);
	assert_int_equal(pause_body("{\"memory\":true}", NULL), 0);
	assert_int_equal(pause_body("{\"memory\":false}", &err), -1);
	assert_non_null(strstr(err->message, "memory"));
	ember_error_free(&err);
	assert_int_equal(pause_body("{\"memory\":1}", NULL), -1);
	assert_int_equal(pause_body("{\"keep\":true}", NULL), -1);
	assert_int_equal(resume_body("{\"timeout\":60,\"autoPause\":false}", &r, NULL), 0);
	assert_int_equal(r.timeout_s, 60);
	assert_int_equal(resume_body("{\"autoPause\":true}", &r, &err), -1);
	assert_non_null(strstr(err->message, "POST /sandboxes/{id}/pause"));
	ember_error_free(&err);
	assert_int_equal(resume_body("{\"timeout\":0}", &r, NULL), -1);
}

static void fork_and_snapshot_bodies(void **state)
{
	char name[SANDBOX_LABEL_VALUE_MAX + 1];
	unsigned count = 0, timeout_s = 0;
	const char *json;

	(void)state;
	assert_int_equal(e2b_parse_fork("", 0, &count, &timeout_s, NULL), 0);
	assert_int_equal(count, 1);
	assert_int_equal(timeout_s, E2B_FORK_TIMEOUT_DEFAULT);
	json = "{\"count\":3,\"timeout\":240}";
	assert_int_equal(e2b_parse_fork(json, strlen(json), &count, &timeout_s, NULL), 0);
	assert_int_equal(count, 3);
	assert_int_equal(timeout_s, 240);
	json = "{\"count\":0}";
	assert_int_equal(e2b_parse_fork(json, strlen(json), &count, &timeout_s, NULL), -1);
	json = "{\"labels\":{}}";
	assert_int_equal(e2b_parse_fork(json, strlen(json), &count, &timeout_s, NULL), -1);
	assert_int_equal(e2b_parse_snapshot("{}", 2, name, NULL), 0);
	assert_string_equal(name, "");
	json = "{\"name\":\"team/my-snap:v1\"}";
	assert_int_equal(e2b_parse_snapshot(json, strlen(json), name, NULL), 0);
	assert_string_equal(name, "team/my-snap:v1");
	json = "{\"name\":\"\"}";
	assert_int_equal(e2b_parse_snapshot(json, strlen(json), name, NULL), -1);
	json = "{\"name\":1}";
	assert_int_equal(e2b_parse_snapshot(json, strlen(json), name, NULL), -1);
}

static int snapshot_query(struct e2b_snapshot_query *q, const char *key, const char *value)
{
	struct api_query query = { .count = 1 };

	query.pairs[0].key = key;
	query.pairs[0].value = value;
	return e2b_parse_snapshot_query(&query, q, NULL);
}

static void snapshot_list_query(void **state)
{
	static struct e2b_snapshot_query q;
	const char *snap = "snap_0123456789abcdef0123456789abcdef";
	char token[E2B_NEXT_TOKEN_MAX + 1];

	(void)state;
	assert_int_equal(snapshot_query(&q, "sandboxID", "sb_0123456789abcdef0123456789abcdef"),
			 0);
	assert_string_equal(q.sandbox_id, "sb_0123456789abcdef0123456789abcdef");
	assert_int_equal(snapshot_query(&q, "sandboxID", "nope"), -1);
	assert_int_equal(snapshot_query(&q, "name", "team/snap:v1"), 0);
	assert_string_equal(q.name, "team/snap:v1");
	assert_int_equal(snapshot_query(&q, "limit", "2"), 0);
	assert_int_equal(q.limit, 2);
	assert_int_equal(snapshot_query(&q, "limit", "0"), -1);
	/* a token handed out (it is longer than a sandbox's) reads back */
	e2b_next_token(1796295600250000000LL, snap, token);
	assert_int_equal(snapshot_query(&q, "nextToken", token), 0);
	assert_true(q.has_next);
	assert_string_equal(q.next_id, snap);
	assert_int_equal(q.next_created_ns, 1796295600250000000LL);
	assert_int_equal(snapshot_query(&q, "nextToken", "1_sb_0123456789abcdef0123456789abcdef"),
			 -1);
	assert_int_equal(snapshot_query(&q, "surprise", "1"), -1);
}

static int list(bool v2, struct e2b_list_query *q, const char *key, const char *value)
{
	struct api_query query = { .count = 1 };

	query.pairs[0].key = key;
	query.pairs[0].value = value;
	return e2b_parse_list_query(&query, v2, q, NULL);
}

static void metadata_is_decoded_as_the_js_sdk_encodes_it(void **state)
{
	static struct e2b_list_query q;

	(void)state;
	/* {note: 'a b&c=d/%41+é'} after encodeURIComponent, URLSearchParams and the HTTP layer */
	assert_int_equal(list(false, &q, "metadata",
			      "run=abc&note=a%2520b%2526c%253Dd%252F%252541%252B%25C3%25A9"),
			 0);
	assert_int_equal(q.nterms, 2);
	assert_string_equal(q.terms[0].key, "run");
	assert_string_equal(q.terms[0].value, "abc");
	assert_string_equal(q.terms[1].value, "a b&c=d/%41+\xc3\xa9");
	assert_true(q.running);
	assert_false(q.paused); /* v1 lists running sandboxes */
	assert_int_equal(q.limit, 0);
	/* encoded once, with a literal %: the once-decoded text */
	assert_int_equal(list(true, &q, "metadata", "k=50%25"), 0);
	assert_string_equal(q.terms[0].value, "50%");
	assert_int_equal(q.limit, E2B_LIST_LIMIT_MAX);
	assert_true(q.running && q.paused); /* v2 without state: both */
	assert_int_equal(list(false, &q, "metadata", "novalue"), -1);
	assert_int_equal(list(false, &q, "metadata", "k=%zz"), -1);
	assert_int_equal(list(false, &q, "metadata", "k=a%00b"), -1);
}

static void v2_paging_state_and_filters(void **state)
{
	static struct e2b_list_query q;
	char token[E2B_NEXT_TOKEN_MAX + 1];

	(void)state;
	assert_int_equal(list(false, &q, "limit", "5"), -1); /* v1 has no paging */
	assert_int_equal(list(true, &q, "limit", "5"), 0);
	assert_int_equal(q.limit, 5);
	assert_int_equal(list(true, &q, "limit", "0"), -1);
	assert_int_equal(list(true, &q, "limit", "101"), -1);
	assert_int_equal(list(true, &q, "state", "paused"), 0);
	assert_false(q.running);
	assert_true(q.paused);
	assert_int_equal(list(true, &q, "state", "running"), 0);
	assert_true(q.running);
	assert_false(q.paused);
	assert_int_equal(list(true, &q, "state", "running,paused"), 0);
	assert_true(q.running && q.paused);
	assert_int_equal(list(true, &q, "state", "running,asleep"), -1);
	assert_int_equal(list(true, &q, "order", "asc"), 0);
	assert_true(q.ascending);
	assert_int_equal(list(true, &q, "startedAfter", "2026-12-03T11:00:00.250Z"), 0);
	assert_int_equal(q.started_after_ns, 1796295600250000000LL);
	assert_int_equal(list(true, &q, "startedAfter", "yesterday"), -1);
	e2b_next_token(1796295600250000000LL, "sb_0123456789abcdef0123456789abcdef", token);
	assert_int_equal(list(true, &q, "nextToken", token), 0);
	assert_true(q.has_next);
	assert_int_equal(q.next_created_ns, 1796295600250000000LL);
	assert_string_equal(q.next_id, "sb_0123456789abcdef0123456789abcdef");
	assert_int_equal(list(true, &q, "nextToken", "1_sb_nope"), -1);
	assert_int_equal(list(true, &q, "surprise", "1"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_sdk_create_body_maps_to_template_timeout_labels),
		cmocka_unit_test(what_emberd_cannot_honour_is_refused_naming_the_field),
		cmocka_unit_test(timeout_and_connect_bodies),
		cmocka_unit_test(pause_and_resume_bodies_refuse_what_emberd_cannot_do),
		cmocka_unit_test(fork_and_snapshot_bodies),
		cmocka_unit_test(snapshot_list_query),
		cmocka_unit_test(metadata_is_decoded_as_the_js_sdk_encodes_it),
		cmocka_unit_test(v2_paging_state_and_filters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
