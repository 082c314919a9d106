/* Unit tests for the modules.dep parser and dependency ordering (src/guest/modules.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest/limits.h"
#include "guest/modules.h"
#include "util/cleanup.h"

/* The trimmed file the initramfs carries (Debian 6.1 cloud kernel), in depmod's own order. */
static const char debian_dep[] =
	"kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko "
	"kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko "
	"kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko "
	"kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko "
	"kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko: "
	"kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko kernel/net/vmw_vsock/vsock.ko "
	"kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko: kernel/net/vmw_vsock/vsock.ko\n"
	"kernel/net/vmw_vsock/vsock.ko:\n"
	"kernel/fs/squashfs/squashfs.ko:\n"
	"kernel/fs/overlayfs/overlay.ko:\n"
	"kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/virtio/virtio_ring.ko:\n";

static size_t index_of(const struct guest_modules *m, const size_t *order, const char *suffix)
{
	size_t i;

	for (i = 0; i < m->count; i++) {
		const char *p = m->mods[order[i]].path;
		size_t n = strlen(p), s = strlen(suffix);

		if (n >= s && strcmp(p + n - s, suffix) == 0)
			return i;
	}
	fail_msg("module %s not in order", suffix);
	return 0;
}

static int parse(const char *text, struct guest_modules *m, struct ember_error **err)
{
	return guest_modules_parse(text, strlen(text), m, err);
}

static void order_puts_every_module_after_its_dependencies(void **state)
{
	struct guest_modules m;
	size_t order[32], pos[32], i, j;

	(void)state;
	assert_int_equal(parse(debian_dep, &m, NULL), 0);
	assert_int_equal(m.count, 11);
	assert_int_equal(guest_modules_order(&m, order, NULL), 0);
	for (i = 0; i < m.count; i++)
		pos[order[i]] = i;
	for (i = 0; i < m.count; i++) {
		for (j = 0; j < m.mods[i].ndeps; j++)
			assert_true(pos[m.mods[i].deps[j]] < pos[i]);
	}
	assert_true(index_of(&m, order, "/virtio_ring.ko") < index_of(&m, order, "/virtio.ko"));
	assert_true(index_of(&m, order, "/virtio.ko") < index_of(&m, order, "/virtio_mmio.ko"));
	assert_true(index_of(&m, order, "/vsock.ko") <
		    index_of(&m, order, "/vmw_vsock_virtio_transport_common.ko"));
	assert_true(index_of(&m, order, "/vmw_vsock_virtio_transport_common.ko") <
		    index_of(&m, order, "/vmw_vsock_virtio_transport.ko"));
	/* A permutation: each module exactly once. */
	for (i = 0; i < m.count; i++) {
		for (j = i + 1; j < m.count; j++)
			assert_true(order[i] != order[j]);
	}
	guest_modules_release(&m);
}

static void order_handles_non_transitive_dependency_lists(void **state)
{
	/* Only direct dependencies listed, in reverse: c needs b needs a. */
	struct guest_modules m;
	size_t order[3];

	(void)state;
	assert_int_equal(parse("c.ko: b.ko\nb.ko: a.ko\na.ko:\n", &m, NULL), 0);
	assert_int_equal(guest_modules_order(&m, order, NULL), 0);
	assert_string_equal(m.mods[order[0]].path, "a.ko");
	assert_string_equal(m.mods[order[1]].path, "b.ko");
	assert_string_equal(m.mods[order[2]].path, "c.ko");
	guest_modules_release(&m);
}

static void parser_accepts_compressed_modules_tabs_and_no_final_newline(void **state)
{
	struct guest_modules m;

	(void)state;
	assert_int_equal(parse("a/x.ko.xz:\tb/y.ko.zst  \n\nb/y.ko.zst:\nc/z.ko.gz: b/y.ko.zst", &m,
			       NULL), 0);
	assert_int_equal(m.count, 3);
	assert_int_equal(m.mods[0].ndeps, 1);
	assert_int_equal(m.mods[0].deps[0], 1);
	guest_modules_release(&m);
	assert_int_equal(parse("", &m, NULL), 0);
	assert_int_equal(m.count, 0);
	guest_modules_release(&m);
}

static void order_rejects_cycles(void **state)
{
	static const char *const cycles[] = {
		"a.ko: b.ko\nb.ko: a.ko\n",
		"a.ko: a.ko\n",
		"a.ko: b.ko\nb.ko: c.ko\nc.ko: a.ko\nd.ko:\n",
	};
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(cycles); i++) {
		struct ember_error *err = NULL;
		struct guest_modules m;
		size_t order[8];

		assert_int_equal(parse(cycles[i], &m, NULL), 0);
		assert_int_equal(guest_modules_order(&m, order, &err), -1);
		assert_non_null(strstr(err->message, "cycle"));
		ember_error_free(&err);
		guest_modules_release(&m);
	}
}

