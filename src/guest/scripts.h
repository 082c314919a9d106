/* scripts.h - the Python and JavaScript programs the guest agent carries inside its own binary (the
 * initramfs has no other files of ours, and the packs are read-only images that know nothing of
 * the agent): written out by context.c and forkserver.c when they first need them.
 * The texts are the .py and .js files of src/guest/scripts, assembled in by scripts.c; read-only,
 * NUL-terminated. */
#ifndef EMBER_GUEST_SCRIPTS_H
#define EMBER_GUEST_SCRIPTS_H

#include <stddef.h>

#include "util/error.h"

enum guest_script {
	GUEST_SCRIPT_CONTEXT,    /* scripts/context.py: a python context's interpreter loop */
	GUEST_SCRIPT_FORKSERVER, /* scripts/forkserver.py: the warm interpreter of plain execs */
	GUEST_SCRIPT_CONTEXT_NODE, /* scripts/context.js: a node context's interpreter loop */
};

/* The script's text and length (without the NUL). */
const char *guest_script_text(enum guest_script which, size_t *len);

/* Writes the script to path (0644, root-owned) unless a file is already there; its directory
 * must exist. */
int guest_script_install(enum guest_script which, const char *path, struct ember_error **err);

#endif
