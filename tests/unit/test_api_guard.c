/* Unit tests for the API's guard (src/api/guard.c): Host, Origin, Sec-Fetch-Site and the bearer
 * token, and the token file's rules. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/guard.h"
#include "tmpdir.h"
#include "util/error.h"

#define TOKEN "0123456789abcdef-token"

static struct api_guard loopback(const char *const *origins, size_t n)
{
	struct api_guard g;
	struct ember_error *err = NULL;

	if (api_guard_init(&g, "127.0.0.1:7777", origins, n, &err) < 0)
		fail_msg("init: %s", err->message);
	return g;
}

static enum ember_error_kind verdict_of(const struct api_guard *g,
					const struct api_guard_request *req)
{
	struct ember_error *err = NULL;
	enum ember_error_kind kind;

	if (api_guard_check(g, req, &err) == 0)
		return (enum ember_error_kind)-1;
	kind = err->kind;
	ember_error_free(&err);
	return kind;
}

static enum ember_error_kind verdict(const struct api_guard *g, const char *host,
				     const char *origin, const char *fetch_site,
				     const char *authorization)
{
	struct api_guard_request req = { .host = host, .origin = origin,
					 .sec_fetch_site = fetch_site,
					 .authorization = authorization };

	return verdict_of(g, &req);
}

#define OK ((enum ember_error_kind)-1)

static void curl_and_local_clients_pass(void **state)
{
	struct api_guard g = loopback(NULL, 0);

	(void)state;
	/* what curl, emberctl, the SDKs send: no Origin, no Sec-Fetch-* */
	assert_int_equal(verdict(&g, "127.0.0.1:7777", NULL, NULL, NULL), OK);
	assert_int_equal(verdict(&g, "localhost:7777", NULL, NULL, NULL), OK);
	assert_int_equal(verdict(&g, "LOCALHOST", NULL, NULL, NULL), OK);
	assert_int_equal(verdict(&g, "[::1]:7777", NULL, NULL, NULL), OK);
	assert_int_equal(verdict(&g, "127.0.0.2:7777", NULL, NULL, NULL), OK);
	/* a top-level navigation the user typed */
	assert_int_equal(verdict(&g, "localhost:7777", NULL, "none", NULL), OK);
}

static void rebound_and_foreign_hosts_are_misdirected(void **state)
{
	struct api_guard g = loopback(NULL, 0);

	(void)state;
	assert_int_equal(verdict(&g, "evil.example:7777", NULL, NULL, NULL), EMBER_E_MISDIRECTED);
	assert_int_equal(verdict(&g, "evil.example", NULL, NULL, NULL), EMBER_E_MISDIRECTED);
	assert_int_equal(verdict(&g, "localhost.evil.example", NULL, NULL, NULL),
			 EMBER_E_MISDIRECTED);
	assert_int_equal(verdict(&g, "128.0.0.1:7777", NULL, NULL, NULL), EMBER_E_MISDIRECTED);
	assert_int_equal(verdict(&g, NULL, NULL, NULL, NULL), OK); /* HTTP/1.0: no browser */
	assert_int_equal(verdict(&g, "", NULL, NULL, NULL), EMBER_E_MISDIRECTED);
	assert_int_equal(verdict(&g, "[::1", NULL, NULL, NULL), EMBER_E_MISDIRECTED);
	assert_int_equal(verdict(&g, ":7777", NULL, NULL, NULL), EMBER_E_MISDIRECTED);
	/* a Host no server could have: its port is parsed like --addr's (util/hostport.h) */
	assert_int_equal(verdict(&g, "localhost:99999", NULL, NULL, NULL), EMBER_E_MISDIRECTED);
	assert_int_equal(verdict(&g, "localhost:x", NULL, NULL, NULL), EMBER_E_MISDIRECTED);
	assert_int_equal(verdict(&g, "::1", NULL, NULL, NULL), EMBER_E_MISDIRECTED);
}

