/* Unit tests for the packs.json parser (src/sandbox/catalog.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sandbox/catalog.h"

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DEFAULTS "{\"exec_timeout_ms\":30000,\"output_limit_bytes\":1048576,\"memory_mib\":256," \
		 "\"vcpus\":1,\"overlay_mib\":128}"
#define PACK(name, image) \
	"{\"name\":\"" name "\",\"image\":\"" image "\",\"sha256\":\"" SHA "\"," \
	"\"interpreter\":[\"/usr/bin/python3\",\"-I\"],\"description\":\"d\",\"defaults\":" \
	DEFAULTS "}"
#define MANIFEST(packs) \
	"{\"version\":1,\"kernel\":{\"bzimage\":\"kernel/vmlinuz\",\"vmlinux\":\"kernel/vmlinux\"," \
	"\"release\":\"6.1\"},\"initramfs\":\"initramfs.cpio.gz\",\"packs\":[" packs "]}"

static int parse(const char *text, struct catalog *cat, struct ember_error **err)
{
	return catalog_parse("/img", text, strlen(text), cat, err);
}

static void parses_valid_manifest_and_resolves_paths(void **state)
{
	struct catalog cat;
	const struct pack *p;
	char names[64];

	(void)state;
	assert_int_equal(parse(MANIFEST(PACK("python", "packs/python.squashfs") ","
					 PACK("shell", "packs/shell.squashfs")), &cat, NULL), 0);
	assert_int_equal(cat.count, 2);
	assert_string_equal(cat.bzimage, "/img/kernel/vmlinuz");
	assert_string_equal(cat.initramfs, "/img/initramfs.cpio.gz");
	p = catalog_find(&cat, "shell");
	assert_non_null(p);
	assert_string_equal(p->image, "/img/packs/shell.squashfs");
	assert_int_equal(p->interpreter_argc, 2);
	assert_string_equal(p->interpreter[1], "-I");
	assert_null(p->interpreter[2]);
	assert_int_equal(p->defaults.memory_mib, 256);
	assert_null(catalog_find(&cat, "ruby"));
	catalog_names(&cat, names, sizeof(names));
	assert_string_equal(names, "python, shell");
	catalog_release(&cat);
}

static void rejects_paths_outside_images_dir(void **state)
{
	struct catalog cat;
	struct ember_error *err = NULL;

	(void)state;
	assert_int_equal(parse(MANIFEST(PACK("python", "../etc/shadow")), &cat, &err), -1);
	assert_non_null(strstr(err->message, "relative path"));
	ember_error_free(&err);
	assert_int_equal(parse(MANIFEST(PACK("python", "/etc/shadow")), &cat, NULL), -1);
	assert_int_equal(parse(MANIFEST(PACK("python", "a b")), &cat, NULL), -1);
}

static void rejects_bad_names_duplicates_and_unknown_fields(void **state)
{
	struct catalog cat;
	struct ember_error *err = NULL;

	(void)state;
	assert_int_equal(parse(MANIFEST(PACK("Py thon", "p.sq")), &cat, NULL), -1);
	assert_int_equal(parse(MANIFEST(PACK("python", "a.sq") "," PACK("python", "b.sq")), &cat,
			       &err), -1);
	assert_non_null(strstr(err->message, "twice"));
	ember_error_free(&err);
	assert_int_equal(parse("{\"version\":1,\"extra\":1}", &cat, &err), -1);
	assert_non_null(strstr(err->message, "extra"));
	ember_error_free(&err);
	assert_int_equal(parse(MANIFEST(""), &cat, NULL), -1);
	assert_int_equal(parse("{\"version\":2}", &cat, NULL), -1);
	assert_int_equal(parse("not json", &cat, NULL), -1);
}

static void rejects_out_of_range_defaults(void **state)
{
	struct catalog cat;
	struct ember_error *err = NULL;
	const char *text = MANIFEST("{\"name\":\"p\",\"image\":\"p.sq\",\"sha256\":\"" SHA "\","
				    "\"interpreter\":[\"/bin/sh\"],\"description\":\"d\","
				    "\"defaults\":{\"exec_timeout_ms\":30000,"
				    "\"output_limit_bytes\":1048576,\"memory_mib\":8,\"vcpus\":1,"
				    "\"overlay_mib\":128}}");

	(void)state;
	assert_int_equal(parse(text, &cat, &err), -1);
	assert_non_null(strstr(err->message, "memory_mib"));
	ember_error_free(&err);
}

static void rejects_relative_interpreter(void **state)
{
	struct catalog cat;
	const char *text = MANIFEST("{\"name\":\"p\",\"image\":\"p.sq\",\"sha256\":\"" SHA "\","
				    "\"interpreter\":[\"python3\"],\"description\":\"d\","
				    "\"defaults\":" DEFAULTS "}");

	(void)state;
	assert_int_equal(parse(text, &cat, NULL), -1);
}

static void parses_how_code_is_passed(void **state)
{
	struct catalog cat;
	struct ember_error *err = NULL;
	const char *text = MANIFEST("{\"name\":\"sh\",\"image\":\"p.sq\",\"sha256\":\"" SHA "\","
				    "\"interpreter\":[\"/bin/sh\",\"-c\"],\"code\":\"argument\","
				    "\"description\":\"d\",\"defaults\":" DEFAULTS "},"
				    "{\"name\":\"py\",\"image\":\"q.sq\",\"sha256\":\"" SHA "\","
				    "\"interpreter\":[\"/usr/bin/python3\"],\"code\":\"file\","
				    "\"description\":\"d\",\"defaults\":" DEFAULTS "}");
	const char *bad = MANIFEST("{\"name\":\"sh\",\"image\":\"p.sq\",\"sha256\":\"" SHA "\","
				   "\"interpreter\":[\"/bin/sh\",\"-c\"],\"code\":\"stdin\","
				   "\"description\":\"d\",\"defaults\":" DEFAULTS "}");

	(void)state;
	assert_int_equal(parse(text, &cat, NULL), 0);
	assert_true(catalog_find(&cat, "sh")->code_argument);
	assert_false(catalog_find(&cat, "py")->code_argument);
	catalog_release(&cat);
	/* absent: a code file, as before the field existed */
	assert_int_equal(parse(MANIFEST(PACK("python", "packs/python.squashfs")), &cat, NULL), 0);
	assert_false(cat.packs[0].code_argument);
	catalog_release(&cat);
	assert_int_equal(parse(bad, &cat, &err), -1);
	assert_non_null(strstr(err->message, "`code` must be"));
	ember_error_free(&err);
}

