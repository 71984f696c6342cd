/* softmax_T invariants, extreme logits, and the KD loss gradient against
 * central finite differences at T in {1, 4, 20}. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "sl_loss.h"
#include "sl_rng.h"

enum { B = 4, C = 7 };

static void
fill(float *x, size_t n, sl_rng *r, float scale)
{
	for (size_t i = 0; i < n; i++)
		x[i] = (2.0f * sl_rng_float(r) - 1.0f) * scale;
}

static void
test_softmax_rows_sum_to_one_and_shift_invariant(void **state)
{
	float z[B * C], p[B * C], q[B * C];
	sl_rng r;

	(void)state;
	sl_rng_seed(&r, 1);
	fill(z, B * C, &r, 5);
	for (int ti = 0; ti < 3; ti++) {
		const float T = (float[]){ 1, 4, 20 }[ti];

		sl_loss_softmax(p, z, B, C, T);
		for (int i = 0; i < B; i++) {
			double s = 0;

			for (int c = 0; c < C; c++) {
				assert_true(p[i * C + c] > 0.0f);
				s += (double)p[i * C + c];
			}
			assert_true(fabs(s - 1.0) < 1e-6);
		}
		/* softmax(z + k) == softmax(z) */
		for (int i = 0; i < B * C; i++)
			q[i] = z[i] + 1000.0f;
		sl_loss_softmax(q, q, B, C, T);
		for (int i = 0; i < B * C; i++)
			assert_true(fabsf(p[i] - q[i]) < 1e-4f);
	}
}

static void
test_softmax_extreme_logits_stay_finite(void **state)
{
	const float z[2 * 3] = { 1e4f, -1e4f, 0, -1e4f, -1e4f, -1e4f };
	float p[6], lp[6];

	(void)state;
	sl_loss_softmax(p, z, 2, 3, 1.0f);
	sl_loss_log_softmax(lp, z, 2, 3, 1.0f);
	for (int i = 0; i < 6; i++) {
		assert_true(isfinite(p[i]));
		assert_true(isfinite(lp[i]));
	}
	assert_true(fabsf(p[0] - 1.0f) < 1e-7f);
	assert_true(p[1] == 0.0f);
	assert_true(fabsf(lp[0]) < 1e-7f);
	assert_true(fabsf(lp[1] + 2e4f) < 1.0f);
	for (int c = 3; c < 6; c++)
		assert_true(fabsf(p[c] - 1.0f / 3) < 1e-6f);
}

static void
test_high_temperature_goes_uniform(void **state)
{
	const float z[5] = { 3, -1, 0.5f, 8, -6 };
	float p[5];

	(void)state;
	sl_loss_softmax(p, z, 1, 5, 1e6f);
	for (int c = 0; c < 5; c++)
		assert_true(fabsf(p[c] - 0.2f) < 1e-5f);
	/* and low temperature goes one-hot */
	sl_loss_softmax(p, z, 1, 5, 1e-3f);
	assert_true(p[3] > 0.999999f);
}

static void
test_log_softmax_matches_log_of_softmax(void **state)
{
	float z[B * C], p[B * C], lp[B * C];
	sl_rng r;

	(void)state;
	sl_rng_seed(&r, 2);
	fill(z, B * C, &r, 4);
	sl_loss_softmax(p, z, B, C, 3.0f);
	sl_loss_log_softmax(lp, z, B, C, 3.0f);
	for (int i = 0; i < B * C; i++)
		assert_true(fabsf(logf(p[i]) - lp[i]) < 1e-5f);
}

/* Loss in double from scratch, independent of the code under test. */
static double
ref_loss(const float *z, const float *pt, const uint8_t *has_t,
    const int32_t *y, float T, float alpha)
{
	double total = 0;
	int n = 0;

	for (int i = 0; i < B; i++) {
		const int soft = pt && has_t[i], hard = y && y[i] >= 0;
		double li = 0, m = -INFINITY, sT = 0, s1 = 0;

		if (!soft && !hard)
			continue;
		n++;
		for (int c = 0; c < C; c++)
			m = fmax(m, (double)z[i * C + c]);
		for (int c = 0; c < C; c++) {
			sT += exp(((double)z[i * C + c] - m) / (double)T);
			s1 += exp((double)z[i * C + c] - m);
		}
		if (soft)
			for (int c = 0; c < C; c++) {
				const double p = pt[i * C + c];
				const double lq = ((double)z[i * C + c] - m) / (double)T - log(sT);

				li += (double)(alpha * T * T) * p * (log(p) - lq);
			}
		if (hard)
			li += (soft ? 1.0 - (double)alpha : 1.0) *
			    (log(s1) - ((double)z[i * C + y[i]] - m));
		total += li;
	}
	return n ? total / n : 0;
}

