/* SGD with momentum and Adam against their PyTorch definitions, worked by
 * hand in double for a few steps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>

#include "sl_err.h"
#include "sl_optim.h"

static void
test_sgd_momentum_matches_reference(void **state)
{
	sl_optim o;
	float p[2] = { 1.0f, -2.0f };
	const float g[3][2] = { { 0.5f, -1 }, { 0.25f, 2 }, { -1, 0 } };
	double rp[2] = { 1, -2 }, v[2] = { 0, 0 };

	(void)state;
	assert_int_equal(sl_optim_init(&o, SL_OPTIM_SGD, 2, 0.1f), 0);
	o.weight_decay = 0.01f;
	for (int s = 0; s < 3; s++) {
		sl_optim_step(&o, p, g[s]);
		for (int i = 0; i < 2; i++) {
			const double gi = (double)g[s][i] + 0.01 * rp[i];

			v[i] = 0.9 * v[i] + gi;
			rp[i] -= 0.1 * v[i];
			assert_true(fabs((double)p[i] - rp[i]) < 1e-6);
		}
	}
	assert_int_equal(o.t, 3);
	sl_optim_fini(&o);
	assert_null(o.m);
}

static void
test_adam_matches_reference(void **state)
{
	sl_optim o;
	float p[3] = { 0.5f, -0.5f, 2.0f };
	double rp[3] = { 0.5, -0.5, 2.0 }, m[3] = { 0 }, v[3] = { 0 };

	(void)state;
	assert_int_equal(sl_optim_init(&o, SL_OPTIM_ADAM, 3, 1e-2f), 0);
	for (int s = 1; s <= 5; s++) {
		const float g[3] = { 0.1f * (float)s, -0.3f, (float)(s % 2) };

		sl_optim_step(&o, p, g);
		for (int i = 0; i < 3; i++) {
			m[i] = 0.9 * m[i] + 0.1 * (double)g[i];
			v[i] = 0.999 * v[i] + 0.001 * (double)g[i] * (double)g[i];
			const double mh = m[i] / (1 - pow(0.9, s));
			const double vh = v[i] / (1 - pow(0.999, s));

			rp[i] -= 1e-2 * mh / (sqrt(vh) + 1e-8);
			assert_true(fabs((double)p[i] - rp[i]) < 1e-6);
		}
	}
	/* The first step of Adam moves every parameter by about lr. */
	sl_optim_fini(&o);
}

/* A weight whose gradient stops: its moments decay to exactly 0, never
 * through the denormals (each costs a microcode assist), and its weight
 * ends bit-identical to what the unflushed PyTorch update computes. */
static void
test_moments_never_denormal(void **state)
{
	enum { N = 4, STEPS = 3000 };
	sl_optim o;
	float p[N] = { 0.5f, -0.25f, 1e-3f, 2.0f }, ref_p[N], m[N] = { 0 },
	    v[N] = { 0 }, g[N];
	int zero_m = 0;

	(void)state;
	for (int i = 0; i < N; i++)
		ref_p[i] = p[i];
	assert_int_equal(sl_optim_init(&o, SL_OPTIM_ADAM, N, 1e-3f), 0);
	for (int t = 1; t <= STEPS; t++) {
		/* As sl_optim computes them, from the float hyper-parameters. */
		const double bc1 = 1.0 - pow((double)0.9f, t);
		const double bc2 = 1.0 - pow((double)0.999f, t);
		const float step = (float)((double)1e-3f / bc1);
		const float inv = (float)(1.0 / sqrt(bc2));

		for (int i = 0; i < N; i++) /* a gradient for 10 steps only */
			g[i] = t <= 10 ? 0.01f * (float)(i + 1) : 0.0f;
		sl_optim_step(&o, p, g);
		for (int i = 0; i < N; i++) { /* the same arithmetic, unflushed */
			const float g0 = g[i] + 0.0f * ref_p[i]; /* weight decay 0 */

			m[i] = 0.9f * m[i] + (1.0f - 0.9f) * g0;
			v[i] = 0.999f * v[i] + (1.0f - 0.999f) * g0 * g0;
			ref_p[i] -= step * m[i] / (sqrtf(v[i]) * inv + 1e-8f);
			assert_false(o.m[i] != 0.0f && fabsf(o.m[i]) < FLT_MIN);
			assert_false(o.v[i] != 0.0f && fabsf(o.v[i]) < FLT_MIN);
		}
	}
	for (int i = 0; i < N; i++) {
		/* The reference went through the denormals; ours did not. */
		zero_m += o.m[i] == 0.0f;
		assert_true(p[i] == ref_p[i]);
	}
	assert_int_equal(zero_m, N);
	sl_optim_fini(&o);
}

static void
test_parse_kind(void **state)
{
	enum sl_optim_kind k;

	(void)state;
	assert_int_equal(sl_optim_parse_kind("adam", &k), 0);
	assert_int_equal(k, SL_OPTIM_ADAM);
	assert_int_equal(sl_optim_parse_kind("sgd", &k), 0);
	assert_int_equal(k, SL_OPTIM_SGD);
	assert_int_equal(sl_optim_parse_kind("Adam", &k), SL_EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sgd_momentum_matches_reference),
		cmocka_unit_test(test_adam_matches_reference),
		cmocka_unit_test(test_moments_never_denormal),
		cmocka_unit_test(test_parse_kind),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