static void parser_rejects_missing_dependency(void **state)
{
	struct ember_error *err = NULL;
	struct guest_modules m;

	(void)state;
	assert_int_equal(parse("a.ko: kernel/missing.ko\n", &m, &err), -1);
	assert_non_null(strstr(err->message, "kernel/missing.ko"));
	assert_null(m.mods);
	ember_error_free(&err);
}

static void parser_rejects_garbage(void **state)
{
	static const char *const bad[] = {
		"no colon here\n",
		"a.ko b.ko\n",
		":\n",
		"a.txt:\n",
		"/abs/a.ko:\n",
		"../up/a.ko:\n",
		"x/./a.ko:\n",
		"x//a.ko:\n",
		"a.ko:b.ko\nb.ko:\n",        /* no blank after the colon */
		"a.ko: b.ko b.ko\nb.ko:\n",   /* repeated dependency */
		"a.ko:\na.ko:\n",             /* listed twice */
		"a b.ko:\n",
		"a.ko: b.k\n",
		"sp\xc3\xa4t.ko:\n",
		"a.ko:\r\n",
		"a.ko: ../b.ko\n",
	};
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		struct ember_error *err = NULL;
		struct guest_modules m;

		if (parse(bad[i], &m, &err) != -1)
			fail_msg("accepted garbage #%zu: %s", i, bad[i]);
		assert_non_null(err);
		assert_null(m.mods);
		ember_error_free(&err);
	}
}

static void parser_rejects_nul_and_enforces_bounds(void **state)
{
	struct ember_error *err = NULL;
	struct guest_modules m;
	char *text;
	size_t i, len;

	(void)state;
	assert_int_equal(guest_modules_parse("a.ko:\0\n", 7, &m, &err), -1);
	ember_error_free(&err);

	/* A line longer than the cap. */
	text = malloc(GUEST_MODULES_DEP_MAX_LINE + 16);
	memset(text, 'a', GUEST_MODULES_DEP_MAX_LINE + 8);
	memcpy(text + GUEST_MODULES_DEP_MAX_LINE + 4, ".ko:", 4);
	assert_int_equal(guest_modules_parse(text, GUEST_MODULES_DEP_MAX_LINE + 8, &m, &err), -1);
	assert_non_null(strstr(err->message, "longer"));
	ember_error_free(&err);
	free(text);

	/* More modules than the cap. */
	text = malloc((GUEST_MODULES_MAX + 1) * 16);
	len = 0;
	for (i = 0; i <= GUEST_MODULES_MAX; i++)
		len += (size_t)sprintf(text + len, "m%zu.ko:\n", i);
	assert_int_equal(guest_modules_parse(text, len, &m, &err), -1);
	assert_non_null(strstr(err->message, "more than"));
	ember_error_free(&err);
	free(text);

	/* A file larger than the cap is refused before parsing. */
	assert_int_equal(guest_modules_parse("", GUEST_MODULES_DEP_MAX_BYTES + 1, &m, &err), -1);
	ember_error_free(&err);
}

static void load_without_modules_dep_loads_nothing(void **state)
{
	char dir[] = "/tmp/test_guest_modules.XXXXXX";
	unsigned loaded = 99;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(guest_modules_load(dir, &loaded, NULL), 0);
	assert_int_equal(loaded, 0);
	rmdir(dir);
}

static void load_reports_missing_module_files(void **state)
{
	char dir[] = "/tmp/test_guest_modules.XXXXXX";
	char path[64];
	struct ember_error *err = NULL;
	unsigned loaded = 99;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/modules.dep", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("kernel/b.ko: kernel/a.ko\nkernel/a.ko:\n", f);
	fclose(f);
	assert_int_equal(guest_modules_load(dir, &loaded, &err), -1);
	assert_int_equal(loaded, 0);
	/* a.ko fails to open; b.ko is not tried because its dependency failed. */
	assert_non_null(strstr(err->message, "2 module(s) failed"));
	assert_non_null(strstr(err->message, "kernel/a.ko"));
	assert_non_null(strstr(err->message, "a dependency failed"));
	ember_error_free(&err);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(order_puts_every_module_after_its_dependencies),
		cmocka_unit_test(order_handles_non_transitive_dependency_lists),
		cmocka_unit_test(parser_accepts_compressed_modules_tabs_and_no_final_newline),
		cmocka_unit_test(order_rejects_cycles),
		cmocka_unit_test(parser_rejects_missing_dependency),
		cmocka_unit_test(parser_rejects_garbage),
		cmocka_unit_test(parser_rejects_nul_and_enforces_bounds),
		cmocka_unit_test(load_without_modules_dep_loads_nothing),
		cmocka_unit_test(load_reports_missing_module_files),
	};

	return cmocka_run_group_tests_name("guest_modules", tests, NULL, NULL);
}
