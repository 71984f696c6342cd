#include "train.h"
#include "sl_log.h"
#include "sl_loss.h"
#include "sl_graph.h"
#include "sl_model.h"
#include "sl_progress.h"
#include "sl_file.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

int
eval_graph(sl_graph *g, int B, float *x, const sl_dataset *ds,
    const sl_preproc *pre, const int32_t *labels, size_t nlabels,
    int32_t *pred, float T, float *probs, uint64_t *correct,
    uint64_t *counted, sl_errmsg *why)
{
	const size_t n = sl_dataset_rows(ds);
	const int C = sl_graph_classes(g);
	int32_t top[256];
	uint64_t ok = 0, cnt = 0;

	for (size_t first = 0; first < n; first += (size_t)B) {
		const int b = n - first < (size_t)B ? (int)(n - first) : B;
		const float *z;
		int rc;

		sl_dataset_rows_f32(ds, NULL, first, (size_t)b, pre, x);
		if ((rc = sl_graph_forward(g, x, b, &z, why)) != 0)
			return rc;
		sl_loss_argmax(top, z, b, C);
		for (int i = 0; i < b; i++) {
			const size_t row = first + (size_t)i;

			if (pred != NULL)
				pred[row] = top[i];
			if (labels != NULL && row < nlabels && labels[row] >= 0) {
				cnt++;
				ok += top[i] == labels[row];
			}
		}
		if (probs != NULL)
			sl_loss_softmax(probs + first * (size_t)C, z, b, C, T);
	}
	*correct = ok;
	*counted = cnt;
	return 0;
}

/* Whether path holds a softlabel-cnn safetensors file (read errors: no,
 * and the graph engine's load reports them). */
static int
is_cnn_file(const char *path)
{
	void *buf;
	size_t len;
	int yes;

	if (sl_file_read(path, (size_t)SL_MODEL_MAX_HEADER_BYTES + 8 +
	    SL_CNN_MAX_PARAMS * 8, &buf, &len, NULL) != 0)
		return 0;
	yes = sl_cnn_sniff(buf, len);
	free(buf);
	return yes;
}