static void parses_an_imported_packs_environment(void **state)
{
	struct catalog cat;
	struct ember_error *err = NULL;
	const struct pack *p;
	const char *text = MANIFEST("{\"name\":\"img\",\"image\":\"p.sq\",\"sha256\":\"" SHA "\","
				    "\"interpreter\":[\"/bin/sh\"],\"env\":[\"PATH=/bin\",\"A=b=c\"],"
				    "\"cwd\":\"/srv/app\",\"description\":\"d\",\"defaults\":" DEFAULTS "}");
	const char *bad_env = MANIFEST("{\"name\":\"img\",\"image\":\"p.sq\",\"sha256\":\"" SHA "\","
				       "\"interpreter\":[\"/bin/sh\"],\"env\":[\"NOEQUALS\"],"
				       "\"description\":\"d\",\"defaults\":" DEFAULTS "}");
	const char *bad_cwd = MANIFEST("{\"name\":\"img\",\"image\":\"p.sq\",\"sha256\":\"" SHA "\","
				       "\"interpreter\":[\"/bin/sh\"],\"cwd\":\"/srv/..\","
				       "\"description\":\"d\",\"defaults\":" DEFAULTS "}");

	(void)state;
	assert_int_equal(parse(text, &cat, NULL), 0);
	p = catalog_find(&cat, "img");
	assert_int_equal(p->envc, 2);
	assert_string_equal(p->env[1], "A=b=c");
	assert_null(p->env[2]);
	assert_string_equal(p->cwd, "/srv/app");
	catalog_release(&cat);
	assert_int_equal(parse(MANIFEST(PACK("python", "packs/python.squashfs")), &cat, NULL), 0);
	assert_int_equal(cat.packs[0].envc, 0);
	assert_null(cat.packs[0].cwd);
	catalog_release(&cat);
	assert_int_equal(parse(bad_env, &cat, &err), -1);
	assert_non_null(strstr(err->message, "`env`"));
	ember_error_free(&err);
	assert_int_equal(parse(bad_cwd, &cat, &err), -1);
	assert_non_null(strstr(err->message, "`cwd`"));
	ember_error_free(&err);
}

