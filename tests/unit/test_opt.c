/* The option table: defaults, both spellings, ranges, choices, unknowns,
 * and the same options from the environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sl_opt.h"

static int epochs, flag;
static int64_t seed;
static float lr;
static const char *opt_kind, *out;

static sl_opt table[] = {
	{ "epochs", SL_OPT_INT, &epochs, "10", 1, 100, "E", "passes", 0 },
	{ "seed", SL_OPT_I64, &seed, "1", 0, 1e15, "S", "seed", 0 },
	{ "lr", SL_OPT_FLOAT, &lr, "0.5", 0, 1, "LR", "rate", 0 },
	{ "optimizer", SL_OPT_STR, &opt_kind, "adam", 0, 0, "sgd|adam", "kind", 0 },
	{ "out", SL_OPT_STR, &out, NULL, 0, 0, "FILE", "output", 0 },
	{ "resume", SL_OPT_FLAG, &flag, NULL, 0, 0, NULL, "resume", 0 },
	SL_OPT_END
};

static int
parse(int argc, char **argv, sl_errmsg *why)
{
	int pos[2], npos;

	return sl_opt_parse(table, argc, argv, pos, 2, &npos, why);
}

static void
test_defaults_and_values(void **state)
{
	char *argv[] = { "p", "--epochs", "20", "--lr=0.25", "--resume",
		"--optimizer", "sgd", "--seed", "123456789012" };
	sl_errmsg why;

	(void)state;
	assert_int_equal(parse(1, argv, &why), 0);
	assert_int_equal(epochs, 10);
	assert_true(lr == 0.5f);
	assert_string_equal(opt_kind, "adam");
	assert_null(out);
	assert_int_equal(flag, 0);
	assert_int_equal(parse(9, argv, &why), 0);
	assert_int_equal(epochs, 20);
	assert_true(lr == 0.25f);
	assert_int_equal(flag, 1);
	assert_string_equal(opt_kind, "sgd");
	assert_true(seed == 123456789012LL);
	assert_int_equal(sl_opt_find(table, "epochs")->given, 1);
	assert_int_equal(sl_opt_find(table, "out")->given, 0);
}

static void
test_bad_values_name_the_option(void **state)
{
	struct { char *a, *b; const char *want; } cases[] = {
		{ "--epochs", "0", "--epochs: 0 is out of range" },
		{ "--epochs", "12x", "--epochs: '12x' is not an integer" },
		{ "--epochs", "99999999999999999999", "not an integer" },
		{ "--lr", "nan", "not a finite number" },
		{ "--lr", "2", "out of range" },
		{ "--optimizer", "rmsprop", "'rmsprop' is not one of sgd|adam" },
		{ "--bogus", "1", "unknown option '--bogus'" },
		{ "--resume=1", NULL, "takes no value" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char *argv[] = { "p", cases[i].a, cases[i].b };
		sl_errmsg why = { "" };

		assert_int_equal(parse(cases[i].b ? 3 : 2, argv, &why), SL_EINVAL);
		if (strstr(why.text, cases[i].want) == NULL) {
			print_error("case %zu: '%s' lacks '%s'\n", i, why.text,
			    cases[i].want);
			fail();
		}
	}
	char *missing[] = { "p", "--out" };
	sl_errmsg why = { "" };
	assert_int_equal(parse(2, missing, &why), SL_EINVAL);
	assert_non_null(strstr(why.text, "--out needs a value"));
}

static void
test_positionals(void **state)
{
	char *argv[] = { "p", "status", "--epochs", "3", "--", "--x", "y" };
	int pos[2], npos;
	sl_errmsg why;

	(void)state;
	assert_int_equal(sl_opt_parse(table, 4, argv, pos, 2, &npos, &why), 0);
	assert_int_equal(npos, 1);
	assert_int_equal(pos[0], 1);
	assert_int_equal(sl_opt_parse(table, 6, argv, pos, 2, &npos, &why), 0);
	assert_int_equal(npos, 2);
	assert_int_equal(pos[1], 5);
	assert_int_equal(sl_opt_parse(table, 7, argv, pos, 2, &npos, &why), SL_EINVAL);
}

static void
clear_env(void)
{
	static const char *const vars[] = { "T_EPOCHS", "T_SEED", "T_LR",
		"T_OPTIMIZER", "T_OUT", "T_RESUME" };

	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
		unsetenv(vars[i]);
}

static void
test_env_fills_what_argv_leaves(void **state)
{
	char *argv[] = { "p", "--epochs", "20" };
	sl_errmsg why;

	(void)state;
	clear_env();
	setenv("T_EPOCHS", "30", 1);       /* the command line wins */
	setenv("T_LR", "0.125", 1);
	setenv("T_OPTIMIZER", "sgd", 1);
	setenv("T_OUT", "", 1);            /* empty: unset */
	setenv("T_RESUME", "yes", 1);
	assert_int_equal(parse(3, argv, &why), 0);
	assert_int_equal(sl_opt_env(table, "T", &why), 0);
	assert_int_equal(epochs, 20);
	assert_true(lr == 0.125f);
	assert_string_equal(opt_kind, "sgd");
	assert_null(out);
	assert_int_equal(flag, 1);
	assert_int_equal(sl_opt_find(table, "lr")->given, 1);
	assert_int_equal(sl_opt_find(table, "out")->given, 0);
	assert_int_equal(sl_opt_find(table, "seed")->given, 0);

	setenv("T_RESUME", "off", 1);
	unsetenv("T_EPOCHS");
	assert_int_equal(parse(1, argv, &why), 0);
	assert_int_equal(sl_opt_env(table, "T", &why), 0);
	assert_int_equal(flag, 0);
	assert_int_equal(epochs, 10);
	clear_env();
}

