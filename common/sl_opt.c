#include "sl_opt.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int
in_choices(const char *choices, const char *v)
{
	size_t n = strlen(v);
	const char *p = choices;

	while (p != NULL && *p != '\0') {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);

		if (len == n && strncmp(p, v, n) == 0)
			return 1;
		p = bar ? bar + 1 : NULL;
	}
	return 0;
}

static int
set_value(const sl_opt *o, const char *v, sl_errmsg *why)
{
	char *end;

	switch (o->type) {
	case SL_OPT_FLAG:
		*(int *)o->dst = 1;
		return 0;
	case SL_OPT_INT:
	case SL_OPT_I64: {
		errno = 0;
		long long x = strtoll(v, &end, 10);

		if (errno != 0 || end == v || *end != '\0')
			return sl_errmsg_set(why, SL_EINVAL,
			    "--%s: '%s' is not an integer", o->name, v);
		if ((double)x < o->min || (double)x > o->max)
			return sl_errmsg_set(why, SL_EINVAL,
			    "--%s: %s is out of range [%.17g, %.17g]", o->name,
			    v, o->min, o->max);
		if (o->type == SL_OPT_INT)
			*(int *)o->dst = (int)x;
		else
			*(int64_t *)o->dst = (int64_t)x;
		return 0;
	}
	case SL_OPT_FLOAT: {
		errno = 0;
		double x = strtod(v, &end);

		if (errno != 0 || end == v || *end != '\0' || !isfinite(x))
			return sl_errmsg_set(why, SL_EINVAL,
			    "--%s: '%s' is not a finite number", o->name, v);
		if (x < o->min || x > o->max)
			return sl_errmsg_set(why, SL_EINVAL,
			    "--%s: %s is out of range [%g, %g]", o->name, v,
			    o->min, o->max);
		*(float *)o->dst = (float)x;
		return 0;
	}
	case SL_OPT_STR:
		if (o->metavar != NULL && strchr(o->metavar, '|') != NULL &&
		    !in_choices(o->metavar, v))
			return sl_errmsg_set(why, SL_EINVAL,
			    "--%s: '%s' is not one of %s", o->name, v,
			    o->metavar);
		*(const char **)o->dst = v;
		return 0;
	}
	return sl_errmsg_set(why, SL_EINVAL, "--%s: bad option type", o->name);
}

const sl_opt *
sl_opt_find(const sl_opt *table, const char *name)
{
	for (const sl_opt *o = table; o->name != NULL; o++)
		if (strcmp(o->name, name) == 0)
			return o;
	return NULL;
}

int
sl_opt_parse(sl_opt *table, int argc, char **argv, int *pos, int pos_cap,
    int *npos, sl_errmsg *why)
{
	int rc, np = 0, only_pos = 0;

	for (sl_opt *o = table; o->name != NULL; o++) {
		o->given = 0;
		if (o->type == SL_OPT_FLAG)
			*(int *)o->dst = 0;
		else if (o->type == SL_OPT_STR)
			*(const char **)o->dst = o->def;
		else if (o->def != NULL && (rc = set_value(o, o->def, why)) != 0)
			return rc;
	}

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq, *val;
		size_t nlen;
		sl_opt *o;

		if (only_pos || strncmp(a, "--", 2) != 0 || a[2] == '\0') {
			if (!only_pos && strcmp(a, "--") == 0) {
				only_pos = 1;
				continue;
			}
			if (np >= pos_cap)
				return sl_errmsg_set(why, SL_EINVAL,
				    "unexpected argument '%s'", a);
			pos[np++] = i;
			continue;
		}
		a += 2;
		eq = strchr(a, '=');
		nlen = eq ? (size_t)(eq - a) : strlen(a);
		for (o = table; o->name != NULL; o++)
			if (strlen(o->name) == nlen && strncmp(o->name, a, nlen) == 0)
				break;
		if (o->name == NULL)
			return sl_errmsg_set(why, SL_EINVAL,
			    "unknown option '--%.*s' (see --help)", (int)nlen, a);
		if (o->type == SL_OPT_FLAG) {
			if (eq != NULL)
				return sl_errmsg_set(why, SL_EINVAL,
				    "--%s takes no value", o->name);
			val = NULL;
		} else if (eq != NULL) {
			val = eq + 1;
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			return sl_errmsg_set(why, SL_EINVAL,
			    "--%s needs a value", o->name);
		}
		if ((rc = set_value(o, val, why)) != 0)
			return rc;
		o->given = 1;
	}
	*npos = np;
	return 0;
}

