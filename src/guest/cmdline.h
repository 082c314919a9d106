/* cmdline.h - the `emberd.*` options of the kernel command line (/proc/cmdline).
 * Called by boot.c in PID 1 mode; pure parsing, also driven by unit tests.
 * Never fails the boot: a bad or unknown option is reported and the default kept. */
#ifndef EMBER_GUEST_CMDLINE_H
#define EMBER_GUEST_CMDLINE_H

#include <stddef.h>

#include "util/error.h"

struct guest_cmdline {
	unsigned overlay_mib; /* emberd.overlay_mib=N: size of the writable layer (tmpfs) */
};

void guest_cmdline_defaults(struct guest_cmdline *opts);

/* Parses the text of /proc/cmdline (kernel quoting: "a b" keeps blanks). Options that are not
 * `emberd.*` are ignored. Every valid emberd option is applied even when another one is bad;
 * the first bad or unknown one is reported as an error (-1) after parsing everything. */
int guest_cmdline_parse(const char *text, size_t len, struct guest_cmdline *opts,
			struct ember_error **err);

#endif
