/* Unit tests for the generic VMM layer (src/vmm/vmm.c): a saved VM's files, its state and, for a
 * driver that keeps guest RAM apart (Firecracker), the "<state>.mem" companion, are named,
 * counted and removed in one place. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tmpdir.h"
#include "vmm/driver.h"
#include "vmm/vmm.h"

static int ok_init(struct vmm_driver *drv, const struct vmm_driver_config *cfg,
		   struct ember_error **err)
{
	(void)drv;
	(void)cfg;
	(void)err;
	return 0;
}

static const struct vmm_driver_ops apart_ops = {
	.name = "apart",
	.init = ok_init,
	.saves_memory_apart = true,
};

static const struct vmm_driver_ops whole_ops = {
	.name = "whole",
	.init = ok_init,
};

static struct vmm_driver *driver(const struct vmm_driver_ops *ops)
{
	struct vmm_driver_config cfg = { .name = ops->name, .accel = VMM_ACCEL_TCG,
					 .cgroup_root = "none", .no_jail = true };
	struct vmm_driver *drv = NULL;

	assert_int_equal(vmm_driver_create_with_ops(ops, &cfg, &drv, NULL), 0);
	return drv;
}

static void write_file(const char *path, size_t size)
{
	char buf[100] = { 0 };
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_true(size <= sizeof(buf));
	assert_int_equal(write(fd, buf, size), (ssize_t)size);
	close(fd);
}

static void the_companion_is_the_state_path_plus_mem(void **state)
{
	char out[PATH_MAX], tiny[8];

	(void)state;
	assert_int_equal(vmm_saved_state_path_mem("/s/sb_1.vmstate", out, sizeof(out), NULL), 0);
	assert_string_equal(out, "/s/sb_1.vmstate" VMM_SAVED_MEM_SUFFIX);
	assert_string_equal(VMM_SAVED_MEM_SUFFIX, ".mem");
	assert_int_equal(vmm_saved_state_path_mem("/s/sb_1.vmstate", tiny, sizeof(tiny), NULL), -1);
	assert_true(vmm_saved_state_is_mem("sb_1.vmstate.mem", "sb_1.vmstate"));
	assert_false(vmm_saved_state_is_mem("sb_1.vmstate", "sb_1.vmstate"));
	assert_false(vmm_saved_state_is_mem("sb_2.vmstate.mem", "sb_1.vmstate"));
	assert_false(vmm_saved_state_is_mem("sb_1.vmstate.mem.part", "sb_1.vmstate"));
	assert_false(vmm_saved_state_is_mem("sb_1.vmstate.memx", "sb_1.vmstate"));
}

static void the_size_counts_both_files_and_a_driver_may_require_the_companion(void **state)
{
	struct vmm_driver *apart = driver(&apart_ops), *whole = driver(&whole_ops);
	char saved[PATH_MAX], mem[PATH_MAX];
	uint64_t bytes = 0;

	(void)state;
	snprintf(saved, sizeof(saved), "%s/sb_size.vmstate", tmpdir_path);
	assert_int_equal(vmm_saved_state_path_mem(saved, mem, sizeof(mem), NULL), 0);
	errno = 0;
	assert_int_equal(vmm_saved_state_size(NULL, saved, &bytes), -1);
	assert_int_equal(errno, ENOENT);

	write_file(saved, 10);
	assert_int_equal(vmm_saved_state_size(NULL, saved, &bytes), 0);
	assert_int_equal(bytes, 10);
	assert_int_equal(vmm_saved_state_size(whole, saved, &bytes), 0);
	assert_int_equal(bytes, 10);
	/* a Firecracker state without its RAM is no saved VM */
	assert_int_equal(vmm_saved_state_size(apart, saved, &bytes), -1);
	assert_true(vmm_driver_saves_memory_apart(apart));
	assert_false(vmm_driver_saves_memory_apart(whole));

	write_file(mem, 32);
	assert_int_equal(vmm_saved_state_size(apart, saved, &bytes), 0);
	assert_int_equal(bytes, 42);
	assert_int_equal(vmm_saved_state_size(NULL, saved, &bytes), 0);
	assert_int_equal(bytes, 42);

	vmm_saved_state_remove(saved);
	assert_int_equal(access(saved, F_OK), -1);
	assert_int_equal(access(mem, F_OK), -1);
	vmm_saved_state_remove(saved); /* nothing there: no harm */
	vmm_driver_free(apart);
	vmm_driver_free(whole);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_companion_is_the_state_path_plus_mem),
		cmocka_unit_test(the_size_counts_both_files_and_a_driver_may_require_the_companion),
	};

	return cmocka_run_group_tests_name("vmm", tests, tmpdir_group_setup, tmpdir_group_teardown);
}
