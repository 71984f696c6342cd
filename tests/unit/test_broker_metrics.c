/* broker/metrics.c: the commit histogram's buckets (le inclusive, the
 * last +Inf) and the text rendered from a broker's state: shards by state,
 * a worker's series with its name escaped, rejections and refusals by
 * reason, the histogram cumulative, the dataset's rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../broker/broker.h"
#include "../../broker/metrics.h"
#include "sl_net.h"

/* A .npy of 10 uint8 rows of 4 values. */
static void
write_npy(const char *path)
{
	char hdr[128];
	const char *dict = "{'descr': '|u1', 'fortran_order': False, "
	    "'shape': (10, 4), }";
	size_t n = strlen(dict), total = 10 + n + 1;
	size_t pad = (64 - total % 64) % 64;
	unsigned char rows[40] = { 0 };
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	memcpy(hdr, dict, n);
	memset(hdr + n, ' ', pad);
	hdr[n + pad] = '\n';
	fwrite("\x93NUMPY\x01\x00", 1, 8, f);
	fputc((int)((n + pad + 1) & 0xff), f);
	fputc((int)((n + pad + 1) >> 8), f);
	fwrite(hdr, 1, n + pad + 1, f);
	fwrite(rows, 1, sizeof rows, f);
	fclose(f);
}

static void
has(const char *text, const char *line)
{
	if (strstr(text, line) == NULL)
		fail_msg("no line '%s' in:\n%s", line, text);
}

static void
test_render(void **state)
{
	char path[] = "/tmp/test_broker_metrics.XXXXXX";
	sl_errmsg why = { "" };
	broker *b = calloc(1, sizeof *b);
	int fd = mkstemp(path);
	worker *w;

	(void)state;
	assert_non_null(b);
	assert_true(fd >= 0);
	close(fd);
	write_npy(path);
	assert_int_equal(sl_dataset_open(path, &b->ds, &why), 0);
	b->nshards = 3;
	b->job.shard_rows = 4;
	b->nteachers = 1;
	snprintf(b->teachers[0].info.name, sizeof b->teachers[0].info.name, "t");
	assert_int_equal(lease_init(&b->teachers[0].lease, 3, 5), 0);
	lease_restore(&b->teachers[0].lease, 0, SHARD_DONE);
	b->teachers[0].committed_samples = 4;
	b->workers = calloc(2, sizeof *b->workers);
	assert_non_null(b->workers);
	b->nslots = 2;
	w = &b->workers[1];
	w->used = 1;
	snprintf(w->name, sizeof w->name, "w\"1");
	w->token = 7;
	w->samples = 100;
	w->nleases = 2;
	w->hello_ms = sl_net_now_ms() - 10000;
	w->last_seen_ms = sl_net_now_ms();
	b->rejected[REJ_MALFORMED] = 3;
	b->auth_refused[AUTH_PLAINTEXT] = 2;
	b->commits = 3;
	b->start_ms = sl_net_now_ms();
	metrics_observe_commit(b, 0.0005); /* on a bound: that bucket */
	metrics_observe_commit(b, 0.003);
	metrics_observe_commit(b, 20);     /* past the last bound: +Inf only */
	metrics_render(b);
	assert_false(b->mtext.oom);
	has(b->mtext.p, "softlabel_shards{teacher=\"t\",state=\"done\"} 1\n");
	has(b->mtext.p, "softlabel_shards{teacher=\"t\",state=\"leased\"} 0\n");
	has(b->mtext.p, "softlabel_shards{teacher=\"t\",state=\"pending\"} 2\n");
	has(b->mtext.p, "softlabel_samples_committed_total{teacher=\"t\"} 4\n");
	has(b->mtext.p, "softlabel_worker_samples_total{worker=\"w\\\"1\","
	    "teacher=\"t\",session=\"7\"} 100\n");
	has(b->mtext.p, "softlabel_worker_leases{worker=\"w\\\"1\",teacher=\"t\","
	    "session=\"7\"} 2\n");
	has(b->mtext.p, "softlabel_worker_last_seen_seconds{worker=\"w\\\"1\"");
	has(b->mtext.p, "\nsoftlabel_workers 1\n");
	has(b->mtext.p, "softlabel_rejected_total{reason=\"malformed\"} 3\n");
	has(b->mtext.p, "softlabel_rejected_total{reason=\"oversize\"} 0\n");
	has(b->mtext.p, "softlabel_auth_refused_total{reason=\"plaintext\"} 2\n");
	has(b->mtext.p, "softlabel_commit_duration_seconds_bucket{le=\"0.0005\"} 1\n");
	has(b->mtext.p, "softlabel_commit_duration_seconds_bucket{le=\"0.0025\"} 1\n");
	has(b->mtext.p, "softlabel_commit_duration_seconds_bucket{le=\"0.005\"} 2\n");
	has(b->mtext.p, "softlabel_commit_duration_seconds_bucket{le=\"10\"} 2\n");
	has(b->mtext.p, "softlabel_commit_duration_seconds_bucket{le=\"+Inf\"} 3\n");
	has(b->mtext.p, "softlabel_commit_duration_seconds_count 3\n");
	has(b->mtext.p, "softlabel_commit_duration_seconds_sum 20.0035\n");
	has(b->mtext.p, "\nsoftlabel_commits_total 3\n");
	has(b->mtext.p, "\nsoftlabel_rows 10\n");
	has(b->mtext.p, "\nsoftlabel_shards_total 3\n");
	/* No rate yet: no ETA series. */
	assert_null(strstr(b->mtext.p, "softlabel_eta_seconds{"));

	lease_fini(&b->teachers[0].lease);
	sl_metrics_text_fini(&b->mtext);
	sl_dataset_close(&b->ds);
	free(b->workers);
	free(b);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