static void language_comes_from_the_interpreter_basename(void **state)
{
	static const struct {
		const char *interpreter;
		enum proto_context_language language;
	} cases[] = {
		{ "/usr/bin/python3", PROTO_LANG_PYTHON },
		{ "/usr/bin/python3.11", PROTO_LANG_PYTHON },
		{ "/usr/bin/node", PROTO_LANG_NODE },
		{ "/usr/bin/nodejs", PROTO_LANG_NODE },
		{ "/opt/nodejs18/node", PROTO_LANG_NODE },
		{ "/bin/sh", PROTO_LANG_SHELL },
		{ "/bin/bash", PROTO_LANG_SHELL },
		{ "/bin/dash", PROTO_LANG_SHELL },
		{ "/usr/bin/ruby", PROTO_LANG_NONE },
		{ "/usr/bin/nodemon", PROTO_LANG_NONE }, /* not node itself */
		{ "/usr/bin/shx", PROTO_LANG_NONE },
		{ "/usr/lib/python3/x/zsh", PROTO_LANG_NONE }, /* only the basename counts */
	};
	struct pack pack;
	size_t i;

	(void)state;
	memset(&pack, 0, sizeof(pack));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pack.interpreter[0] = (char *)cases[i].interpreter;
		if (pack_language(&pack) != cases[i].language)
			fail_msg("%s: language %d, want %d", cases[i].interpreter,
				 (int)pack_language(&pack), (int)cases[i].language);
	}
}

static void checks_and_matches_pack_lists(void **state)
{
	struct ember_error *err = NULL;

	(void)state;
	assert_int_equal(pack_list_check("python", NULL), 0);
	assert_int_equal(pack_list_check("python,shell,python-data", NULL), 0);
	assert_true(pack_list_has("python,shell,python-data", "shell"));
	assert_true(pack_list_has("python,shell,python-data", "python-data"));
	assert_true(pack_list_has("python,shell", "python"));
	assert_false(pack_list_has("python,shell", "pyth"));
	assert_false(pack_list_has("python-data", "python"));
	assert_false(pack_list_has("", "python"));
	assert_true(pack_list_has(NULL, "anything")); /* no list: every pack */
	assert_int_equal(pack_list_check("", &err), -1);
	assert_non_null(strstr(err->message, "is not a pack name"));
	ember_error_free(&err);
	assert_int_equal(pack_list_check("python,,shell", NULL), -1);
	assert_int_equal(pack_list_check("python,", NULL), -1);
	assert_int_equal(pack_list_check("Python", &err), -1);
	assert_non_null(strstr(err->message, "`Python` is not a pack name"));
	ember_error_free(&err);
	assert_int_equal(pack_list_check("python,shell,python", &err), -1);
	assert_non_null(strstr(err->message, "`python` is listed twice"));
	ember_error_free(&err);
	assert_int_equal(pack_list_check("shell,python,python-data", NULL), 0);
}

static void a_pack_list_must_name_packs_of_the_catalog(void **state)
{
	struct ember_error *err = NULL;
	struct catalog cat;

	(void)state;
	assert_int_equal(parse(MANIFEST(PACK("python", "packs/python.squashfs") ","
					 PACK("shell", "packs/shell.squashfs")), &cat, NULL), 0);
	assert_int_equal(catalog_check_pack_list(&cat, NULL, "--pool-packs", NULL), 0);
	assert_int_equal(catalog_check_pack_list(&cat, "shell,python", "--pool-packs", NULL), 0);
	assert_int_equal(catalog_check_pack_list(&cat, "python,node", "--pool-packs", &err), -1);
	assert_non_null(strstr(err->message, "--pool-packs names pack `node`"));
	ember_error_free(&err);
	catalog_release(&cat);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_valid_manifest_and_resolves_paths),
		cmocka_unit_test(rejects_paths_outside_images_dir),
		cmocka_unit_test(rejects_bad_names_duplicates_and_unknown_fields),
		cmocka_unit_test(rejects_out_of_range_defaults),
		cmocka_unit_test(rejects_relative_interpreter),
		cmocka_unit_test(parses_how_code_is_passed),
		cmocka_unit_test(language_comes_from_the_interpreter_basename),
		cmocka_unit_test(parses_an_imported_packs_environment),
		cmocka_unit_test(checks_and_matches_pack_lists),
		cmocka_unit_test(a_pack_list_must_name_packs_of_the_catalog),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
