#include "online.h"
#include "sl_log.h"
#include "sl_model.h"

#include <stdlib.h>
#include <string.h>

int
online_open(online *o, const char *path, const sl_dataset *ds, int B,
    int classes, float T)
{
	uint64_t shape[SL_DATA_MAX_DIMS];
	sl_errmsg why = { "" };
	sl_model_info info;
	sl_graph_opts go;
	uint32_t nd;
	int rc;

	memset(o, 0, sizeof *o);
	o->path = path;
	o->T = T;
	o->chunk = B < ONLINE_MAX_CHUNK ? B : ONLINE_MAX_CHUNK;
	go.max_batch = o->chunk;
	nd = sl_dataset_shape(ds, shape);
	go.row_rank = (int)nd - 1;
	go.row_dims = shape + 1;
	if ((rc = sl_model_sha256(path, o->sha256, &why)) != 0 ||
	    (rc = sl_graph_load(path, &go, &o->g, &info, &why)) != 0) {
		sl_error("--online-teacher %s: %s", path, why.text[0] ?
		    why.text : sl_strerror(rc));
		return rc == SL_EMISMATCH ? SL_EINVAL : rc;
	}
	if (sl_graph_classes(o->g) != classes) {
		sl_error("--online-teacher %s has %d classes, the student %d",
		    path, sl_graph_classes(o->g), classes);
		return SL_EINVAL;
	}
	o->pre = info.has_preproc ? info.pre :
	    sl_preproc_default(sl_dataset_dtype(ds));
	sl_preproc_fill(&o->pre, sl_dataset_dtype(ds));
	if ((rc = sl_preproc_check(&o->pre, shape, nd, &why)) != 0) {
		sl_error("--online-teacher %s: %s", path, why.text);
		return SL_EINVAL;
	}
	o->fmt.encoding = SL_ENC_F32;
	o->fmt.classes = (uint32_t)classes;
	o->fmt.k = 0;
	o->D = sl_dataset_dim(ds);
	o->x = malloc((size_t)o->chunk * o->D * sizeof *o->x);
	o->scratch = malloc(2 * (size_t)classes * sizeof *o->scratch);
	o->rec = malloc(sl_label_size(&o->fmt));
	if (o->x == NULL || o->scratch == NULL || o->rec == NULL)
		return SL_ENOMEM;
	return 0;
}

void
online_close(online *o)
{
	sl_graph_free(&o->g);
	free(o->x);
	free(o->scratch);
	free(o->rec);
	memset(o, 0, sizeof *o);
}

int
online_targets(online *o, const sl_dataset *ds, const size_t *rows,
    const void *raw, size_t n, float *p, uint8_t *has)
{
	const enum sl_dtype dt = sl_dataset_dtype(ds);
	const size_t esize = dt == SL_DTYPE_U8 ? 1 : sizeof(float);
	const size_t C = o->fmt.classes;
	sl_errmsg why = { "" };

	for (size_t first = 0; first < n; first += (size_t)o->chunk) {
		const size_t b = n - first < (size_t)o->chunk ? n - first :
		    (size_t)o->chunk;
		const float *z;
		int rc;

		if (raw != NULL)
			sl_rows_f32((const unsigned char *)raw + first * o->D * esize,
			    dt, b, o->D, &o->pre, o->x);
		else
			sl_dataset_rows_f32(ds, rows + first, 0, b, &o->pre, o->x);
		if ((rc = sl_graph_forward(o->g, o->x, (int)b, &z, &why)) != 0) {
			sl_error("--online-teacher %s: %s", o->path, why.text);
			return rc;
		}
		for (size_t j = 0; j < b; j++) {
			if (sl_label_encode(&o->fmt, z + j * C, o->T, o->scratch,
			    o->rec) != 0) {
				sl_error("--online-teacher %s: a logit of row %zu is "
				    "not finite (or overflows at T %g)", o->path,
				    rows[first + j], (double)o->T);
				return SL_EINVAL;
			}
			sl_label_probs(o->rec, o->T, o->T, p + (first + j) * C);
			has[first + j] = 1;
		}
	}
	return 0;
}
