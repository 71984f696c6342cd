/* The log: a limiter lets SL_LOG_LIMIT_BURST lines through per window, then
 * counts, and writes one summary when the window ends; lines stay one line
 * whatever the message holds. stderr goes to a temporary file to be read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sl_log.h"

static char captured[8192];

/* Run fn with fd 2 on a temporary file; its text into captured. */
static void
capture(void (*fn)(void))
{
	FILE *f = tmpfile();
	int saved = dup(STDERR_FILENO);
	size_t n;

	assert_non_null(f);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);
	fn();
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(f);
	n = fread(captured, 1, sizeof captured - 1, f);
	captured[n] = '\0';
	fclose(f);
}

static int
count(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void
limited_lines(void)
{
	sl_log_limit l = { "flood", 0, 0, 0, 0 };
	const uint64_t t0 = 1000000;

	for (int i = 0; i < 500; i++)
		if (sl_log_limit_allow(&l, t0 + (uint64_t)i))
			sl_warn("line %d", i);
	sl_log_limit_flush(&l, t0 + SL_LOG_LIMIT_WINDOW_MS - 1); /* not yet */
	sl_log_limit_flush(&l, t0 + SL_LOG_LIMIT_WINDOW_MS);
	sl_log_limit_flush(&l, t0 + 2 * SL_LOG_LIMIT_WINDOW_MS); /* none */
	/* The next window lets a burst through again. */
	if (sl_log_limit_allow(&l, t0 + 2 * SL_LOG_LIMIT_WINDOW_MS + 1))
		sl_warn("line again");
}

static void
test_limit_burst_then_summary(void **state)
{
	(void)state;
	sl_log_init("test_log", SL_LOG_DEBUG);
	capture(limited_lines);
	/* The burst, and "line again" of the next window. */
	assert_int_equal(count(captured, "WARN line "), SL_LOG_LIMIT_BURST + 1);
	assert_int_equal(count(captured, "suppressed"), 1);
	assert_non_null(strstr(captured, "suppressed 480 more 'flood' lines"));
	assert_non_null(strstr(captured, "WARN line again"));
	assert_int_equal(count(captured, "\n"), SL_LOG_LIMIT_BURST + 2);
}

static void
hostile_line(void)
{
	sl_info("name %s end", "x\n2026-01-01T00:00:00Z 1 prog INFO forged\x1b]0;t\x07");
}

static void
test_line_stays_one_line(void **state)
{
	(void)state;
	sl_log_init("test_log", SL_LOG_DEBUG);
	capture(hostile_line);
	assert_int_equal(count(captured, "\n"), 1);
	assert_null(strchr(captured, '\x1b'));
	assert_null(strchr(captured, '\x07'));
	assert_non_null(strstr(captured, "x\\x0a2026"));
	assert_non_null(strstr(captured, "forged\\x1b]0;t\\x07 end\n"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limit_burst_then_summary),
		cmocka_unit_test(test_line_stays_one_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