static void bind_address_port_is_checked(void **state)
{
	struct api_guard g;
	struct ember_error *err = NULL;

	(void)state;
	assert_int_equal(api_guard_init(&g, "127.0.0.1:0", NULL, 0, &err), 0);
	assert_int_equal(api_guard_init(&g, "127.0.0.1:99999", NULL, 0, &err), -1);
	assert_string_equal(err->message, "--addr `127.0.0.1:99999`: port `99999` is not a number "
			    "between 0 and 65535");
	ember_error_free(&err);
	assert_int_equal(api_guard_init(&g, "127.0.0.1", NULL, 0, &err), -1);
	assert_non_null(strstr(err->message, "no port"));
	ember_error_free(&err);
}

static void browser_requests_are_forbidden_unless_allowed(void **state)
{
	const char *const allowed[] = { "http://localhost:3000" };
	struct api_guard g = loopback(NULL, 0), h = loopback(allowed, 1);

	(void)state;
	assert_int_equal(verdict(&g, "127.0.0.1:7777", "http://evil.example", NULL, NULL),
			 EMBER_E_FORBIDDEN);
	assert_int_equal(verdict(&g, "127.0.0.1:7777", "null", NULL, NULL), EMBER_E_FORBIDDEN);
	/* same-origin is not special: emberd serves no pages of its own */
	assert_int_equal(verdict(&g, "127.0.0.1:7777", "http://127.0.0.1:7777", "same-origin",
				 NULL), EMBER_E_FORBIDDEN);
	/* a no-cors GET (an <img> tag) carries no Origin but says where it came from */
	assert_int_equal(verdict(&g, "127.0.0.1:7777", NULL, "cross-site", NULL),
			 EMBER_E_FORBIDDEN);
	assert_int_equal(verdict(&g, "127.0.0.1:7777", NULL, "same-site", NULL),
			 EMBER_E_FORBIDDEN);
	assert_int_equal(verdict(&h, "127.0.0.1:7777", "http://localhost:3000", "cross-site",
				 NULL), OK);
	assert_int_equal(verdict(&h, "127.0.0.1:7777", "http://localhost:3001", NULL, NULL),
			 EMBER_E_FORBIDDEN);
	assert_int_equal(verdict(&h, "127.0.0.1:7777", "http://localhost:3000/", NULL, NULL),
			 EMBER_E_FORBIDDEN);
}

static void write_token_file(const char *path, const char *text, mode_t mode)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static void bearer_token_is_required_and_compared_exactly(void **state)
{
	struct api_guard g = loopback(NULL, 0);
	struct ember_error *err = NULL;
	char path[256];

	(void)state;
	snprintf(path, sizeof(path), "%s/token", tmpdir_path);
	write_token_file(path, TOKEN "\n", 0600);
	assert_int_equal(api_guard_load_token(&g, path, &err), 0);
	assert_int_equal(verdict(&g, "localhost", NULL, NULL, "Bearer " TOKEN), OK);
	assert_int_equal(verdict(&g, "localhost", NULL, NULL, "bearer " TOKEN), OK);
	assert_int_equal(verdict(&g, "localhost", NULL, NULL, NULL), EMBER_E_UNAUTHORIZED);
	assert_int_equal(verdict(&g, "localhost", NULL, NULL, "Bearer " TOKEN "x"),
			 EMBER_E_UNAUTHORIZED);
	assert_int_equal(verdict(&g, "localhost", NULL, NULL, "Bearer 0123456789abcdef-toke"),
			 EMBER_E_UNAUTHORIZED);
	assert_int_equal(verdict(&g, "localhost", NULL, NULL, "Basic " TOKEN),
			 EMBER_E_UNAUTHORIZED);
	assert_int_equal(verdict(&g, "localhost", NULL, NULL, "Bearer "), EMBER_E_UNAUTHORIZED);
	/* the browser checks come first: a page cannot probe the token */
	assert_int_equal(verdict(&g, "evil.example", NULL, NULL, "Bearer " TOKEN),
			 EMBER_E_MISDIRECTED);
	/* the E2B listener checks its token itself (X-API-KEY), but Host and Origin here */
	assert_int_equal(verdict_of(&g, &(struct api_guard_request){
						.host = "localhost",
						.token_checked_elsewhere = true }),
			 OK);
	assert_int_equal(verdict_of(&g, &(struct api_guard_request){
						.host = "localhost", .origin = "http://evil.example",
						.token_checked_elsewhere = true }),
			 EMBER_E_FORBIDDEN);
	assert_int_equal(verdict_of(&g, &(struct api_guard_request){
						.host = "evil.example",
						.token_checked_elsewhere = true }),
			 EMBER_E_MISDIRECTED);
	assert_true(api_guard_token_matches(TOKEN, TOKEN));
	assert_false(api_guard_token_matches(TOKEN, TOKEN "x"));
	assert_false(api_guard_token_matches(TOKEN, ""));
}

