/* fuzz_onnx.c - sl_onnx_parse on arbitrary bytes, then sl_g_plan at batch 2
 * and one sl_g_run on whatever parses.
 *
 * Graph inputs get the shape their ValueInfo declares, with every symbolic
 * or missing dimension set to 2 (the batch); int64 and bool inputs get
 * zeros before planning (shapes may depend on them), float inputs zeros
 * after. Inputs over INPUT_MAX_ELEMS elements are not planned (the limits
 * the graph engine documents are far above libFuzzer's memory limit), and
 * graphs whose arena exceeds RUN_MAX_ARENA are planned but not run.
 *
 * Properties: a refused model leaves *out untouched and returns a negative
 * SL_E* code; an accepted one has 1 to SL_G_MAX_IO outputs, at most
 * SL_G_MAX_IO inputs, every tensor's rank within SL_G_MAX_RANK (or -1,
 * unknown, for an input without a shape); a planned graph has data for
 * every tensor the run order writes and an arena within
 * SL_G_MAX_ARENA_BYTES; a run either succeeds or fails with a message. */
#include "fuzz.h"

#include <string.h>

#include "graph.h"
#include "onnx.h"

#define BATCH 2
#define INPUT_MAX_ELEMS ((size_t)1 << 16)
#define RUN_MAX_ARENA ((size_t)16 << 20)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sl_graph *g = NULL, *const sentinel = (sl_graph *)&g;
	void *bufs[SL_G_MAX_IO] = { NULL };
	sl_errmsg why;
	int rc, nbufs = 0, plannable = 1;

	g = sentinel;
	rc = sl_onnx_parse(data, size, &g, &why);
	if (rc != 0) {
		FUZZ_CHECK(g == sentinel);
		FUZZ_CHECK(rc < 0);
		FUZZ_CHECK(memchr(why.text, '\0', sizeof why.text) != NULL);
		return 0;
	}
	FUZZ_CHECK(g != NULL && g != sentinel);
	FUZZ_CHECK(g->noutputs >= 1 && g->noutputs <= SL_G_MAX_IO);
	FUZZ_CHECK(g->ninputs >= 0 && g->ninputs <= SL_G_MAX_IO);
	for (int i = 0; i < g->nt; i++)
		FUZZ_CHECK(g->t[i].rank >= -1 && g->t[i].rank <= SL_G_MAX_RANK);

	for (int i = 0; i < g->ninputs && plannable; i++) {
		sl_gtensor *t = &g->t[g->inputs[i]];
		int64_t dims[SL_G_MAX_RANK];
		size_t n = 1;

		if (t->rank < 0) {
			plannable = 0;
			break;
		}
		for (int d = 0; d < t->rank; d++) {
			dims[d] = t->dims[d] < 0 ? BATCH : t->dims[d];
			if (dims[d] > 0 && n > INPUT_MAX_ELEMS / (size_t)dims[d])
				plannable = 0;
			n *= (size_t)dims[d];
		}
		if (!plannable || n > INPUT_MAX_ELEMS ||
		    sl_g_set_shape(t, t->dtype, t->rank, dims, &why) != 0) {
			plannable = 0;
			break;
		}
		if ((bufs[nbufs] = calloc(n ? n : 1, 8)) == NULL)
			abort();
		if (t->dtype != SL_G_F32)
			t->data = bufs[nbufs];
		nbufs++;
	}
	if (plannable && (rc = sl_g_plan(g, BATCH, &why)) == 0) {
		FUZZ_CHECK(g->arena_bytes <= SL_G_MAX_ARENA_BYTES);
		for (int p = 0; p < g->norder; p++) {
			const sl_gnode *n = &g->n[g->order[p]];

			FUZZ_CHECK(!n->folded);
			for (int j = 0; j < n->nout; j++)
				FUZZ_CHECK(g->t[n->out[j]].data != NULL ||
				    sl_g_numel(&g->t[n->out[j]]) == 0);
		}
		for (int i = 0; i < g->ninputs; i++)
			if (g->t[g->inputs[i]].dtype == SL_G_F32)
				g->t[g->inputs[i]].data = bufs[i];
		if (g->arena_bytes <= RUN_MAX_ARENA) {
			why.text[0] = '\0';
			rc = sl_g_run(g, &why);
			FUZZ_CHECK(rc == 0 || why.text[0] != '\0');
		}
	} else if (plannable) {
		FUZZ_CHECK(rc < 0);
	}
	/* The bound inputs are ours: the graph frees only what it owns. */
	for (int i = 0; i < g->ninputs; i++)
		g->t[g->inputs[i]].data = NULL;
	sl_g_free(&g);
	FUZZ_CHECK(g == NULL);
	for (int i = 0; i < nbufs; i++)
		free(bufs[i]);
	return 0;
}
