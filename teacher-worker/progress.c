/* progress.c - see progress.h. */
#include "progress.h"

#include <cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void
worker_progress_init(worker_progress *p)
{
	memset(p, 0, sizeof *p);
	p->on = isatty(STDERR_FILENO);
}

int
worker_progress_due(worker_progress *p, uint64_t now_ms)
{
	if (!p->on || now_ms < p->next_ms)
		return 0;
	p->next_ms = now_ms + WORKER_PROGRESS_EVERY_MS;
	return 1;
}

static double
num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) ? v->valuedouble : (double)NAN;
}

void
worker_progress_status(worker_progress *p, const void *json, size_t len,
    uint32_t teacher_index, uint64_t mine)
{
	cJSON *root, *t;
	double rows, shard_rows, shards;

	if (!p->on || (root = cJSON_ParseWithLength(json, len)) == NULL)
		return;
	rows = num(root, "rows");
	shard_rows = num(root, "shard_rows");
	shards = num(root, "shards");
	cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(root, "teachers")) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "name");
		double done = num(t, "done"), eta = num(t, "eta_s");
		char label[64];
		uint64_t samples;

		if (num(t, "index") != (double)teacher_index ||
		    !cJSON_IsString(name) || !(rows > 0) || !(shards > 0) ||
		    isnan(done) || isnan(shard_rows))
			continue;
		/* Names are the protocol's character set: nothing to escape. */
		snprintf(label, sizeof label, "%.24s %.0f/%.0f shards (%" PRIu64
		    " here)", name->valuestring, done, shards, mine);
		if (!p->started) {
			sl_progress_start(&p->bar, label, (uint64_t)rows);
			p->started = 1;
		}
		snprintf(p->bar.label, sizeof p->bar.label, "%s", label);
		samples = done * shard_rows >= rows ? (uint64_t)rows :
		    (uint64_t)(done * shard_rows);
		sl_progress_show(&p->bar, samples, num(t, "samples_per_s"),
		    isnan(eta) ? -1 : eta);
		break;
	}
	cJSON_Delete(root);
}

void
worker_progress_end(worker_progress *p)
{
	if (p->started)
		sl_progress_clear(&p->bar);
}
