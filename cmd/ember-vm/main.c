/* ember-vm - boots one microVM without the daemon, runs a script of requests against its agent,
 * prints the results as JSON and tears the VM down. The low-level harness behind the guest-side
 * end-to-end tests and the boot benchmarks; it shares the daemon's driver and channel code.
 * main runs one phase per function: parse (options.c), read the script, set up, optionally make
 * the template, boot, run the steps (script.c), print, tear down. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "channel/channel.h"
#include "options.h"
#include "sandbox/catalog.h"
#include "sandbox/template.h"
#include "script.h"
#include "util/cleanup.h"
#include "util/fdio.h"
#include "util/ids.h"
#include "util/jsonutil.h"
#include "util/text.h"
#include "util/timeutil.h"
#include "vmm/vmm.h"

#define SCRIPT_MAX (64 * 1024 * 1024)
#define STOP_GRACE_MS 3000

/* Everything one run holds; teardown releases what is there. */
struct vm_run {
	struct options opt;
	json_t *script;
	json_t *steps;                  /* borrowed from script */
	struct catalog cat;
	const struct pack *pack;
	struct vmm_driver *drv;
	struct vmm_boot_config bcfg;
	struct vmm_instance *vm;
	struct channel *ch;
	struct proto_ready ready;
	char id[64];
	char run_dir[PATH_MAX];         /* "" until made */
	char cmdline_extra[128];
	char template_memory[PATH_MAX];
	char template_state[PATH_MAX];
	int64_t template_ms;
	int64_t boot_ms;
};

static int read_script(struct vm_run *run, struct ember_error **err)
{
	_cleanup_free_ char *text = NULL;
	size_t len;

	if (file_read_all("/dev/stdin", SCRIPT_MAX, &text, &len, err) < 0 ||
	    json_parse_object(text, len, &run->script, EMBER_E_INVALID, err) < 0)
		return -1;
	run->steps = json_object_get(run->script, "steps");
	if (!json_is_array(run->steps))
		return ember_error_set(err, EMBER_E_INVALID, 0, "script needs a `steps` array");
	return 0;
}

static int load_pack(struct vm_run *run, struct ember_error **err)
{
	char names[256];

	if (catalog_load(run->opt.images_dir, &run->cat, err) < 0)
		return -1;
	run->pack = catalog_find(&run->cat, run->opt.pack);
	if (run->pack != NULL)
		return 0;
	catalog_names(&run->cat, names, sizeof(names));
	return ember_error_set(err, EMBER_E_INVALID, 0, "unknown pack `%s` (available: %s)",
			       run->opt.pack, names);
}

static int make_run_dir(struct vm_run *run, struct ember_error **err)
{
	if (snprintf(run->run_dir, sizeof(run->run_dir), "%s/ember-vm.XXXXXX",
		     run->opt.run_base) >= (int)sizeof(run->run_dir) ||
	    mkdtemp(run->run_dir) == NULL) {
		run->run_dir[0] = '\0';
		return ember_error_sys(err, "create a runtime directory under `%s`",
				       run->opt.run_base);
	}
	return 0;
}

