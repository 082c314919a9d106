/* Unit tests for the guest's timer check (src/guest/clock.c): sysfs' clockevents directory and
 * /proc/interrupts are laid out in a temporary directory as the kernel shows them (the samples
 * are what a microvm guest showed, with and without `noapictimer`). */
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

#include "guest/clock.h"
#include "proto/messages.h"

static const char up_interrupts[] =
	"           CPU0       \n"
	" 48:          0   IO-APIC   9-edge      ACPI:Ged\n"
	" 49:          6   IO-APIC   4-edge      ttyS0\n"
	"NMI:          0   Non-maskable interrupts\n"
	"LOC:        156   Local timer interrupts\n"
	"SPU:          0   Spurious interrupts\n"
	"ERR:          0\n"
	"MIS:          0\n";

static const char smp_no_timer_interrupts[] =
	"           CPU0       CPU1       \n"
	" 49:          0          4   IO-APIC   4-edge      ttyS0\n"
	"LOC:          0          0   Local timer interrupts\n"
	"CAL:         25         34   Function call interrupts\n";

struct fixture {
	char dir[64];
	char device_dir[128];
	char current[192];
	char interrupts[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/emberd-clock.XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->device_dir, sizeof(f->device_dir), "%s/clockevent0", f->dir);
	snprintf(f->current, sizeof(f->current), "%s/current_device", f->device_dir);
	snprintf(f->interrupts, sizeof(f->interrupts), "%s/interrupts", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	unlink(f->current);
	unlink(f->interrupts);
	rmdir(f->device_dir);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void write_text(const char *path, const char *text)
{
	FILE *out = fopen(path, "w");

	assert_non_null(out);
	assert_true(fputs(text, out) >= 0);
	assert_int_equal(fclose(out), 0);
}

static void lay_out(const struct fixture *f, const char *device, const char *interrupts)
{
	assert_true(mkdir(f->device_dir, 0755) == 0 || access(f->device_dir, F_OK) == 0);
	write_text(f->current, device);
	if (interrupts != NULL)
		write_text(f->interrupts, interrupts);
	else
		unlink(f->interrupts);
}

static void assert_no_timer(const struct fixture *f)
{
	struct ember_error *err = NULL;

	assert_int_equal(guest_check_timer(f->dir, f->interrupts, &err), -1);
	assert_non_null(err);
	assert_int_equal(err->kind, EMBER_E_GUEST);
	assert_int_equal(strncmp(err->message, PROTO_CONSOLE_NO_TIMER,
				 strlen(PROTO_CONSOLE_NO_TIMER)), 0);
	ember_error_free(&err);
}

static void assert_passes(const struct fixture *f)
{
	struct ember_error *err = NULL;

	assert_int_equal(guest_check_timer(f->dir, f->interrupts, &err), 0);
	assert_null(err);
}

static void counts_local_timer_interrupts_of_every_cpu(void **state)
{
	static const char smp[] = "  CPU0 CPU1 CPU2\nLOC:  7  0  35   Local timer interrupts\n";
	uint64_t total = 99;

	(void)state;
	assert_true(guest_local_timer_interrupts(up_interrupts, strlen(up_interrupts), &total));
	assert_int_equal(total, 156);
	assert_true(guest_local_timer_interrupts(smp, strlen(smp), &total));
	assert_int_equal(total, 42);
	assert_true(guest_local_timer_interrupts(smp_no_timer_interrupts,
						 strlen(smp_no_timer_interrupts), &total));
	assert_int_equal(total, 0);
	/* The last row, without its newline; a text cut inside the row counts what is there. */
	assert_true(guest_local_timer_interrupts("LOC: 3 4", 8, &total));
	assert_int_equal(total, 7);
}

static void an_unreadable_row_is_no_answer(void **state)
{
	static const char *const texts[] = {
		"",
		"           CPU0\n NMI:   0   Non-maskable interrupts\n",   /* no LOC row */
		"CPU0\nLOC:   Local timer interrupts\n",                     /* no count */
		"CPU0\nLOC:  12x   Local timer interrupts\n",                /* not a number */
		"CPU0\nLOC: 99999999999999999999 Local timer interrupts\n",  /* too long */
		"CPU0\nLOC: 9999999999999999999 9999999999999999999\n",     /* sum overflows */
		"CPU0\nXLOC: 0\n",                                           /* not the row */
	};
	uint64_t total = 5;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		assert_false(guest_local_timer_interrupts(texts[i], strlen(texts[i]), &total));
	assert_int_equal(total, 5);
}

static void a_working_tick_passes(void **state)
{
	static const char *const devices[] = { "lapic\n", "lapic-deadline\n", "i8253\n", "lapic" };
	struct fixture *f = *state;
	size_t i;

	for (i = 0; i < sizeof(devices) / sizeof(devices[0]); i++) {
		lay_out(f, devices[i], up_interrupts);
		assert_passes(f);
	}
	/* A device other than the LAPIC has its own interrupt: LOC 0 means nothing there. */
	lay_out(f, "i8253\n", smp_no_timer_interrupts);
	assert_passes(f);
}

/* One vCPU after "APIC frequency too slow, disabling apic timer": the file holds a newline. */
static void no_tick_device_is_no_timer(void **state)
{
	static const char *const empties[] = { "\n", "", " \n" };
	struct fixture *f = *state;
	size_t i;

	for (i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
		lay_out(f, empties[i], up_interrupts);
		assert_no_timer(f);
	}
}

/* More vCPUs: the LAPIC stays as a stand-in ("lapic") that never fires. */
static void a_lapic_that_never_fired_is_no_timer(void **state)
{
	struct fixture *f = *state;

	lay_out(f, "lapic\n", smp_no_timer_interrupts);
	assert_no_timer(f);
	/* Without /proc/interrupts it cannot be told: passes. */
	lay_out(f, "lapic\n", NULL);
	assert_passes(f);
}

/* Nothing to check is no reason to stop a guest: a kernel without sysfs clockevents, or a
 * directory without CPU 0's entry. */
static void a_missing_device_file_passes(void **state)
{
	struct fixture *f = *state;
	struct ember_error *err = NULL;

	assert_int_equal(guest_check_timer(f->dir, f->interrupts, &err), 0);
	assert_int_equal(guest_check_timer("/nonexistent/clockevents", "/nonexistent/interrupts",
					   &err), 0);
	assert_null(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(counts_local_timer_interrupts_of_every_cpu),
		cmocka_unit_test(an_unreadable_row_is_no_answer),
		cmocka_unit_test_setup_teardown(a_working_tick_passes, setup, teardown),
		cmocka_unit_test_setup_teardown(no_tick_device_is_no_timer, setup, teardown),
		cmocka_unit_test_setup_teardown(a_lapic_that_never_fired_is_no_timer, setup,
						teardown),
		cmocka_unit_test_setup_teardown(a_missing_device_file_passes, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
