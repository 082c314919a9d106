/* script.h - the steps of an ember-vm script ({"exec":{...}}, {"ps":{}}, {"ping":{}}) run
 * against one booted VM's agent channel. Called by ember-vm's main once the VM is ready; never
 * boots, stops or frees the VM, and never fails the run: a failed step becomes an error result. */
#ifndef EMBER_VM_SCRIPT_H
#define EMBER_VM_SCRIPT_H

#include <jansson.h>

#include "channel/channel.h"
#include "sandbox/catalog.h"

/* One result object per step; *failed counts the steps whose result is {"error": ...}.
 * NULL only when out of memory. */
json_t *script_run_steps(struct channel *ch, const struct pack *pack, json_t *steps,
			 unsigned *failed);

#endif
