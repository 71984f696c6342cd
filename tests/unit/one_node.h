/* one_node.h - the op tests' harness: one node of the graph engine built
 * from given inputs, planned at batch 1 and run, and the checks around it.
 * Shared by test_op_eltwise.c and test_op_norm.c; cmocka must be included
 * first (the helpers fail the running test). */
#ifndef SL_TEST_ONE_NODE_H
#define SL_TEST_ONE_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "graph.h"

typedef struct tin {
	int dtype;              /* 0: an optional input left out */
	int rank;
	int64_t dims[SL_G_MAX_RANK];
	const void *data;
	int is_const;           /* an initializer rather than a graph input */
} tin;

typedef struct one {
	sl_graph *g;
	int out[4];
	sl_errmsg why;
} one;

/* Uniform in [lo, hi) from a fixed xorshift sequence (the same in every
 * run of one test binary). */
float frand(float lo, float hi);
void fill(float *x, size_t n, float lo, float hi);
size_t numel_of(int rank, const int64_t *dims);

/* Build in -> op -> outputs, plan, run. Float inputs are graph inputs
 * (so the node is not folded away) unless is_const. Returns the first
 * failing step's code; o->why says why. Free o->g with sl_g_free. */
int one_run(one *o, const char *op, int64_t opset, const sl_gattr *at,
    int nat, const tin *in, int nin, int nout);
/* one_run that fails the test, naming the op and why, unless it ran. */
void expect_ok(one *o, const char *op, int64_t opset, const sl_gattr *at,
    int nat, const tin *in, int nin, int nout);
const sl_gtensor *out_t(const one *o, int j);

/* |got - ref| <= atol + rtol * |ref| everywhere (NaN matches NaN), or the
 * test fails naming what and the first index that differs. */
void assert_close_f(const float *got, const double *ref, size_t n,
    double atol, double rtol, const char *what);

/* An input tensor: float32, or any dtype, as a graph input or (is_const)
 * an initializer. dims is copied; data is not. */
tin f32_in(int rank, const int64_t *dims, const float *data);
tin typed_in(int dtype, int rank, const int64_t *dims, const void *data,
    int is_const);

#endif