static void
test_env_bad_values_name_the_variable(void **state)
{
	static const struct {
		const char *var, *value, *msg;
	} cases[] = {
		{ "T_EPOCHS", "1e3", "T_EPOCHS (environment): --epochs: '1e3' is not an integer" },
		{ "T_EPOCHS", "101", "out of range" },
		{ "T_OPTIMIZER", "rmsprop", "T_OPTIMIZER (environment): --optimizer: 'rmsprop' is not one of sgd|adam" },
		{ "T_RESUME", "maybe", "T_RESUME='maybe': a flag takes" },
		{ "T_LR", "nan", "T_LR (environment): --lr: 'nan' is not a finite number" },
	};
	char *argv[] = { "p" };
	char name[16];
	sl_errmsg why;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		clear_env();
		setenv(cases[i].var, cases[i].value, 1);
		assert_int_equal(parse(1, argv, &why), 0);
		assert_int_equal(sl_opt_env(table, "T", &why), SL_EINVAL);
		if (strstr(why.text, cases[i].msg) == NULL)
			fail_msg("%s=%s: got '%s'", cases[i].var, cases[i].value,
			    why.text);
	}
	clear_env();
	assert_int_equal(sl_opt_env_name("SOFTLABEL_BROKER", "lease-timeout",
	    name, sizeof name), SL_EINVAL);
}

static void
test_env_name(void **state)
{
	char name[64];

	(void)state;
	assert_int_equal(sl_opt_env_name("SOFTLABEL_BROKER", "lease-timeout",
	    name, sizeof name), 0);
	assert_string_equal(name, "SOFTLABEL_BROKER_LEASE_TIMEOUT");
	assert_int_equal(sl_opt_env_name("SOFTLABEL_TEACHER", "curve-secret",
	    name, sizeof name), 0);
	assert_string_equal(name, "SOFTLABEL_TEACHER_CURVE_SECRET");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_values),
		cmocka_unit_test(test_bad_values_name_the_option),
		cmocka_unit_test(test_positionals),
		cmocka_unit_test(test_env_fills_what_argv_leaves),
		cmocka_unit_test(test_env_bad_values_name_the_variable),
		cmocka_unit_test(test_env_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
