/* options.h - ember-vm's command line: one table gives each flag its name, the field it sets, its
 * parser and its --help text, so the help is generated from what is parsed and cannot drift.
 * Called once by main before anything starts; never touches the system beyond printing. */
#ifndef EMBER_VM_OPTIONS_H
#define EMBER_VM_OPTIONS_H

#include <stdbool.h>

#include "vmm/vmm.h"

struct options {
	const char *images_dir;
	const char *pack;
	const char *vmm;
	const char *run_base;
	enum vmm_accel accel;
	unsigned vcpus;           /* 0: the pack's */
	unsigned memory_mib;      /* 0: the pack's */
	unsigned overlay_mib;     /* 0: the pack's */
	unsigned boot_timeout_ms;
	bool keep_dir;
	const char *template_dir; /* NULL: boot cold */
};

enum options_result {
	OPTIONS_RUN = 0,    /* parsed: run the script */
	OPTIONS_EXIT = 1,   /* --help or --version was printed: exit 0 */
	OPTIONS_BAD = -1,   /* usage was printed to stderr: exit 2 */
};

/* Fills o with the defaults (IMAGES_DIR from the environment), then argv. */
enum options_result options_parse(int argc, char **argv, struct options *o);

#endif
