#include "train.h"
#include "sl_log.h"
#include "sl_loss.h"
#include "sl_model.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

/* softmax(z / T) of every row into probs (n, C), reusing the eval buffers. */
static void
eval_probs(const sl_mlp *m, sl_mlp_ws *ws, int B, float *x,
    const sl_dataset *ds, const sl_preproc *pre, float T, float *probs)
{
	const size_t n = sl_dataset_rows(ds);
	const int C = m->sizes[m->nlayers];

	for (size_t first = 0; first < n; first += (size_t)B) {
		const int b = n - first < (size_t)B ? (int)(n - first) : B;
		const float *z;

		sl_dataset_rows_f32(ds, NULL, first, (size_t)b, pre, x);
		z = sl_mlp_forward(m, ws, x, b, 0.0f, NULL);
		sl_loss_softmax(probs + first * (size_t)C, z, b, C, T);
	}
}

int
eval_run(const char *model, const char *arch, const char *test_data,
    const char *test_labels, const char *predictions, const char *probs_path,
    float T, int batch, int threads)
{
	int sizes[SL_MLP_MAX_LAYERS + 1], nl = 0, status = TRAIN_FAILED, rc;
	sl_errmsg why = { "" };
	sl_model_info info;
	sl_mlp *m = NULL;
	sl_mlp_ws *ws = NULL;
	sl_dataset *ds = NULL;
	int32_t *labels = NULL, *pred = NULL;
	size_t nlabels = 0, n;
	float *x = NULL, *probs = NULL;
	sl_preproc pre;
	uint64_t ok, cnt;
	/* eval_accuracy works in chunks of at most 256 rows. */
	const int B = batch < 256 ? batch : 256;

	if (threads > 0)
		openblas_set_num_threads(threads);
	if (arch != NULL && sl_mlp_parse_arch(arch, sizes, &nl) != 0) {
		sl_error("--arch: '%s' is not a layer list like 784-128-10", arch);
		return TRAIN_USAGE;
	}
	if ((rc = sl_model_load(model, arch ? sizes : NULL, nl, &m, &info,
	    &why)) != 0) {
		sl_error("%s: %s", model, why.text[0] ? why.text : sl_strerror(rc));
		/* The file is fine but not what --arch says: a usage error. */
		return rc == SL_EMISMATCH && arch != NULL ? TRAIN_USAGE :
		    TRAIN_FAILED;
	}
	if ((rc = sl_dataset_open(test_data, &ds, &why)) != 0) {
		sl_error("%s: %s", test_data, why.text);
		goto out;
	}
	if (sl_dataset_dim(ds) != (size_t)m->sizes[0]) {
		sl_error("%s: rows have %zu values, %s expects %d", test_data,
		    sl_dataset_dim(ds), model, m->sizes[0]);
		goto out;
	}
	if (test_labels != NULL &&
	    (rc = sl_labels_load(test_labels, &labels, &nlabels, &why)) != 0) {
		sl_error("%s: %s", test_labels, why.text);
		goto out;
	}
	n = sl_dataset_rows(ds);
	pre = info.has_preproc ? info.pre : sl_preproc_default(sl_dataset_dtype(ds));
	x = malloc((size_t)B * (size_t)m->sizes[0] * sizeof *x);
	pred = predictions ? malloc((n ? n : 1) * sizeof *pred) : NULL;
	if (x == NULL || (predictions && pred == NULL) ||
	    sl_mlp_ws_new(m, B, &ws) != 0) {
		sl_error("out of memory");
		goto out;
	}
	eval_accuracy(m, ws, B, x, ds, &pre, labels, nlabels, pred, &ok, &cnt);
	if (test_labels != NULL)
		printf("accuracy %.4f (%llu/%llu correct, %llu errors)\n",
		    cnt ? (double)ok / (double)cnt : 0.0, (unsigned long long)ok,
		    (unsigned long long)cnt, (unsigned long long)(cnt - ok));
	if (predictions != NULL) {
		uint64_t shape[1] = { n };

		if ((rc = sl_npy_write(predictions, "<i4", shape, 1, pred,
		    &why)) != 0) {
			sl_error("%s: %s", predictions, why.text);
			goto out;
		}
		sl_info("wrote %zu predictions to %s", n, predictions);
	}
	if (probs_path != NULL) {
		uint64_t shape[2] = { n, (uint64_t)m->sizes[m->nlayers] };

		probs = malloc((n ? n : 1) * (size_t)shape[1] * sizeof *probs);
		if (probs == NULL) {
			sl_error("out of memory");
			goto out;
		}
		eval_probs(m, ws, B, x, ds, &pre, T, probs);
		if ((rc = sl_npy_write(probs_path, "<f4", shape, 2, probs,
		    &why)) != 0) {
			sl_error("%s: %s", probs_path, why.text);
			goto out;
		}
		sl_info("wrote softmax(z/%g) of %zu rows to %s", (double)T, n,
		    probs_path);
	}
	status = TRAIN_OK;
out:
	free(x);
	free(probs);
	free(pred);
	free(labels);
	sl_mlp_ws_free(&ws);
	sl_mlp_free(&m);
	sl_dataset_close(&ds);
	return status;
}