static void token_file_rules(void **state)
{
	struct api_guard g = loopback(NULL, 0);
	struct ember_error *err = NULL;
	char path[256], link[256];

	(void)state;
	snprintf(path, sizeof(path), "%s/token", tmpdir_path);
	snprintf(link, sizeof(link), "%s/token-link", tmpdir_path);
	write_token_file(path, TOKEN, 0644);
	assert_int_equal(api_guard_load_token(&g, path, &err), -1);
	assert_non_null(strstr(err->message, "chmod 600"));
	ember_error_free(&err);
	write_token_file(path, "short\n", 0600);
	assert_int_equal(api_guard_load_token(&g, path, &err), -1);
	assert_non_null(strstr(err->message, "16 to 512 characters"));
	ember_error_free(&err);
	write_token_file(path, "0123456789abcdef ghij\n", 0600);
	assert_int_equal(api_guard_load_token(&g, path, &err), -1);
	assert_non_null(strstr(err->message, "not printable"));
	ember_error_free(&err);
	write_token_file(path, TOKEN, 0600);
	unlink(link);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(api_guard_load_token(&g, link, &err), -1); /* O_NOFOLLOW */
	ember_error_free(&err);
	assert_int_equal(api_guard_load_token(&g, "/nonexistent-token", &err), -1);
	assert_int_equal(err->kind, EMBER_E_INVALID);
	ember_error_free(&err);
}

static void non_loopback_binds_need_a_token(void **state)
{
	struct api_guard g;
	struct ember_error *err = NULL;
	char path[256];

	(void)state;
	assert_int_equal(api_guard_init(&g, "0.0.0.0:7777", NULL, 0, &err), 0);
	assert_int_equal(api_guard_check_config(&g, &err), -1);
	assert_non_null(strstr(err->message, "--auth-token-file"));
	ember_error_free(&err);
	snprintf(path, sizeof(path), "%s/token", tmpdir_path);
	write_token_file(path, TOKEN, 0600);
	assert_int_equal(api_guard_load_token(&g, path, &err), 0);
	assert_int_equal(api_guard_check_config(&g, &err), 0);
	/* a wildcard bind is reached by any name; the token decides */
	assert_int_equal(verdict(&g, "myhost.lan:7777", NULL, NULL, "Bearer " TOKEN), OK);
	assert_int_equal(verdict(&g, "myhost.lan:7777", NULL, NULL, NULL), EMBER_E_UNAUTHORIZED);
	assert_int_equal(api_guard_init(&g, "localhost:7777", NULL, 0, &err), 0);
	assert_int_equal(api_guard_check_config(&g, &err), 0);
	assert_int_equal(api_guard_init(&g, "[::1]:7777", NULL, 0, &err), 0);
	assert_int_equal(api_guard_check_config(&g, &err), 0);
	assert_int_equal(api_guard_init(&g, "127.0.0.1:7777", (const char *[]){ "evil" }, 1, &err),
			 -1);
	assert_non_null(strstr(err->message, "--allow-origin"));
	ember_error_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(curl_and_local_clients_pass),
		cmocka_unit_test(rebound_and_foreign_hosts_are_misdirected),
		cmocka_unit_test(bind_address_port_is_checked),
		cmocka_unit_test(browser_requests_are_forbidden_unless_allowed),
		cmocka_unit_test(bearer_token_is_required_and_compared_exactly),
		cmocka_unit_test(token_file_rules),
		cmocka_unit_test(non_loopback_binds_need_a_token),
	};

	return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
