/* sl_opt.h - one option table per program, as Redis' config.c: each entry
 * names the option, its type, bounds and default, and the same table drives
 * parsing, range checks and --help.
 *
 *   static sl_opt opts[] = {
 *       { "epochs", SL_OPT_INT, &cfg.epochs, "10", 1, 100000, "E", "passes over the data" },
 *       SL_OPT_END
 *   };
 *
 * Options are --name VALUE or --name=VALUE; flags take no value. Every
 * option can also come from the environment (sl_opt_env): --lease-timeout
 * is SOFTLABEL_BROKER_LEASE_TIMEOUT for the prefix "SOFTLABEL_BROKER", so
 * one env file serves systemd, Kubernetes and Slurm alike. Defaults are
 * parsed by the same code as user values, so a table with a bad default fails
 * loudly the first time it runs. Not thread-safe (parse once, in main()).
 */
#ifndef SL_OPT_H
#define SL_OPT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sl_err.h"

enum sl_opt_type {
	SL_OPT_FLAG = 1, /* int: 0, or 1 when given */
	SL_OPT_INT,      /* int within [min, max] */
	SL_OPT_I64,      /* int64_t within [min, max] */
	SL_OPT_FLOAT,    /* float within [min, max], finite */
	SL_OPT_STR,      /* const char *, borrowed from argv or the default;
	                    with choices "a|b|c" the value must be one of them */
};

typedef struct sl_opt {
	const char *name;
	enum sl_opt_type type;
	void *dst;
	const char *def;     /* default as text; NULL: none (STR stays NULL) */
	double min, max;     /* INT, I64, FLOAT */
	const char *metavar; /* or choices "sgd|adam" for STR */
	const char *help;
	int given;           /* set when on the command line or in the environment */
} sl_opt;

#define SL_OPT_END { NULL, 0, NULL, NULL, 0, 0, NULL, NULL, 0 }

/* Apply defaults, then parse argv[1..argc). Arguments that do not start
 * with "--" are positional: their indices are stored in pos (capacity
 * pos_cap) and counted in *npos. "--" ends option parsing.
 * Returns 0, or SL_EINVAL with why naming the option and the bad value. */
int sl_opt_parse(sl_opt *table, int argc, char **argv, int *pos, int pos_cap,
    int *npos, sl_errmsg *why);

/* After sl_opt_parse: every option not on the command line whose variable
 * PREFIX_NAME (upper case, '-' as '_') is set and not empty takes its value
 * from there; flags take 1/true/yes/on or 0/false/no/off. --help and
 * --version never come from the environment. The values are borrowed from
 * the environment: do not setenv() afterwards. Returns 0, or SL_EINVAL with
 * why naming the variable. */
int sl_opt_env(sl_opt *table, const char *prefix, sl_errmsg *why);

/* The variable for an option: "SOFTLABEL_BROKER" + "lease-timeout" ->
 * "SOFTLABEL_BROKER_LEASE_TIMEOUT". Returns 0, or SL_EINVAL if it does not
 * fit in cap bytes. */
int sl_opt_env_name(const char *prefix, const char *name, char *buf, size_t cap);

/* Find an entry by name (to ask .given); NULL when absent. */
const sl_opt *sl_opt_find(const sl_opt *table, const char *name);

/* Write the option list, one per line with its default, to out. */
void sl_opt_help(const sl_opt *table, FILE *out);

/* The paragraph --help ends with: how options map to variables. */
void sl_opt_env_help(const sl_opt *table, const char *prefix, FILE *out);

#endif
