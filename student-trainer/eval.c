#include "train.h"
#include "sl_log.h"
#include "sl_model.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

int
eval_run(const char *model, const char *arch, const char *test_data,
    const char *test_labels, const char *predictions, int threads)
{
	int sizes[SL_MLP_MAX_LAYERS + 1], nl = 0, status = TRAIN_FAILED, rc;
	sl_errmsg why = { "" };
	sl_model_info info;
	sl_mlp *m = NULL;
	sl_mlp_ws *ws = NULL;
	sl_dataset *ds = NULL;
	int32_t *labels = NULL, *pred = NULL;
	size_t nlabels = 0, n;
	float *x = NULL;
	sl_preproc pre;
	uint64_t ok, cnt;
	const int B = 256;

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
	status = TRAIN_OK;
out:
	free(x);
	free(pred);
	free(labels);
	sl_mlp_ws_free(&ws);
	sl_mlp_free(&m);
	sl_dataset_close(&ds);
	return status;
}