void
sl_opt_help(const sl_opt *table, FILE *out)
{
	for (const sl_opt *o = table; o->name != NULL; o++) {
		char left[64];
		const char *mv = o->metavar ? o->metavar : "VALUE";

		if (o->type == SL_OPT_FLAG)
			snprintf(left, sizeof left, "--%s", o->name);
		else
			snprintf(left, sizeof left, "--%s %s", o->name, mv);
		fprintf(out, "  %-28s %s", left, o->help);
		if (o->def != NULL && o->type != SL_OPT_FLAG)
			fprintf(out, " (default %s)", o->def);
		fputc('\n', out);
	}
}

int
sl_opt_env_name(const char *prefix, const char *name, char *buf, size_t cap)
{
	size_t n = 0;

	for (const char *p = prefix; *p != '\0' && n < cap; p++)
		buf[n++] = *p;
	if (n < cap)
		buf[n++] = '_';
	for (const char *p = name; *p != '\0' && n < cap; p++)
		buf[n++] = *p == '-' ? '_' :
		    (*p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
	if (n >= cap)
		return SL_EINVAL;
	buf[n] = '\0';
	return 0;
}

static int
flag_value(const char *v, int *out)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "0", "false", "no", "off" };

	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcmp(v, yes[i]) == 0)
			return *out = 1, 0;
		if (strcmp(v, no[i]) == 0)
			return *out = 0, 0;
	}
	return SL_EINVAL;
}

int
sl_opt_env(sl_opt *table, const char *prefix, sl_errmsg *why)
{
	for (sl_opt *o = table; o->name != NULL; o++) {
		char var[128];
		const char *v;
		sl_errmsg inner = { "" };
		int rc;

		if (o->given || strcmp(o->name, "help") == 0 ||
		    strcmp(o->name, "version") == 0)
			continue;
		if (sl_opt_env_name(prefix, o->name, var, sizeof var) != 0)
			return sl_errmsg_set(why, SL_EINVAL,
			    "--%s: variable name too long", o->name);
		if ((v = getenv(var)) == NULL || *v == '\0')
			continue;
		if (o->type == SL_OPT_FLAG) {
			if (flag_value(v, (int *)o->dst) != 0)
				return sl_errmsg_set(why, SL_EINVAL,
				    "%s='%s': a flag takes 1, true, yes, on, "
				    "0, false, no or off", var, v);
		} else if ((rc = set_value(o, v, &inner)) != 0) {
			return sl_errmsg_set(why, rc, "%s (environment): %s", var,
			    inner.text);
		}
		o->given = 1;
	}
	return 0;
}

void
sl_opt_env_help(const sl_opt *table, const char *prefix, FILE *out)
{
	char var[128];
	const sl_opt *o = table;

	while (o->name != NULL && o->type == SL_OPT_FLAG)
		o++;
	if (o->name == NULL ||
	    sl_opt_env_name(prefix, o->name, var, sizeof var) != 0)
		return;
	fprintf(out, "\nEvery option (but --help and --version) can also be set "
	    "in the\nenvironment: --%s VALUE is %s=VALUE, flags take\n1 or 0. "
	    "The command line wins; an empty variable counts as unset.\n",
	    o->name, var);
}
