/* opttable.c - flag tables: the generic parsers, the getopt_long loop, --help. */
#include "util/opttable.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* getopt_long's val for row i: clear of every short option. */
#define OPT_VAL_BASE 256

int opt_parse_number(const struct opt_spec *spec, const char *arg, unsigned long long *out,
		     struct ember_error **err)
{
	unsigned long long v;
	char *end;

	/* strtoull negates a minus sign (even after blanks) instead of refusing it. */
	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || strchr(arg, '-') != NULL || v < spec->min ||
	    v > spec->max)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "--%s must be a number between %llu and %llu", spec->name,
				       spec->min, spec->max);
	*out = v;
	return 0;
}

enum opt_result opt_set_unsigned(const struct opt_spec *spec, const char *arg, void *target,
				 struct ember_error **err)
{
	unsigned long long v;

	if (opt_parse_number(spec, arg, &v, err) < 0)
		return OPT_BAD_VALUE;
	*OPT_FIELD(target, spec, unsigned) = (unsigned)v;
	return OPT_OK;
}

enum opt_result opt_set_u64(const struct opt_spec *spec, const char *arg, void *target,
			    struct ember_error **err)
{
	unsigned long long v;

	if (opt_parse_number(spec, arg, &v, err) < 0)
		return OPT_BAD_VALUE;
	*OPT_FIELD(target, spec, uint64_t) = v;
	return OPT_OK;
}

enum opt_result opt_set_size(const struct opt_spec *spec, const char *arg, void *target,
			     struct ember_error **err)
{
	unsigned long long v;

	if (opt_parse_number(spec, arg, &v, err) < 0)
		return OPT_BAD_VALUE;
	*OPT_FIELD(target, spec, size_t) = (size_t)v;
	return OPT_OK;
}

enum opt_result opt_set_string(const struct opt_spec *spec, const char *arg, void *target,
			       struct ember_error **err)
{
	(void)err;
	*OPT_FIELD(target, spec, const char *) = arg;
	return OPT_OK;
}

enum opt_result opt_set_true(const struct opt_spec *spec, const char *arg, void *target,
			     struct ember_error **err)
{
	(void)arg;
	(void)err;
	*OPT_FIELD(target, spec, bool) = true;
	return OPT_OK;
}

enum opt_result opt_set_false(const struct opt_spec *spec, const char *arg, void *target,
			      struct ember_error **err)
{
	(void)arg;
	(void)err;
	*OPT_FIELD(target, spec, bool) = false;
	return OPT_OK;
}

enum opt_result opt_show_version(const struct opt_spec *spec, const char *arg, void *target,
				 struct ember_error **err)
{
	(void)arg;
	(void)target;
	(void)err;
	printf("%s %s\n", spec->key, EMBER_VERSION);
	return OPT_EXIT;
}

/* A number in range, as the flag takes it; out of range is a default meaning "not set". */
static bool show_number(const struct opt_spec *spec, unsigned long long v, size_t index,
			char *buf, size_t size)
{
	if (index > 0 || v < spec->min || v > spec->max)
		return false;
	snprintf(buf, size, "%llu", v);
	return true;
}

bool opt_show_unsigned(const struct opt_spec *spec, const void *target, size_t index, char *buf,
		       size_t size)
{
	return show_number(spec, *OPT_FIELD(target, spec, const unsigned), index, buf, size);
}

bool opt_show_u64(const struct opt_spec *spec, const void *target, size_t index, char *buf,
		  size_t size)
{
	return show_number(spec, *OPT_FIELD(target, spec, const uint64_t), index, buf, size);
}

bool opt_show_size(const struct opt_spec *spec, const void *target, size_t index, char *buf,
		   size_t size)
{
	return show_number(spec, *OPT_FIELD(target, spec, const size_t), index, buf, size);
}

bool opt_show_string(const struct opt_spec *spec, const void *target, size_t index, char *buf,
		     size_t size)
{
	const char *s = *OPT_FIELD(target, spec, const char *const);

	if (index > 0 || s == NULL)
		return false;
	snprintf(buf, size, "%s", s);
	return true;
}

bool opt_show_true(const struct opt_spec *spec, const void *target, size_t index, char *buf,
		   size_t size)
{
	if (index > 0)
		return false;
	snprintf(buf, size, "%s", *OPT_FIELD(target, spec, const bool) ? "true" : "false");
	return true;
}

bool opt_show_false(const struct opt_spec *spec, const void *target, size_t index, char *buf,
		    size_t size)
{
	if (index > 0)
		return false;
	snprintf(buf, size, "%s", *OPT_FIELD(target, spec, const bool) ? "false" : "true");
	return true;
}