int
eval_run(const eval_cfg *e)
{
	int sizes[SL_MLP_MAX_LAYERS + 1], nl = 0, status = TRAIN_FAILED, rc;
	sl_errmsg why = { "" };
	sl_model_info info;
	sl_graph *g = NULL;
	sl_cnn *cnn = NULL;
	sl_cnn_ws *cws = NULL;
	int classes;
	size_t dim;
	sl_dataset *ds = NULL;
	int32_t *labels = NULL, *pred = NULL;
	size_t nlabels = 0, n;
	float *x = NULL, *probs = NULL;
	sl_preproc pre;
	uint64_t ok, cnt, shape[SL_DATA_MAX_DIMS];
	/* eval_graph's argmax buffer holds 256 rows. */
	const int B = e->batch < 256 ? e->batch : 256;
	sl_graph_opts go = { .max_batch = B };

	if (e->threads > 0)
		openblas_set_num_threads(e->threads);
	if (e->arch != NULL && sl_cnn_is_arch(e->arch)) {
		sl_error("--arch with --evaluate names an MLP to expect; a "
		    "convolutional model file carries its own architecture");
		return TRAIN_USAGE;
	}
	if (e->arch != NULL) {
		sl_mlp *m = NULL;

		/* --arch names an MLP: check the file against it first. */
		if (sl_mlp_parse_arch(e->arch, sizes, &nl) != 0) {
			sl_error("--arch: '%s' is not a layer list like 784-128-10",
			    e->arch);
			return TRAIN_USAGE;
		}
		if ((rc = sl_model_load(e->model, sizes, nl, &m, &info,
		    &why)) != 0) {
			sl_error("%s: %s", e->model, why.text[0] ? why.text :
			    sl_strerror(rc));
			/* The file is fine but not what --arch says. */
			return rc == SL_EMISMATCH ? TRAIN_USAGE : TRAIN_FAILED;
		}
		sl_mlp_free(&m);
	}
	if ((rc = sl_dataset_open(e->test_data, &ds, &why)) != 0) {
		sl_error("%s: %s", e->test_data, why.text);
		goto out;
	}
	go.row_rank = (int)sl_dataset_shape(ds, shape) - 1;
	go.row_dims = shape + 1;
	if (is_cnn_file(e->model)) {
		if ((rc = sl_cnn_load(e->model, &cnn, &info, &why)) != 0) {
			sl_error("%s: %s", e->model, why.text[0] ? why.text :
			    sl_strerror(rc));
			goto out;
		}
		if (sl_cnn_input_dim(cnn) != sl_dataset_dim(ds)) {
			sl_error("%s: rows of %zu values, the model %s takes %zu",
			    e->test_data, sl_dataset_dim(ds), e->model,
			    sl_cnn_input_dim(cnn));
			status = TRAIN_USAGE;
			goto out;
		}
		if (sl_cnn_ws_new(cnn, B, &cws) != 0) {
			sl_error("out of memory");
			goto out;
		}
		classes = sl_cnn_classes(cnn);
		dim = sl_cnn_input_dim(cnn);
	} else if ((rc = sl_graph_load(e->model, &go, &g, &info, &why)) != 0) {
		sl_error("%s: %s", e->model, why.text[0] ? why.text :
		    sl_strerror(rc));
		goto out;
	} else {
		classes = sl_graph_classes(g);
		dim = sl_graph_input_dim(g);
	}
	if (e->test_labels != NULL &&
	    (rc = sl_labels_load(e->test_labels, &labels, &nlabels, &why)) != 0) {
		sl_error("%s: %s", e->test_labels, why.text);
		goto out;
	}
	n = sl_dataset_rows(ds);
	if (e->test_labels != NULL && nlabels != n) {
		sl_error("%s: %zu labels for the %zu rows of %s (test labels: one "
		    "per row)", e->test_labels, nlabels, n, e->test_data);
		status = TRAIN_USAGE;
		goto out;
	}
	pre = info.has_preproc ? info.pre : sl_preproc_default(sl_dataset_dtype(ds));
	if (e->pre != NULL)
		pre = *e->pre;
	if ((rc = sl_preproc_check(&pre, shape, go.row_rank + 1, &why)) != 0) {
		sl_error("%s", why.text);
		status = TRAIN_USAGE;
		goto out;
	}
	x = malloc((size_t)B * dim * sizeof *x);
	pred = e->predictions ? malloc((n ? n : 1) * sizeof *pred) : NULL;
	probs = e->probs ? malloc((n ? n : 1) * (size_t)classes *
	    sizeof *probs) : NULL;
	if (x == NULL || (e->predictions && pred == NULL) ||
	    (e->probs && probs == NULL)) {
		sl_error("out of memory");
		goto out;
	}
	const double t0 = sl_now_s();
	if (cnn != NULL)
		eval_cnn(cnn, cws, B, x, ds, &pre, labels, nlabels, pred, probs,
		    e->T, &ok, &cnt);
	else if ((rc = eval_graph(g, B, x, ds, &pre, labels, nlabels, pred, e->T,
	    probs, &ok, &cnt, &why)) != 0) {
		sl_error("%s: %s", e->model, why.text);
		goto out;
	}
	const double secs = sl_now_s() - t0;
	/* Reading and converting rows included: what a user of --evaluate
	 * gets, at this --batch and thread count. */
	sl_info("evaluated %zu rows in %.3f s: %.0f samples/s (batch %d)", n,
	    secs, secs > 0 ? (double)n / secs : 0.0, B);
	if (e->test_labels != NULL)
		printf("accuracy %.4f (%llu/%llu correct, %llu errors)\n",
		    cnt ? (double)ok / (double)cnt : 0.0, (unsigned long long)ok,
		    (unsigned long long)cnt, (unsigned long long)(cnt - ok));
	if (e->predictions != NULL) {
		uint64_t s1[1] = { n };

		if ((rc = sl_npy_write(e->predictions, "<i4", s1, 1, pred,
		    &why)) != 0) {
			sl_error("%s: %s", e->predictions, why.text);
			goto out;
		}
		sl_info("wrote %zu predictions to %s", n, e->predictions);
	}
	if (e->probs != NULL) {
		uint64_t s2[2] = { n, (uint64_t)classes };

		if ((rc = sl_npy_write(e->probs, "<f4", s2, 2, probs,
		    &why)) != 0) {
			sl_error("%s: %s", e->probs, why.text);
			goto out;
		}
		sl_info("wrote softmax(z/%g) of %zu rows to %s", (double)e->T, n,
		    e->probs);
	}
	status = TRAIN_OK;
out:
	free(x);
	free(probs);
	free(pred);
	free(labels);
	sl_graph_free(&g);
	sl_cnn_ws_free(&cws);
	sl_cnn_free(&cnn);
	sl_dataset_close(&ds);
	return status;
}