/* The driver, the VM's id and runtime directory, and its boot configuration (cold). */
static int set_up(struct vm_run *run, struct ember_error **err)
{
	const struct options *opt = &run->opt;
	/* A root developer's tool: its VMMs run unjailed (--help says so). Its --template clones
	 * map DIR/memory by path, which a jail could only give them writable. */
	struct vmm_driver_config dcfg = { .name = opt->vmm, .accel = opt->accel, .no_jail = true };
	const struct pack *pack = run->pack;

	if (catalog_check_files(&run->cat, strcmp(opt->vmm, "firecracker") == 0, err) < 0 ||
	    vmm_driver_create(&dcfg, &run->drv, err) < 0 ||
	    id_generate("vm_", run->id, sizeof(run->id), err) < 0)
		return -1;
	fprintf(stderr, "ember-vm: %s\n", vmm_driver_description(run->drv));
	if (make_run_dir(run, err) < 0)
		return -1;
	snprintf(run->cmdline_extra, sizeof(run->cmdline_extra), "emberd.overlay_mib=%u",
		 opt->overlay_mib ? opt->overlay_mib : pack->defaults.overlay_mib);
	run->bcfg = (struct vmm_boot_config){
		.sandbox_id = run->id,
		.run_dir = run->run_dir,
		.kernel_bzimage = run->cat.bzimage,
		.kernel_vmlinux = run->cat.vmlinux,
		.initramfs = run->cat.initramfs,
		.pack_image = pack->image,
		.cmdline_extra = run->cmdline_extra,
		.vcpus = opt->vcpus ? opt->vcpus : pack->defaults.vcpus,
		.memory_mib = opt->memory_mib ? opt->memory_mib : pack->defaults.memory_mib,
	};
	return 0;
}

/* Starts a VM (cold or restored, per bcfg) and completes the agent handshake. */
static int boot_vm(struct vmm_driver *drv, struct vmm_boot_config *bcfg, const char *id,
		   int64_t deadline, struct vmm_instance **vm, struct channel **ch,
		   struct proto_ready *ready, struct ember_error **err)
{
	int fd;

	bcfg->deadline_ms = deadline;
	if (vmm_start(drv, bcfg, vm, err) < 0)
		return -1;
	fd = vmm_connect_agent(*vm, deadline, err);
	if (fd < 0 || channel_open(fd, id, NULL, NULL, vmm_exit_fd(*vm), deadline, ch, ready, err) < 0)
		return ember_error_wrap(err, "boot");
	return 0;
}

/* Makes dir/memory + dir/state from a freshly booted VM (the daemon's template step). */
static int make_template(struct vmm_driver *drv, const struct vmm_boot_config *base,
			 const struct pack *pack, const char *dir, int64_t deadline,
			 struct ember_error **err)
{
	char memory[PATH_MAX], state[PATH_MAX], run_dir[PATH_MAX];
	int ret;

