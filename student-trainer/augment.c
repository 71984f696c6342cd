#include "augment.h"
#include "sl_log.h"

#include <stdlib.h>
#include <string.h>

uint32_t
view_of(uint32_t epoch, uint64_t sample, uint32_t V, uint32_t offset)
{
	(void)sample;
	if (V == 0)
		return epoch;
	return (uint32_t)(((uint64_t)epoch + offset) % V);
}

uint32_t
view_offset(uint64_t seed, uint32_t V)
{
	if (V == 0)
		return 0;
	return (uint32_t)(sl_view_seed(seed, UINT64_MAX, 0) % V);
}

int
augment_init(augment *a, const char *recipe, uint64_t seed, uint32_t V,
    const sl_dataset *ds, int B)
{
	uint64_t shape[SL_DATA_MAX_DIMS];
	uint32_t dims[SL_DATA_MAX_DIMS];
	const uint32_t nd = sl_dataset_shape(ds, shape);
	sl_errmsg why = { "" };
	size_t esize;

	memset(a, 0, sizeof *a);
	if (recipe == NULL)
		return 0;
	if (sl_view_recipe_parse(recipe, &a->recipe, &why) != 0) {
		sl_error("--augment: %s", why.text);
		return SL_EINVAL;
	}
	if (sl_view_recipe_empty(&a->recipe))
		return 0;
	for (uint32_t i = 1; i < nd; i++)
		dims[i - 1] = shape[i] > UINT32_MAX ? UINT32_MAX :
		    (uint32_t)shape[i];
	if (nd > 4 || sl_view_check_shape(&a->recipe, (int)nd - 1, dims,
	    &why) != 0) {
		sl_error("--augment: %s", nd > 4 ? "rows of rank above 3 have "
		    "no views (rows [H, W] or [C, H, W])" : why.text);
		return SL_EINVAL;
	}
	a->on = 1;
	a->seed = seed;
	a->V = V;
	a->offset = view_offset(seed, V);
	a->dtype = sl_dataset_dtype(ds);
	a->C = nd == 4 ? (int)shape[1] : 1;
	a->H = (int)shape[nd - 2];
	a->W = (int)shape[nd - 1];
	esize = a->dtype == SL_DTYPE_U8 ? 1 : sizeof(float);
	a->row_bytes = (size_t)a->C * (size_t)a->H * (size_t)a->W * esize;
	a->raw = malloc((size_t)B * a->row_bytes);
	a->scratch = malloc((size_t)a->H * (size_t)a->W * esize);
	if (a->raw == NULL || a->scratch == NULL) {
		augment_fini(a);
		return SL_ENOMEM;
	}
	return 0;
}

void
augment_fini(augment *a)
{
	free(a->raw);
	free(a->scratch);
	memset(a, 0, sizeof *a);
}

void
augment_views(const augment *a, uint32_t epoch, const size_t *rows,
    size_t n, uint32_t *views)
{
	for (size_t j = 0; j < n; j++)
		views[j] = view_of(epoch, rows[j], a->V, a->offset);
}

const void *
augment_rows(augment *a, const sl_dataset *ds, const size_t *rows,
    const uint32_t *views, size_t n)
{
	for (size_t j = 0; j < n; j++) {
		sl_view_params p;

		sl_view_draw(&a->recipe, a->seed, rows[j], views[j], a->H, a->W,
		    &p);
		sl_view_apply(&p, a->dtype, sl_dataset_row(ds, rows[j]),
		    a->raw + j * a->row_bytes, a->scratch, a->C, a->H, a->W);
	}
	return a->raw;
}
