/* one_node.c - see one_node.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "one_node.h"

static uint64_t rng_state = 88172645463325252ull;

float
frand(float lo, float hi)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return lo + (hi - lo) * (float)((double)(rng_state >> 11) /
	    9007199254740992.0);
}

void
fill(float *x, size_t n, float lo, float hi)
{
	for (size_t i = 0; i < n; i++)
		x[i] = frand(lo, hi);
}

size_t
numel_of(int rank, const int64_t *dims)
{
	size_t n = 1;

	for (int i = 0; i < rank; i++)
		n *= (size_t)dims[i];
	return n;
}

int
one_run(one *o, const char *op, int64_t opset, const sl_gattr *at, int nat,
    const tin *in, int nin, int nout)
{
	const sl_gattrs attrs = { at, nat };
	const sl_gop *gop = sl_g_op_find(op);
	int ins[SL_G_MAX_IO];
	int rc;

	memset(o, 0, sizeof *o);
	assert_non_null(gop);
	assert_int_equal(sl_g_new(&o->g), 0);
	o->g->opset = opset;
	for (int j = 0; j < nin; j++) {
		char name[16];
		sl_gtensor *t;
		size_t bytes;
		int idx;

		if (in[j].dtype == 0) {
			ins[j] = -1;
			continue;
		}
		snprintf(name, sizeof name, "in%d", j);
		assert_int_equal(sl_g_tensor_add(o->g, name, &idx, &o->why), 0);
		t = &o->g->t[idx];
		assert_int_equal(sl_g_set_shape(t, in[j].dtype, in[j].rank,
		    in[j].dims, &o->why), 0);
		bytes = sl_g_numel(t) * sl_g_dtype_size(in[j].dtype);
		if (in[j].is_const) {
			t->data = malloc(bytes ? bytes : 1);
			assert_non_null(t->data);
			memcpy(t->data, in[j].data, bytes);
			t->flags |= SL_GT_CONST;
			t->cap_bytes = bytes;
		} else {
			t->flags |= SL_GT_INPUT;
			t->data = (void *)in[j].data;
			o->g->inputs[o->g->ninputs++] = idx;
		}
		ins[j] = idx;
	}
	for (int j = 0; j < nout; j++) {
		char name[16];

		snprintf(name, sizeof name, "out%d", j);
		assert_int_equal(sl_g_tensor_add(o->g, name, &o->out[j], &o->why),
		    0);
		o->g->t[o->out[j]].flags |= SL_GT_OUTPUT;
		o->g->outputs[o->g->noutputs++] = o->out[j];
	}
	if ((rc = sl_g_node_add(o->g, gop, "n", ins, nin, o->out, nout, &attrs,
	    &o->why)) != 0)
		return rc;
	if ((rc = sl_g_plan(o->g, 1, &o->why)) != 0)
		return rc;
	return sl_g_run(o->g, &o->why);
}

const sl_gtensor *
out_t(const one *o, int j)
{
	return &o->g->t[o->out[j]];
}

void
expect_ok(one *o, const char *op, int64_t opset, const sl_gattr *at, int nat,
    const tin *in, int nin, int nout)
{
	const int rc = one_run(o, op, opset, at, nat, in, nin, nout);

	if (rc != 0) {
		print_error("%s: %s (%d)\n", op, o->why.text, rc);
		fail();
	}
}

void
assert_close_f(const float *got, const double *ref, size_t n, double atol,
    double rtol, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		const double d = fabs((double)got[i] - ref[i]);

		if (isnan(ref[i]) && isnan((double)got[i]))
			continue;
		if (!(d <= atol + rtol * fabs(ref[i]))) {
			print_error("%s: index %zu: %.9g vs %.9g (atol %g rtol %g)\n",
			    what, i, (double)got[i], ref[i], atol, rtol);
			fail();
		}
	}
}

tin
f32_in(int rank, const int64_t *dims, const float *data)
{
	tin t = { .dtype = SL_G_F32, .rank = rank, .data = data };

	if (rank > 0)
		memcpy(t.dims, dims, (size_t)rank * sizeof *dims);
	return t;
}

tin
typed_in(int dtype, int rank, const int64_t *dims, const void *data,
    int is_const)
{
	tin t = { .dtype = dtype, .rank = rank, .data = data,
	    .is_const = is_const };

	if (rank > 0)
		memcpy(t.dims, dims, (size_t)rank * sizeof *dims);
	return t;
}