	snprintf(memory, sizeof(memory), "%s/memory", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(run_dir, sizeof(run_dir), "%s/run", dir);
	if (mkdir(run_dir, 0700) < 0 && errno != EEXIST)
		return ember_error_sys(err, "create `%s`", run_dir);
	ret = template_snapshot_vm(drv, base, pack, run_dir, "tpl_ember_vm", memory, state,
				   deadline, err);
	dir_remove_tree(run_dir, NULL);
	return ret;
}

static void print_console_tail(struct vmm_instance *vm)
{
	char text[4001];
	size_t len = vmm_console_tail(vm, text, sizeof(text) - 1, NULL);

	text[len] = '\0';
	fprintf(stderr, "--- guest console, last bytes ---\n%s\n---\n", text);
}

/* --keep-dir: the console's ring (at most VMM_CONSOLE_RING_BYTES) as run_dir/console.log. */
static void save_console(struct vm_run *run)
{
	_cleanup_free_ char *text = malloc(VMM_CONSOLE_RING_BYTES);
	char path[PATH_MAX];
	size_t len;

	if (text == NULL)
		return;
	len = vmm_console_tail(run->vm, text, VMM_CONSOLE_RING_BYTES, NULL);
	snprintf(path, sizeof(path), "%s/console.log", run->run_dir);
	file_write_atomic(path, text, len, 0600, false, NULL);
}

/* With --template: makes the template when DIR has none, then boots a clone of it. */
static int use_template(struct vm_run *run, struct ember_error **err)
{
	const char *dir = run->opt.template_dir;
	int64_t t0;

	snprintf(run->template_state, sizeof(run->template_state), "%s/state", dir);
	snprintf(run->template_memory, sizeof(run->template_memory), "%s/memory", dir);
	if (access(run->template_state, R_OK) != 0) {
		t0 = time_mono_ms();
		if (make_template(run->drv, &run->bcfg, run->pack, dir,
				  t0 + run->opt.boot_timeout_ms, err) < 0)
			return -1;
		run->template_ms = time_mono_ms() - t0;
		fprintf(stderr, "ember-vm: template made in %lld ms\n",
			(long long)run->template_ms);
	}
	run->bcfg.memory_file = run->template_memory;
	run->bcfg.memory_shared = false;
	run->bcfg.restore_state = run->template_state;
	return 0;
}

static int boot(struct vm_run *run, struct ember_error **err)
{
	int64_t t0 = time_mono_ms();

	if (boot_vm(run->drv, &run->bcfg, run->id, t0 + run->opt.boot_timeout_ms, &run->vm,
		    &run->ch, &run->ready, err) < 0)
		return -1;
	run->boot_ms = time_mono_ms() - t0;
	fprintf(stderr, "ember-vm: %s ready in %lld ms (guest uptime %llu ms)\n", run->id,
		(long long)run->boot_ms, (unsigned long long)run->ready.uptime_ms);
	return 0;
}

/* The one line of JSON on stdout; "o" hands results over. */
static void print_output(const struct vm_run *run, json_t *results)
{
	_cleanup_json_ json_t *out = json_pack(
		"{s:s, s:s, s:I, s:I, s:{s:I, s:s, s:s, s:I}, s:o, s:I, s:s, s:s}", "mode",
		run->bcfg.restore_state != NULL ? "clone" : "cold", "sandbox_id", run->id,
		"template_ms", (json_int_t)run->template_ms, "boot_ms", (json_int_t)run->boot_ms,
		"ready", "version", (json_int_t)run->ready.version, "agent", run->ready.agent,
		"sandbox_id", run->ready.sandbox_id, "uptime_ms", (json_int_t)run->ready.uptime_ms,
		"results", results, "vmm_pid", (json_int_t)vmm_pid(run->vm), "run_dir", run->run_dir,
		"accel", vmm_driver_accel_name(run->drv));
	_cleanup_free_ char *text = out != NULL ? json_dumps(out, JSON_COMPACT) : NULL;

	if (text != NULL)
		printf("%s\n", text);
}

/* 0 when every step got an answer, 1 when one did not, -1 (with err) when the run failed. */
static int run_script(struct vm_run *run, struct ember_error **err)
{
	json_t *results;
	unsigned failed;

	if (read_script(run, err) < 0 || load_pack(run, err) < 0 || set_up(run, err) < 0 ||
	    (run->opt.template_dir != NULL && use_template(run, err) < 0) || boot(run, err) < 0)
		return -1;
	results = script_run_steps(run->ch, run->pack, run->steps, &failed);
	print_output(run, results);
	return failed == 0 ? 0 : 1;
}

static void report_failure(const struct vm_run *run, const struct ember_error *err)
{
	fprintf(stderr, "ember-vm: error: %s\n", err->message);
	if (run->vm != NULL)
		print_console_tail(run->vm);
}

static void tear_down(struct vm_run *run)
{
	channel_close(run->ch);
	if (run->vm != NULL) {
		vmm_stop(run->vm, time_mono_ms() + STOP_GRACE_MS, NULL);
		if (run->opt.keep_dir)
			save_console(run);
		vmm_instance_free(run->vm);
	}
	if (run->run_dir[0] != '\0' && !run->opt.keep_dir)
		dir_remove_tree(run->run_dir, NULL);
	vmm_driver_free(run->drv);
	catalog_release(&run->cat);
	json_decref(run->script);
}

int main(int argc, char **argv)
{
	struct vm_run run = { 0 };
	struct ember_error *err = NULL;
	int status;

	switch (options_parse(argc, argv, &run.opt)) {
	case OPTIONS_RUN: break;
	case OPTIONS_EXIT: return 0;
	case OPTIONS_BAD: return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	status = run_script(&run, &err);
	if (status < 0) {
		report_failure(&run, err);
		ember_error_free(&err);
		status = 1;
	}
	tear_down(&run);
	return status;
}