static void
check_kd_gradient(float T, float alpha)
{
	float z[B * C], tz[B * C], pt[B * C], dz[B * C];
	/* Row 0: teacher and label; 1: teacher only; 2: label only;
	 * 3: neither (must get zero gradient and not count). */
	const uint8_t has_t[B] = { 1, 1, 0, 0 };
	const int32_t y[B] = { 3, -1, 5, -1 };
	sl_rng r;
	int counted;

	sl_rng_seed(&r, (uint64_t)(T * 100 + alpha * 10));
	fill(z, B * C, &r, 3);
	fill(tz, B * C, &r, 3);
	sl_loss_softmax(pt, tz, B, C, T);
	const float L = sl_loss_kd(z, pt, has_t, y, B, C, T, alpha, dz, &counted);
	assert_int_equal(counted, 3);
	assert_true(fabs((double)L - ref_loss(z, pt, has_t, y, T, alpha)) <
	    1e-4 * fmax(1.0, fabs((double)L)));
	for (int c = 0; c < C; c++)
		assert_true(dz[3 * C + c] == 0.0f);

	for (int i = 0; i < B * C; i++) {
		const float h = 1e-2f, z0 = z[i];
		double lp, lm, fd;

		z[i] = z0 + h;
		lp = ref_loss(z, pt, has_t, y, T, alpha);
		z[i] = z0 - h;
		lm = ref_loss(z, pt, has_t, y, T, alpha);
		z[i] = z0;
		fd = (lp - lm) / (2.0 * (double)h);
		if (fabs(fd - (double)dz[i]) > 1e-4 + 1e-3 * fabs(fd)) {
			print_error("T=%g alpha=%g z[%d]: analytic %.7g numeric %.7g\n",
			    (double)T, (double)alpha, i, (double)dz[i], fd);
			fail();
		}
	}
}

static void
test_kd_gradient_finite_differences(void **state)
{
	(void)state;
	const float temps[] = { 1, 4, 20 }, alphas[] = { 0, 0.5f, 0.9f, 1 };

	for (int t = 0; t < 3; t++)
		for (int a = 0; a < 4; a++)
			check_kd_gradient(temps[t], alphas[a]);
}

static void
test_kd_equals_zero_when_student_matches_teacher(void **state)
{
	float z[C] = { 1, 2, 3, -1, 0, 0.5f, 2 }, pt[C], dz[C];

	(void)state;
	sl_loss_softmax(pt, z, 1, C, 4.0f);
	const float L = sl_loss_kd(z, pt, NULL, NULL, 1, C, 4.0f, 1.0f, dz, NULL);
	assert_true(fabsf(L) < 1e-5f);
	for (int c = 0; c < C; c++)
		assert_true(fabsf(dz[c]) < 1e-5f);
}

static void
test_cross_entropy_value(void **state)
{
	/* Uniform logits over C classes: CE = log C exactly. */
	float z[2 * C] = { 0 }, dz[2 * C];
	const int32_t y[2] = { 0, 6 };
	int counted;

	(void)state;
	const float L = sl_loss_kd(z, NULL, NULL, y, 2, C, 1.0f, 0.0f, dz, &counted);
	assert_int_equal(counted, 2);
	assert_true(fabsf(L - logf((float)C)) < 1e-6f);
	/* gradient (p - onehot) / n */
	assert_true(fabsf(dz[0] - (1.0f / C - 1.0f) / 2) < 1e-6f);
	assert_true(fabsf(dz[1] - (1.0f / C) / 2) < 1e-6f);
}

static void
test_argmax(void **state)
{
	const float z[2 * 4] = { 0, 5, 5, 1, -3, -2, -1, -4 };
	int32_t out[2];

	(void)state;
	sl_loss_argmax(out, z, 2, 4);
	assert_int_equal(out[0], 1); /* first on ties */
	assert_int_equal(out[1], 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_softmax_rows_sum_to_one_and_shift_invariant),
		cmocka_unit_test(test_softmax_extreme_logits_stay_finite),
		cmocka_unit_test(test_high_temperature_goes_uniform),
		cmocka_unit_test(test_log_softmax_matches_log_of_softmax),
		cmocka_unit_test(test_kd_gradient_finite_differences),
		cmocka_unit_test(test_kd_equals_zero_when_student_matches_teacher),
		cmocka_unit_test(test_cross_entropy_value),
		cmocka_unit_test(test_argmax),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