const struct opt_spec *opt_table_find(const struct opt_spec *table, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (table[i].name != NULL && strcmp(table[i].name, name) == 0)
			return &table[i];
	}
	return NULL;
}

/* getopt_long's view of the table (headings have no entry) and its short options. */
static void build_getopt(const struct opt_spec *table, size_t n, unsigned flags,
			 struct option *longopts, char *shortopts)
{
	size_t i, k = 0, s = 0;

	if (n > OPT_TABLE_MAX)
		abort();
	if (flags & OPT_IN_ORDER)
		shortopts[s++] = '+';
	for (i = 0; i < n; i++) {
		if (table[i].name == NULL)
			continue;
		longopts[k++] = (struct option){ table[i].name,
						 table[i].arg != NULL ? required_argument
								      : no_argument,
						 NULL, OPT_VAL_BASE + (int)i };
		if (table[i].short_name != 0) {
			shortopts[s++] = table[i].short_name;
			if (table[i].arg != NULL)
				shortopts[s++] = ':';
		}
	}
	longopts[k] = (struct option){ 0 };
	shortopts[s] = '\0';
}

static const struct opt_spec *find_spec(const struct opt_spec *table, size_t n, int val)
{
	size_t i;

	if (val >= OPT_VAL_BASE && val < OPT_VAL_BASE + (int)n)
		return &table[val - OPT_VAL_BASE];
	for (i = 0; i < n; i++) {
		if (table[i].short_name != 0 && table[i].short_name == val)
			return &table[i];
	}
	return NULL; /* '?' or ':' */
}

enum opt_result opt_table_parse(const struct opt_spec *table, size_t n, int argc, char **argv,
				void *target, unsigned flags, int *operands,
				struct ember_error **err)
{
	return opt_table_parse_sourced(table, n, argc, argv, target, flags, operands, NULL, err);
}

enum opt_result opt_table_parse_sourced(const struct opt_spec *table, size_t n, int argc,
					char **argv, void *target, unsigned flags, int *operands,
					struct opt_source *sources, struct ember_error **err)
{
	struct option longopts[OPT_TABLE_MAX + 1];
	char shortopts[2 * OPT_TABLE_MAX + 2];
	const struct opt_spec *spec;
	enum opt_result r = OPT_OK;
	int val;

	build_getopt(table, n, flags, longopts, shortopts);
	opterr = (flags & OPT_QUIET) ? 0 : 1;
	optind = 0; /* glibc: a full re-initialisation, so a process may scan twice */
	while (r == OPT_OK && (val = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		spec = find_spec(table, n, val);
		if (spec == NULL) {
			ember_error_set(err, EMBER_E_INVALID, 0, "bad flag near `%s`",
					argv[optind - 1 < argc ? optind - 1 : argc - 1]);
			r = OPT_BAD_FLAG;
		} else {
			r = spec->parse(spec, optarg, target, err);
			if (sources != NULL)
				sources[spec - table].from = OPT_FROM_FLAG;
		}
	}
	*operands = optind;
	return r;
}

void opt_print_help_text(FILE *out, int used, const char *help,
			 const struct opt_help_layout *layout)
{
	const char *nl;

	if (used + layout->min_gap <= layout->column)
		fprintf(out, "%*s", layout->column - used, "");
	else if (layout->long_gap > 0)
		fprintf(out, "%*s", layout->long_gap, "");
	else
		fprintf(out, "\n%*s", layout->column, "");
	while ((nl = strchr(help, '\n')) != NULL) {
		fprintf(out, "%.*s\n%*s", (int)(nl - help), help, layout->column, "");
		help = nl + 1;
	}
	fprintf(out, "%s\n", help);
}

void opt_table_print_help(FILE *out, const struct opt_spec *table, size_t n,
			  const struct opt_help_layout *layout)
{
	const struct opt_spec *spec;
	int used;

	for (spec = table; spec < table + n; spec++) {
		if (spec->name == NULL) {
			fprintf(out, "%s\n", spec->help);
			continue;
		}
		used = fprintf(out, "  --%s%s%s", spec->name, spec->arg != NULL ? " " : "",
			       spec->arg != NULL ? spec->arg : "");
		if (spec->short_name != 0)
			used += fprintf(out, ", -%c", spec->short_name);
		opt_print_help_text(out, used, spec->help, layout);
	}
}

int opt_print_synopsis(FILE *out, const struct opt_spec *spec)
{
	return fprintf(out, " [--%s%s%s]%s", spec->name, spec->arg != NULL ? " " : "",
		       spec->arg != NULL ? spec->arg : "", spec->repeats ? "..." : "");
}
