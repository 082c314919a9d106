/* output.h - how emberctl shows the daemon's answers: compact JSON for --json, else text for
 * people (exec's streams as raw bytes, tables, key/value lists).
 * Called by the commands with a reply in hand; never talks to the daemon. */
#ifndef EMBERCTL_OUTPUT_H
#define EMBERCTL_OUTPUT_H

#include <jansson.h>

/* v as one line of compact JSON. */
void output_json(json_t *v);

/* v indented, for a person. */
void output_json_indented(json_t *v);

/* An exec's streams as they were, notes on stderr; returns its exit code (128 + the signal
 * when killed by one, as a shell reports it). */
int output_exec_result(json_t *reply);

/* GET /sandboxes as a table. */
void output_sandbox_list(json_t *reply);

/* GET /sandboxes/ID as `key value` lines, then the console's tail. */
void output_inspect(json_t *info, json_t *console);

#endif
