/* ember-vm - boots one microVM without the daemon, runs a script of requests against its agent,
 * prints the results as JSON and tears the VM down. The low-level harness behind the guest-side
 * end-to-end tests and the boot benchmarks; it shares the daemon's driver and channel code. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/encode.h"
#include "channel/channel.h"
#include "sandbox/catalog.h"
#include "sandbox/template.h"
#include "util/cleanup.h"
#include "util/fdio.h"
#include "util/ids.h"
#include "util/jsonutil.h"
#include "util/text.h"
#include "util/timeutil.h"
#include "vmm/vmm.h"

#define SCRIPT_MAX (64 * 1024 * 1024)

struct options {
	const char *images_dir;
	const char *pack;
	const char *vmm;
	const char *run_base;
	enum vmm_accel accel;
	unsigned vcpus;
	unsigned memory_mib;
	unsigned overlay_mib;
	int boot_timeout_ms;
	bool keep_dir;
	const char *template_dir;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: ember-vm [options] < script.json\n"
		"Boots one microVM, runs the requests in the JSON script on stdin, prints JSON results.\n"
		"\n"
		"  --images DIR         images directory (default $IMAGES_DIR or /var/lib/emberd/images)\n"
		"  --pack NAME          language pack (default python)\n"
		"  --vmm NAME           qemu (default) or firecracker\n"
		"  --accel MODE         auto (default), kvm or tcg\n"
		"  --vcpus N            default from the pack\n"
		"  --memory-mib N       default from the pack\n"
		"  --overlay-mib N      writable layer size, default from the pack\n"
		"  --boot-timeout-ms N  default 60000\n"
		"  --run-base DIR       where the VM's runtime directory is made (default /tmp)\n"
		"  --keep-dir           keep the runtime directory (console log) afterwards\n"
		"  --template DIR       run the script in a clone restored from the template in DIR\n"
		"                       (DIR/memory + DIR/state), making the template first if DIR\n"
		"                       has none (docs/snapshots.md)\n"
		"  --help, --version\n"
		"\n"
		"Script: {\"steps\":[{\"exec\":{\"code\":\"print(1)\",\"stdin\":\"...\",\"timeout_ms\":N,\n"
		"          \"output_limit\":N,\"env\":[\"K=V\"]}}, {\"ps\":{}}, {\"ping\":{}}]}\n"
		"Output: {\"boot_ms\":N,\"ready\":{...},\"results\":[...]} (stdout/stderr bytes are text\n"
		"when valid UTF-8, else base64, see *_encoding). Exit status 0 when the VM booted and\n"
		"every step got an answer (whatever the exec's own exit code), 1 otherwise.\n");
}

static int parse_uint_arg(const char *s, unsigned long max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v == 0 || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static json_t *run_exec(struct channel *ch, const struct pack *pack, json_t *spec,
			struct ember_error **err)
{
	static const char *const keys[] = { "code", "stdin", "timeout_ms", "output_limit", "env",
					    NULL };
	struct channel_exec_request req = { 0 };
	struct channel_exec_result res = { 0 };
	char *env[PROTO_ENV_MAX];
	const char *code, *stdin_text = NULL;
	size_t code_len, stdin_len = 0, i;
	uint64_t timeout = pack->defaults.exec_timeout_ms, limit = pack->defaults.output_limit_bytes;
	json_t *env_arr, *out;
	int64_t t0;

	if (!json_is_object(spec) || json_check_keys(spec, keys, EMBER_E_INVALID, err) < 0 ||
	    json_get_string(spec, "code", true, PROTO_CODE_MAX, &code, &code_len, EMBER_E_INVALID,
			    err) < 0 ||
	    json_get_string(spec, "stdin", false, 1 << 20, &stdin_text, &stdin_len, EMBER_E_INVALID,
			    err) < 0 ||
	    json_get_uint(spec, "timeout_ms", false, 1, PROTO_TIMEOUT_MS_MAX, &timeout,
			  EMBER_E_INVALID, err) < 0 ||
	    json_get_uint(spec, "output_limit", false, 0, PROTO_OUTPUT_LIMIT_MAX, &limit,
			  EMBER_E_INVALID, err) < 0)
		return NULL;
	env_arr = json_object_get(spec, "env");
	if (env_arr != NULL && (!json_is_array(env_arr) || json_array_size(env_arr) > PROTO_ENV_MAX)) {
		ember_error_set(err, EMBER_E_INVALID, 0, "`env` must be an array of NAME=value");
		return NULL;
	}
	for (i = 0; env_arr != NULL && i < json_array_size(env_arr); i++) {
		env[i] = (char *)json_string_value(json_array_get(env_arr, i));
		if (env[i] == NULL) {
			ember_error_set(err, EMBER_E_INVALID, 0, "`env` entries must be strings");
			return NULL;
		}
	}
	req.argv = pack->interpreter;
	req.argc = pack->interpreter_argc;
	req.env = env;
	req.envc = env_arr != NULL ? json_array_size(env_arr) : 0;
	req.code = code;
	req.code_len = code_len;
	req.has_stdin = stdin_text != NULL;
	req.stdin_data = (const uint8_t *)stdin_text;
	req.stdin_len = stdin_len;
	req.timeout_ms = (uint32_t)timeout;
	req.output_limit = limit;
	req.max_processes = 256;
	t0 = time_mono_us();
	if (channel_exec(ch, &req, &res, err) < 0)
		return NULL;
	out = json_pack("{s:i, s:i, s:b, s:I, s:I, s:b, s:b, s:I, s:I}", "exit_code",
			res.exit.exit_code, "signal", res.exit.signal, "timed_out",
			res.exit.timed_out, "duration_ms", (json_int_t)res.exit.duration_ms,
			"round_trip_us", (json_int_t)(time_mono_us() - t0), "stdout_truncated",
			res.exit.stdout_truncated, "stderr_truncated", res.exit.stderr_truncated,
			"stdout_len", (json_int_t)res.stdout_len, "stderr_len",
			(json_int_t)res.stderr_len);
	if (out == NULL || json_set_bytes(out, "stdout", res.stdout_data, res.stdout_len, err) < 0 ||
	    json_set_bytes(out, "stderr", res.stderr_data, res.stderr_len, err) < 0) {
		json_decref(out);
		out = NULL;
	}
	channel_exec_result_release(&res);
	return out;
}

static json_t *run_ps(struct channel *ch, struct ember_error **err)
{
	struct proto_process *procs = NULL;
	size_t count = 0;
	json_t *out;

	if (channel_ps(ch, time_mono_ms() + 10000, &procs, &count, err) < 0)
		return NULL;
	out = api_encode_processes(procs, count);
	free(procs);
	return out;
}

static json_t *run_step(struct channel *ch, const struct pack *pack, json_t *step)
{
	struct ember_error *err = NULL;
	json_t *result = NULL, *spec;
	int64_t t0 = time_mono_us();

	if (!json_is_object(step) || json_object_size(step) != 1) {
		ember_error_set(&err, EMBER_E_INVALID, 0, "each step must be an object with one key");
	} else if ((spec = json_object_get(step, "exec")) != NULL) {
		result = run_exec(ch, pack, spec, &err);
	} else if (json_object_get(step, "ps") != NULL) {
		result = run_ps(ch, &err);
	} else if (json_object_get(step, "ping") != NULL) {
		if (channel_ping(ch, time_mono_ms() + 10000, &err) == 0)
			result = json_pack("{s:I}", "round_trip_us",
					   (json_int_t)(time_mono_us() - t0));
	} else {
		ember_error_set(&err, EMBER_E_INVALID, 0, "unknown step (exec, ps, ping)");
	}
	if (result == NULL) {
		result = json_pack("{s:{s:s, s:s}}", "error", "code",
				   ember_error_kind_name(err != NULL ? err->kind : EMBER_E_INTERNAL),
				   "message", err != NULL ? err->message : "out of memory");
		ember_error_free(&err);
	}
	return result;
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
	if (fd < 0 || channel_open(fd, id, vmm_exit_fd(*vm), deadline, ch, ready, err) < 0)
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

static void print_console_tail(const char *path)
{
	_cleanup_free_ char *text = NULL;
	size_t len;

	if (file_read_all(path, 1 << 20, &text, &len, NULL) < 0)
		return;
	fprintf(stderr, "--- guest console (%s), last bytes ---\n%s\n---\n", path,
		len > 4000 ? text + len - 4000 : text);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "images", required_argument, NULL, 'i' },
		{ "pack", required_argument, NULL, 'p' },
		{ "vmm", required_argument, NULL, 'V' },
		{ "accel", required_argument, NULL, 'a' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "memory-mib", required_argument, NULL, 'm' },
		{ "overlay-mib", required_argument, NULL, 'o' },
		{ "boot-timeout-ms", required_argument, NULL, 'b' },
		{ "run-base", required_argument, NULL, 'r' },
		{ "keep-dir", no_argument, NULL, 'k' },
		{ "template", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'v' },
		{ 0 },
	};
	struct options opt = {
		.images_dir = getenv("IMAGES_DIR") != NULL ? getenv("IMAGES_DIR")
							   : "/var/lib/emberd/images",
		.pack = "python",
		.vmm = "qemu",
		.run_base = "/tmp",
		.boot_timeout_ms = 60000,
	};
	struct vmm_driver_config dcfg = { 0 };
	struct vmm_boot_config bcfg = { 0 };
	struct catalog cat = { 0 };
	struct vmm_driver *drv = NULL;
	struct vmm_instance *vm = NULL;
	struct channel *ch = NULL;
	struct ember_error *err = NULL;
	struct proto_ready ready;
	const struct pack *pack;
	_cleanup_free_ char *script_text = NULL;
	json_t *script = NULL, *results = NULL, *steps;
	char run_dir[PATH_MAX] = "", id[64], cmdline_extra[128], *text;
	char template_memory[PATH_MAX];
	int64_t t0, boot_ms, template_ms = 0;
	size_t script_len, i;
	unsigned tmp;
	int c, status = 1, failed_steps = 0;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'i': opt.images_dir = optarg; break;
		case 'p': opt.pack = optarg; break;
		case 'V': opt.vmm = optarg; break;
		case 'r': opt.run_base = optarg; break;
		case 'k': opt.keep_dir = true; break;
		case 't': opt.template_dir = optarg; break;
		case 'a':
			if (vmm_parse_accel(optarg, &opt.accel) < 0)
				goto bad_usage;
			break;
		case 'c':
			if (parse_uint_arg(optarg, 64, &opt.vcpus) < 0)
				goto bad_usage;
			break;
		case 'm':
			if (parse_uint_arg(optarg, 65536, &opt.memory_mib) < 0)
				goto bad_usage;
			break;
		case 'o':
			if (parse_uint_arg(optarg, 65536, &opt.overlay_mib) < 0)
				goto bad_usage;
			break;
		case 'b':
			if (parse_uint_arg(optarg, 3600000, &tmp) < 0)
				goto bad_usage;
			opt.boot_timeout_ms = (int)tmp;
			break;
		case 'h': usage(stdout); return 0;
		case 'v': printf("ember-vm %s\n", EMBER_VERSION); return 0;
		default: goto bad_usage;
		}
	}
	if (optind != argc)
		goto bad_usage;
	signal(SIGPIPE, SIG_IGN);

	if (file_read_all("/dev/stdin", SCRIPT_MAX, &script_text, &script_len, &err) < 0 ||
	    json_parse_object(script_text, script_len, &script, EMBER_E_INVALID, &err) < 0)
		goto fail;
	steps = json_object_get(script, "steps");
	if (!json_is_array(steps)) {
		ember_error_set(&err, EMBER_E_INVALID, 0, "script needs a `steps` array");
		goto fail;
	}
	if (catalog_load(opt.images_dir, &cat, &err) < 0)
		goto fail;
	pack = catalog_find(&cat, opt.pack);
	if (pack == NULL) {
		char names[256];

		catalog_names(&cat, names, sizeof(names));
		ember_error_set(&err, EMBER_E_INVALID, 0, "unknown pack `%s` (available: %s)",
				opt.pack, names);
		goto fail;
	}
	dcfg.name = opt.vmm;
	dcfg.accel = opt.accel;
	if (catalog_check_files(&cat, strcmp(opt.vmm, "firecracker") == 0, &err) < 0 ||
	    vmm_driver_create(&dcfg, &drv, &err) < 0 ||
	    id_generate("vm_", id, sizeof(id), &err) < 0)
		goto fail;
	fprintf(stderr, "ember-vm: %s\n", vmm_driver_description(drv));
	if (snprintf(run_dir, sizeof(run_dir), "%s/ember-vm.XXXXXX", opt.run_base) >=
		    (int)sizeof(run_dir) ||
	    mkdtemp(run_dir) == NULL) {
		run_dir[0] = '\0';
		ember_error_sys(&err, "create a runtime directory under `%s`", opt.run_base);
		goto fail;
	}
	snprintf(cmdline_extra, sizeof(cmdline_extra), "emberd.overlay_mib=%u",
		 opt.overlay_mib ? opt.overlay_mib : pack->defaults.overlay_mib);
	bcfg.sandbox_id = id;
	bcfg.run_dir = run_dir;
	bcfg.kernel_bzimage = cat.bzimage;
	bcfg.kernel_vmlinux = cat.vmlinux;
	bcfg.initramfs = cat.initramfs;
	bcfg.pack_image = pack->image;
	bcfg.cmdline_extra = cmdline_extra;
	bcfg.vcpus = opt.vcpus ? opt.vcpus : pack->defaults.vcpus;
	bcfg.memory_mib = opt.memory_mib ? opt.memory_mib : pack->defaults.memory_mib;

	if (opt.template_dir != NULL) {
		char state[PATH_MAX];

		snprintf(state, sizeof(state), "%s/state", opt.template_dir);
		snprintf(template_memory, sizeof(template_memory), "%s/memory", opt.template_dir);
		if (access(state, R_OK) != 0) {
			t0 = time_mono_ms();
			if (make_template(drv, &bcfg, pack, opt.template_dir,
					  t0 + opt.boot_timeout_ms, &err) < 0)
				goto fail;
			template_ms = time_mono_ms() - t0;
			fprintf(stderr, "ember-vm: template made in %lld ms\n", (long long)template_ms);
		}
		bcfg.memory_file = template_memory;
		bcfg.memory_shared = false;
		bcfg.restore_state = strdup(state);
	}
	t0 = time_mono_ms();
	if (boot_vm(drv, &bcfg, id, t0 + opt.boot_timeout_ms, &vm, &ch, &ready, &err) < 0)
		goto fail;
	boot_ms = time_mono_ms() - t0;
	fprintf(stderr, "ember-vm: %s ready in %lld ms (guest uptime %llu ms)\n", id,
		(long long)boot_ms, (unsigned long long)ready.uptime_ms);

	results = json_array();
	for (i = 0; i < json_array_size(steps); i++) {
		json_t *r = run_step(ch, pack, json_array_get(steps, i));

		if (json_object_get(r, "error") != NULL)
			failed_steps++;
		json_array_append_new(results, r);
	}
	{
		json_t *out = json_pack("{s:s, s:s, s:I, s:I, s:{s:I, s:s, s:s, s:I}, s:O, s:I, s:s, "
					"s:s}", "mode", bcfg.restore_state != NULL ? "clone" : "cold",
					"sandbox_id", id, "template_ms", (json_int_t)template_ms,
					"boot_ms", (json_int_t)boot_ms, "ready",
					"version", (json_int_t)ready.version, "agent", ready.agent,
					"sandbox_id", ready.sandbox_id, "uptime_ms",
					(json_int_t)ready.uptime_ms, "results", results, "vmm_pid",
					(json_int_t)vmm_pid(vm), "run_dir", run_dir, "accel",
					vmm_driver_accel_name(drv));

		text = out != NULL ? json_dumps(out, JSON_COMPACT) : NULL;
		if (text != NULL)
			printf("%s\n", text);
		free(text);
		json_decref(out);
	}
	status = failed_steps == 0 ? 0 : 1;
	goto out;

bad_usage:
	usage(stderr);
	return 2;
fail:
	fprintf(stderr, "ember-vm: error: %s\n", err != NULL ? err->message : "unknown");
	if (vm != NULL)
		print_console_tail(vmm_console_log(vm));
	ember_error_free(&err);
	status = 1;
out:
	channel_close(ch);
	if (vm != NULL) {
		vmm_stop(vm, time_mono_ms() + 3000, NULL);
		vmm_instance_free(vm);
	}
	if (run_dir[0] != '\0' && !opt.keep_dir)
		dir_remove_tree(run_dir, NULL);
	vmm_driver_free(drv);
	catalog_release(&cat);
	free((char *)bcfg.restore_state);
	json_decref(results);
	json_decref(script);
	return status;
}
