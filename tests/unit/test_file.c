/* sl_file (atomic writes, whole-file reads), sl_err, sl_log, sl_progress. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sl_err.h"
#include "sl_file.h"
#include "sl_log.h"
#include "sl_progress.h"

static char dir[64];

static int
setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/sl-file-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd);
}

static int
entries(void)
{
	char cmd[128];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof cmd, "ls -A %s | wc -l", dir);
	p = popen(cmd, "r");
	if (p && fscanf(p, "%d", &n) != 1)
		n = -1;
	if (p)
		pclose(p);
	return n;
}

static void
test_atomic_write_commit_and_abort(void **state)
{
	char path[128];
	sl_atomic_file f;
	sl_errmsg why;
	void *buf;
	size_t len;

	(void)state;
	snprintf(path, sizeof path, "%s/x", dir);
	assert_int_equal(sl_atomic_open(&f, path, &why), 0);
	assert_int_equal(sl_atomic_write(&f, "hello", 5, &why), 0);
	/* until the commit, only the temp file exists */
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(sl_atomic_commit(&f, &why), 0);
	assert_int_equal(sl_file_read(path, 100, &buf, &len, &why), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, "hello", 5);
	free(buf);

	/* an aborted rewrite leaves the old file and no temp file */
	assert_int_equal(sl_atomic_open(&f, path, &why), 0);
	assert_int_equal(sl_atomic_write(&f, "new!", 4, &why), 0);
	sl_atomic_abort(&f);
	sl_atomic_abort(&f); /* twice is fine */
	assert_int_equal(entries(), 1);
	assert_int_equal(sl_file_read(path, 100, &buf, &len, &why), 0);
	assert_int_equal(len, 5);
	free(buf);
}

static void
test_read_limits_and_errors(void **state)
{
	char path[128];
	sl_errmsg why = { "" };
	void *buf;
	size_t len;
	int fd;

	(void)state;
	snprintf(path, sizeof path, "%s/big", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1000), 0);
	close(fd);
	assert_int_equal(sl_file_read(path, 999, &buf, &len, &why), SL_ELIMIT);
	assert_true(why.text[0] != '\0');
	assert_int_equal(sl_file_read(dir, 1 << 20, &buf, &len, &why), SL_EFORMAT);
	snprintf(path, sizeof path, "%s/missing", dir);
	assert_int_equal(sl_file_read(path, 100, &buf, &len, &why), ENOENT);
	snprintf(path, sizeof path, "%s/no/such/dir/x", dir);
	sl_atomic_file f;
	assert_int_equal(sl_atomic_open(&f, path, &why), ENOENT);
	sl_atomic_abort(&f);
}

static void
test_strerror_names_every_code(void **state)
{
	(void)state;
	assert_string_equal(sl_strerror(0), "success");
	assert_string_equal(sl_strerror(ENOENT), strerror(ENOENT));
	for (int e = SL_EFORMAT; e < SL_ELAST_; e++) {
		assert_non_null(sl_strerror(e));
		assert_string_not_equal(sl_strerror(e), "unknown error");
	}
	assert_string_equal(sl_strerror(SL_ELAST_), "unknown error");
	sl_errmsg m;
	assert_int_equal(sl_errmsg_set(&m, SL_ELIMIT, "n=%d", 7), SL_ELIMIT);
	assert_string_equal(m.text, "n=7");
	assert_int_equal(sl_errmsg_set(NULL, SL_EINVAL, "x"), SL_EINVAL);
}

static void
test_log_levels_and_line_format(void **state)
{
	enum sl_log_level l;
	int fds[2], saved;
	char out[512] = "";
	ssize_t n;

	(void)state;
	assert_int_equal(sl_log_parse_level("warn", &l), 0);
	assert_int_equal(l, SL_LOG_WARN);
	assert_int_equal(sl_log_parse_level("loud", &l), SL_EINVAL);

	assert_int_equal(pipe(fds), 0);
	saved = dup(STDERR_FILENO);
	dup2(fds[1], STDERR_FILENO);
	sl_log_init("/usr/bin/prog", SL_LOG_INFO);
	sl_debug("hidden %d", 1);
	sl_info("shown %d", 2);
	dup2(saved, STDERR_FILENO);
	close(fds[1]);
	n = read(fds[0], out, sizeof out - 1);
	close(fds[0]);
	assert_true(n > 0);
	out[n] = '\0';
	/* one line: time, pid, program, level, message */
	assert_non_null(strstr(out, " prog INFO shown 2\n"));
	assert_null(strstr(out, "hidden"));
	assert_true(out[4] == '-' && out[10] == 'T');
	assert_int_equal(strchr(out, '\n') - out + 1, n);
}

/* The bar draws only on a terminal; under the test runner stderr is not one. */
static void
test_progress_off_without_terminal(void **state)
{
	sl_progress p;
	const double t0 = sl_now_s();

	(void)state;
	sl_progress_start(&p, "epoch 1/2", 100);
	assert_int_equal(p.enabled, isatty(STDERR_FILENO));
	sl_progress_update(&p, 40);
	assert_true(p.done == 40 && p.total == 100);
	sl_progress_clear(&p);
	assert_string_equal(p.label, "epoch 1/2");
	assert_true(sl_now_s() >= t0);
}

/* A writer killed before its rename leaves "<path>.tmp.<pid>": the next
 * atomic write of path removes it, and leaves a live writer's alone. */
static void
touch(const char *path)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fclose(f);
}

static void
test_stale_tmp_removed(void **state)
{
	char out[128], dead_tmp[160], live_tmp[160], other[160];
	sl_atomic_file f;
	sl_errmsg why = { "" };
	pid_t dead = fork();

	(void)state;
	assert_true(dead >= 0);
	if (dead == 0)
		_exit(0);
	assert_int_equal(waitpid(dead, NULL, 0), dead); /* no process now */
	snprintf(out, sizeof out, "%s/probs.npy", dir);
	snprintf(dead_tmp, sizeof dead_tmp, "%s.tmp.%ld", out, (long)dead);
	snprintf(live_tmp, sizeof live_tmp, "%s.tmp.%ld", out, (long)getppid());
	snprintf(other, sizeof other, "%s/other.npy.tmp.%ld", dir, (long)dead);
	touch(dead_tmp);
	touch(live_tmp);
	touch(other);
	assert_int_equal(sl_atomic_open(&f, out, &why), 0);
	assert_int_equal(access(dead_tmp, F_OK), -1);
	assert_int_equal(access(live_tmp, F_OK), 0);
	assert_int_equal(access(other, F_OK), 0); /* another path's */
	assert_int_equal(sl_atomic_write(&f, "x", 1, &why), 0);
	assert_int_equal(sl_atomic_commit(&f, &why), 0);
	assert_int_equal(access(out, F_OK), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_atomic_write_commit_and_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_limits_and_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_tmp_removed, setup, teardown),
		cmocka_unit_test(test_strerror_names_every_code),
		cmocka_unit_test(test_log_levels_and_line_format),
		cmocka_unit_test(test_progress_off_without_terminal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
