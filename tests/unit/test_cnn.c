/* Convolutional students (common/nn/sl_cnn.h): the architecture grammar
 * (shapes, parameter counts, PyTorch state_dict names, one-line refusals
 * naming the element), the whole network's backward against central
 * finite differences (conv, groups, bn, relu, pools, a residual block,
 * gap, flatten, dropout, linear), BatchNorm's running statistics and
 * evaluation mode, the printed torch.nn module, safetensors round trips
 * and damaged files, and the ONNX export run by the graph engine.
 *
 * Tolerance of the finite differences: h = 1e-4 on a float forward,
 * within 3e-2 * (1 + |g|) (the seed is fixed, so a ReLU or max kink
 * crossed by a step would fail every run, not at random). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "sl_cnn.h"
#include "sl_file.h"
#include "sl_graph.h"

#include <unistd.h>

static sl_cnn *
build(const char *arch, int C, int H, int W)
{
	sl_errmsg why = { "" };
	sl_cnn *n = NULL;
	int rc = sl_cnn_new(arch, C, H, W, 0, &n, &why);

	if (rc != 0)
		print_error("%s: %s\n", arch, why.text);
	assert_int_equal(rc, 0);
	return n;
}

static void
test_shapes_and_names(void **state)
{
	sl_cnn *n = build("conv:8:3:p=1,bn,relu,maxpool:2,"
	    "res(conv:8:3:p=1,bn,relu,conv:8:3:p=1:g=2:bias=0,bn),relu,"
	    "conv:8:3:p=1:g=8,avgpool:2,gap,flatten,dropout:0.25,linear:10", 1,
	    28, 28);
	sl_cnn_tensor t;
	const char *want[] = { "0.weight", "0.bias", "1.weight", "1.bias",
		"1.running_mean", "1.running_var", "1.num_batches_tracked",
		"4.body.0.weight", "4.body.0.bias", "4.body.1.weight" };

	(void)state;
	assert_int_equal(sl_cnn_classes(n), 10);
	assert_int_equal(sl_cnn_input_dim(n), 784);
	/* conv 8*9+8, bn 16, res: conv 8*8*9+8, bn 16, conv 8*4*9 (no bias),
	 * bn 16; depthwise 8*9+8; linear 8*10+10 */
	assert_int_equal(sl_cnn_nparams(n), 80 + 16 + 584 + 16 + 288 + 16 + 80 +
	    90);
	assert_int_equal(sl_cnn_nbn(n), 3);
	assert_int_equal(sl_cnn_nbufs(n), 6 * 8);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		sl_cnn_tensor_at(n, (int)i, &t);
		assert_string_equal(t.name, want[i]);
	}
	sl_cnn_tensor_at(n, 0, &t);
	assert_int_equal(t.rank, 4);
	assert_true(t.dims[0] == 8 && t.dims[1] == 1 && t.dims[2] == 3 &&
	    t.dims[3] == 3);
	sl_cnn_tensor_at(n, 6, &t);
	assert_int_equal(t.rank, 0);
	assert_non_null(t.i64);
	/* the grouped conv without bias: weight (8, 4, 3, 3), then bn */
	int found = 0;

	for (int i = 0; i < sl_cnn_ntensors(n); i++) {
		sl_cnn_tensor_at(n, i, &t);
		if (strcmp(t.name, "4.body.3.weight") == 0) {
			assert_true(t.dims[1] == 4);
			found++;
		}
		assert_true(strcmp(t.name, "4.body.3.bias") != 0);
		if (strcmp(t.name, "6.weight") == 0) {
			assert_true(t.dims[0] == 8 && t.dims[1] == 1);
			found++;
		}
		if (strcmp(t.name, "11.weight") == 0) {
			assert_true(t.rank == 2 && t.dims[0] == 10 && t.dims[1] == 8);
			found++;
		}
	}
	assert_int_equal(found, 3);
	/* 28 -> maxpool 14 -> avgpool 7 */
	assert_int_equal(sl_cnn_layer_size(n, 3), 8 * 14 * 14);
	sl_cnn_free(&n);
	assert_null(n);
}

static void
refused(const char *arch, int C, int H, int W, const char *needle)
{
	sl_errmsg why = { "" };
	sl_cnn *n = NULL;

	assert_int_equal(sl_cnn_new(arch, C, H, W, 0, &n, &why), SL_EINVAL);
	assert_null(n);
	if (strstr(why.text, needle) == NULL) {
		print_error("%s: '%s' lacks '%s'\n", arch, why.text, needle);
		fail();
	}
	assert_null(strchr(why.text, '\n'));
}

static void
test_bad_descriptions(void **state)
{
	(void)state;
	refused("conv:8:5,flatten,linear:10", 1, 4, 4,
	    "element 0 'conv:8:5': kernel 5 larger than its padded input 4x4");
	refused("conv:8:3,linear:10", 1, 8, 8,
	    "element 1 'linear:10': linear (nn.Linear) needs a flat input, "
	    "it gets 8x6x6: put flatten before it");
	refused("conv:8:3,flatten,lineer:10", 1, 8, 8,
	    "element 2 'lineer:10': unknown element 'lineer'");
	refused("conv:6:3:g=4,flatten,linear:2", 2, 8, 8, "groups 4 must "
	    "divide the 2 input and 6 output channels");
	refused("conv:4:3,res(conv:8:3:p=1),flatten,linear:2", 1, 8, 8,
	    "element 1 'res(...)': its body gives 8x6x6 from 4x6x6");
	refused("conv:4:3,res(conv:4:3:p=1,flatten,linear:2", 1, 8, 8,
	    "not closed");
	refused("conv:4:3", 1, 8, 8, "the last element gives 4x6x6");
	refused("conv:4:3,,flatten,linear:2", 1, 8, 8, "element 1: empty");
	refused("conv:4:x,flatten,linear:2", 1, 8, 8,
	    "kernel 'x' is not an integer");
	refused("conv:4:3:q=1,flatten,linear:2", 1, 8, 8,
	    "unknown argument 'q'");
	refused("maxpool:2:p=2,flatten,linear:2", 1, 8, 8, "padding 2 over "
	    "half the kernel 2");
	refused("flatten,bn,linear:2", 1, 8, 8, "bn (nn.BatchNorm2d) needs an "
	    "image");
	refused("dropout:1.5,flatten,linear:2", 1, 8, 8, "'1.5' is not in");
	refused("relu,flatten", 1, 8, 8, "no element with parameters");
	refused("conv:4:3,res(),flatten,linear:2", 1, 8, 8, "empty body");
	refused("conv:4:3),flatten,linear:2", 1, 8, 8, "unbalanced ')'");
	refused("res(res(res(res(res(res(res(res(res(conv:1:1))))))))),flatten,"
	    "linear:2", 1, 4, 4, "nested deeper than 8");
	assert_true(sl_cnn_is_arch("conv:8:3,flatten,linear:10"));
	assert_false(sl_cnn_is_arch("784-128-10"));
	assert_false(sl_cnn_is_arch("784-x")); /* a bad MLP, said so as such */
}

/* --- finite differences over the whole network --------------------------------- */

typedef struct fd_net {
	sl_cnn *n;
	sl_cnn_ws *ws;
	const float *x, *r;
	int B, C;
	uint64_t seed;
} fd_net;

static double
net_loss(fd_net *f)
{
	sl_rng rng;
	const float *z;
	double s = 0;

	sl_rng_seed(&rng, f->seed); /* the same dropout mask every time */
	z = sl_cnn_forward(f->n, f->ws, f->x, f->B, 1, &rng);
	for (int i = 0; i < f->B * f->C; i++)
		s += (double)z[i] * (double)f->r[i];
	return s;
}

static void
check_net_fd(const char *arch, int C, int H, int W, int B, uint64_t seed)
{
	sl_cnn *n = build(arch, C, H, W);
	sl_cnn_ws *ws = NULL;
	const size_t D = sl_cnn_input_dim(n), P = sl_cnn_nparams(n);
	const int K = sl_cnn_classes(n);
	float *x = malloc((size_t)B * D * sizeof(float));
	float *r = malloc((size_t)B * (size_t)K * sizeof(float));
	float *grads = malloc(P * sizeof(float));
	float *params = sl_cnn_params(n);
	sl_rng rng;

	assert_true(x && r && grads);
	assert_int_equal(sl_cnn_ws_new(n, B, &ws), 0);
	sl_rng_seed(&rng, seed);
	sl_cnn_init_params(n, &rng);
	/* BatchNorm weights and biases away from 1 and 0 */
	for (size_t i = 0; i < P; i++)
		params[i] += 0.1f * (2.0f * sl_rng_float(&rng) - 1.0f);
	for (size_t i = 0; i < (size_t)B * D; i++)
		x[i] = 2.0f * sl_rng_float(&rng) - 1.0f;
	for (int i = 0; i < B * K; i++)
		r[i] = 2.0f * sl_rng_float(&rng) - 1.0f;

	fd_net f = { n, ws, x, r, B, K, seed + 7 };

	(void)net_loss(&f);
	sl_cnn_backward(n, ws, r, B, grads);
	const size_t step = P > 80 ? P / 80 : 1;

	for (size_t i = 0; i < P; i += step) {
		const float keep = params[i], h = 1e-4f;
		double lp, lm, num;

		params[i] = keep + h;
		lp = net_loss(&f);
		params[i] = keep - h;
		lm = net_loss(&f);
		params[i] = keep;
		num = (lp - lm) / (2.0 * (double)h);
		if (fabs((double)grads[i] - num) > 3e-2 * (1.0 + fabs(num))) {
			print_error("%s: param %zu: %.7g, finite differences %.7g\n",
			    arch, i, (double)grads[i], num);
			fail();
		}
	}
	sl_cnn_ws_free(&ws);
	sl_cnn_free(&n);
	free(x);
	free(r);
	free(grads);
}

static void
test_backward_finite_differences(void **state)
{
	(void)state;
	check_net_fd("conv:4:3:p=1,bn,relu,maxpool:2,flatten,linear:3", 1, 6, 6,
	    3, 1);
	check_net_fd("conv:4:3:s=2:p=1,res(conv:4:3:p=1,bn,relu,conv:4:1:g=2),"
	    "relu,avgpool:2:s=1,gap,flatten,dropout:0.3,linear:5", 2, 8, 7, 4,
	    2);
	check_net_fd("conv:6:3:g=3,bn,relu,conv:6:3:p=1:g=6:bias=0,bn,relu,"
	    "flatten,linear:8,relu,linear:2:bias=0", 3, 6, 6, 2, 3);
}

static void
test_running_statistics_and_eval(void **state)
{
	sl_cnn *n = build("conv:2:1,bn:momentum=0.5,flatten,linear:2", 1, 3, 3);
	sl_cnn_ws *ws = NULL;
	float x[2 * 9], *p = sl_cnn_params(n), *bufs = sl_cnn_bufs(n);
	const float *z;
	float first[4];
	sl_rng rng;

	(void)state;
	assert_int_equal(sl_cnn_ws_new(n, 2, &ws), 0);
	sl_rng_seed(&rng, 5);
	sl_cnn_init_params(n, &rng);
	/* conv weight 1, bias 0: the bn sees x itself */
	p[0] = p[1] = 1.0f;
	p[2] = p[3] = 0.0f;
	for (int i = 0; i < 18; i++)
		x[i] = (float)i;
	assert_true(bufs[0] == 0.0f && bufs[2] == 1.0f);
	z = sl_cnn_forward(n, ws, x, 2, 1, NULL);
	memcpy(first, z, sizeof first);
	/* mean 8.5; unbiased variance of 0..17 = 28.5 */
	assert_true(fabs((double)bufs[0] - 4.25) < 1e-6);
	assert_true(fabs((double)bufs[2] - (0.5 + 0.5 * 28.5)) < 1e-5);
	assert_int_equal(sl_cnn_batches_tracked(n)[0], 1);
	/* evaluation uses the running statistics: other logits, no update */
	z = sl_cnn_forward(n, ws, x, 2, 0, NULL);
	assert_true(fabsf(z[0] - first[0]) > 1e-3f);
	assert_int_equal(sl_cnn_batches_tracked(n)[0], 1);
	assert_true(fabs((double)bufs[0] - 4.25) < 1e-6);
	sl_cnn_ws_free(&ws);
	sl_cnn_free(&n);
}

static void
test_torch_module_text(void **state)
{
	sl_cnn *n = build("conv:8:3:p=1,bn,relu,res(conv:8:3:p=1,bn),gap,"
	    "flatten,linear:10", 1, 28, 28);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	(void)state;
	assert_non_null(f);
	sl_cnn_format_torch(n, f);
	fclose(f);
	assert_non_null(strstr(buf, "class Residual(nn.Module):"));
	assert_non_null(strstr(buf, "self.body = nn.Sequential(*body)"));
	assert_non_null(strstr(buf, "    nn.Conv2d(1, 8, 3, stride=1, "
	    "padding=1, groups=1, bias=True),\n"));
	assert_non_null(strstr(buf, "    nn.BatchNorm2d(8, eps=1e-05, momentum=0.1),"
	    "\n"));
	assert_non_null(strstr(buf, "    Residual(\n        nn.Conv2d(8, 8, 3"));
	assert_non_null(strstr(buf, "    nn.AdaptiveAvgPool2d(1),\n"
	    "    nn.Flatten(),\n    nn.Linear(8, 10, bias=True),\n)\n"));
	free(buf);
	sl_cnn_free(&n);
}

/* Two threads (convolution backward split by images) compute the same
 * gradients as one, within float rounding of the different summation
 * order: 1e-5 * (1 + |g|). */
static void
test_two_threads_match_one(void **state)
{
	enum { B = 7 };
	sl_cnn *n = build("conv:6:3:p=1,bn,relu,res(conv:6:3:p=1:g=3,bn),"
	    "conv:4:3:s=2:g=2,relu,flatten,linear:3", 2, 9, 9);
	const size_t D = sl_cnn_input_dim(n), P = sl_cnn_nparams(n);
	float *x = malloc(B * D * sizeof(float));
	float *g1 = malloc(P * sizeof(float)), *g2 = malloc(P * sizeof(float));
	float r[B * 3], z1[B * 3];
	sl_cnn_ws *w1 = NULL, *w2 = NULL;
	const int prev = openblas_get_num_threads();
	sl_rng rng;

	(void)state;
	assert_true(x && g1 && g2);
	sl_rng_seed(&rng, 21);
	sl_cnn_init_params(n, &rng);
	for (size_t i = 0; i < B * D; i++)
		x[i] = 2.0f * sl_rng_float(&rng) - 1.0f;
	for (int i = 0; i < B * 3; i++)
		r[i] = 2.0f * sl_rng_float(&rng) - 1.0f;
	openblas_set_num_threads(1);
	assert_int_equal(sl_cnn_ws_new(n, B, &w1), 0);
	openblas_set_num_threads(2);
	assert_int_equal(sl_cnn_ws_new(n, B, &w2), 0);
	memcpy(z1, sl_cnn_forward(n, w1, x, B, 1, NULL), sizeof z1);
	sl_cnn_backward(n, w1, r, B, g1);
	const float *z2 = sl_cnn_forward(n, w2, x, B, 1, NULL);

	for (int i = 0; i < B * 3; i++)
		assert_true(fabsf(z1[i] - z2[i]) <= 1e-5f * (1.0f + fabsf(z1[i])));
	sl_cnn_backward(n, w2, r, B, g2);
	openblas_set_num_threads(prev);
	for (size_t i = 0; i < P; i++)
		if (fabsf(g1[i] - g2[i]) > 1e-5f * (1.0f + fabsf(g1[i]))) {
			print_error("grad %zu: one thread %.9g, two %.9g\n", i,
			    (double)g1[i], (double)g2[i]);
			fail();
		}
	sl_cnn_ws_free(&w1);
	sl_cnn_ws_free(&w2);
	sl_cnn_free(&n);
	free(x);
	free(g1);
	free(g2);
}

/* BatchNorm, ReLU and the pools split over two threads by channels,
 * planes or elements: every value is computed by the same code whatever
 * the split, so two threads give one thread's forward, gradients and
 * running statistics bit for bit. The layers are large enough (B * C * H
 * * W >= 16384 values) to be split; no convolution, whose split sums in
 * another order. */
static void
test_split_layers_bit_identical(void **state)
{
	enum { B = 9, C = 4, H = 30, W = 30, K = 3 };
	const char *arch = "bn,relu,maxpool:2,bn,relu,avgpool:3:s=1:p=1,"
	    "maxpool:3:s=2,gap,flatten,linear:3";
	sl_cnn *n1 = build(arch, C, H, W), *n2 = build(arch, C, H, W);
	const size_t D = sl_cnn_input_dim(n1), P = sl_cnn_nparams(n1);
	const size_t NB = sl_cnn_nbufs(n1);
	float *x = malloc(B * D * sizeof(float));
	float *g1 = malloc(P * sizeof(float)), *g2 = malloc(P * sizeof(float));
	float r[B * K], z1[B * K];
	sl_cnn_ws *w1 = NULL, *w2 = NULL;
	const int prev = openblas_get_num_threads();
	sl_rng rng;

	(void)state;
	assert_true(x && g1 && g2);
	sl_rng_seed(&rng, 5);
	sl_cnn_init_params(n1, &rng);
	for (size_t i = 0; i < P; i++)
		sl_cnn_params(n1)[i] += 0.3f * (2.0f * sl_rng_float(&rng) - 1.0f);
	memcpy(sl_cnn_params(n2), sl_cnn_params(n1), P * sizeof(float));
	memcpy(sl_cnn_bufs(n2), sl_cnn_bufs(n1), NB * sizeof(float));
	for (size_t i = 0; i < B * D; i++)
		x[i] = 2.0f * sl_rng_float(&rng) - 1.0f;
	for (int i = 0; i < B * K; i++)
		r[i] = 2.0f * sl_rng_float(&rng) - 1.0f;
	openblas_set_num_threads(1);
	assert_int_equal(sl_cnn_ws_new(n1, B, &w1), 0);
	openblas_set_num_threads(2);
	assert_int_equal(sl_cnn_ws_new(n2, B, &w2), 0);
	openblas_set_num_threads(1);
	memcpy(z1, sl_cnn_forward(n1, w1, x, B, 1, NULL), sizeof z1);
	sl_cnn_backward(n1, w1, r, B, g1);
	const float *z2 = sl_cnn_forward(n2, w2, x, B, 1, NULL);

	assert_memory_equal(z1, z2, sizeof z1);
	sl_cnn_backward(n2, w2, r, B, g2);
	assert_memory_equal(g1, g2, P * sizeof(float));
	assert_memory_equal(sl_cnn_bufs(n1), sl_cnn_bufs(n2), NB *
	    sizeof(float));
	/* Evaluation mode splits BatchNorm by images. */
	memcpy(z1, sl_cnn_forward(n1, w1, x, B, 0, NULL), sizeof z1);
	assert_memory_equal(z1, sl_cnn_forward(n2, w2, x, B, 0, NULL),
	    sizeof z1);
	openblas_set_num_threads(prev);
	sl_cnn_ws_free(&w1);
	sl_cnn_ws_free(&w2);
	sl_cnn_free(&n1);
	sl_cnn_free(&n2);
	free(x);
	free(g1);
	free(g2);
}

/* --- files ---------------------------------------------------------------------- */

#define ARCH_IO "conv:6:3:p=1,bn,relu,maxpool:2,res(conv:6:3:p=1:g=6,bn,relu," \
	"conv:6:1:bias=0),avgpool:2:s=1,gap,flatten,dropout:0.5,linear:4"

/* A trained-looking network: random parameters, running statistics moved
 * by a few training forwards. */
static sl_cnn *
trained(const float *x, int B)
{
	sl_cnn *n = build(ARCH_IO, 2, 8, 8);
	sl_cnn_ws *ws = NULL;
	sl_rng rng;
	float *p = sl_cnn_params(n);

	assert_int_equal(sl_cnn_ws_new(n, B, &ws), 0);
	sl_rng_seed(&rng, 77);
	sl_cnn_init_params(n, &rng);
	for (size_t i = 0; i < sl_cnn_nparams(n); i++)
		p[i] += 0.2f * (2.0f * sl_rng_float(&rng) - 1.0f);
	for (int k = 0; k < 3; k++)
		(void)sl_cnn_forward(n, ws, x, B, 1, &rng);
	sl_cnn_ws_free(&ws);
	return n;
}

static void
inputs(float *x, size_t n)
{
	sl_rng rng;

	sl_rng_seed(&rng, 3);
	for (size_t i = 0; i < n; i++)
		x[i] = 2.0f * sl_rng_float(&rng) - 1.0f;
}

static void
test_safetensors_round_trip(void **state)
{
	enum { B = 5, D = 2 * 8 * 8 };
	float x[B * D];
	char path[] = "/tmp/sl-cnn-XXXXXX";
	int fd = mkstemp(path);
	sl_preproc pre = sl_preproc_default(SL_DTYPE_U8);
	sl_model_info info;
	sl_errmsg why = { "" };
	sl_cnn *a, *b = NULL;
	sl_cnn_ws *wa = NULL, *wb = NULL;
	void *buf;
	size_t len;

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	inputs(x, B * D);
	a = trained(x, B);
	pre.mean[0] = 0.25f;
	assert_int_equal(sl_cnn_save(path, a, &pre, SL_DTYPE_U8, &why), 0);
	assert_int_equal(sl_cnn_load(path, &b, &info, &why), 0);
	assert_true(info.has_preproc && info.pre.mean[0] == 0.25f);
	assert_string_equal(sl_cnn_arch(b), ARCH_IO);
	assert_memory_equal(sl_cnn_params(a), sl_cnn_params(b),
	    sl_cnn_nparams(a) * sizeof(float));
	assert_memory_equal(sl_cnn_bufs(a), sl_cnn_bufs(b),
	    sl_cnn_nbufs(a) * sizeof(float));
	assert_true(sl_cnn_batches_tracked(b)[0] == 3 &&
	    sl_cnn_batches_tracked(b)[1] == 3);
	assert_int_equal(sl_cnn_ws_new(a, B, &wa), 0);
	assert_int_equal(sl_cnn_ws_new(b, B, &wb), 0);
	assert_memory_equal(sl_cnn_forward(a, wa, x, B, 0, NULL),
	    sl_cnn_forward(b, wb, x, B, 0, NULL), B * 4 * sizeof(float));

	/* damaged images: each refused with the reason, none crashes */
	assert_int_equal(sl_file_read(path, 1 << 20, &buf, &len, &why), 0);
	{
		sl_cnn *c = NULL;
		unsigned char *img = malloc(len);

		assert_non_null(img);
		for (size_t cut = 0; cut < len; cut += len / 23 + 1) {
			assert_int_not_equal(sl_cnn_parse_file(buf, cut, &c, NULL,
			    &why), 0);
			assert_null(c);
		}
		memcpy(img, buf, len);
		/* a NaN in the last weight */
		memcpy(img + len - 4, "\x00\x00\xc0\x7f", 4);
		assert_int_equal(sl_cnn_parse_file(img, len, &c, NULL, &why),
		    SL_EFORMAT);
		assert_non_null(strstr(why.text, "non-finite"));
		/* another arch in the metadata: the shapes no longer fit */
		memcpy(img, buf, len);
		char *at = NULL;

		for (size_t i = 0; at == NULL && i + 8 <= len; i++)
			if (memcmp(img + i, "linear:4", 8) == 0)
				at = (char *)img + i;
		assert_non_null(at);
		at[7] = '5';
		assert_int_equal(sl_cnn_parse_file(img, len, &c, NULL, &why),
		    SL_EFORMAT);
		assert_non_null(strstr(why.text, "dimension 0 is not 5"));
		assert_true(sl_cnn_sniff(buf, len));
		assert_false(sl_cnn_sniff(buf, 20));
		free(img);
	}
	free(buf);
	unlink(path);
	sl_cnn_ws_free(&wa);
	sl_cnn_ws_free(&wb);
	sl_cnn_free(&a);
	sl_cnn_free(&b);
}

/* The ONNX export, planned and run by the graph engine, computes what the
 * network computes in evaluation (the engine folds BatchNorm into Conv, so
 * within float rounding: 1e-5 * (1 + |z|)). */
static void
test_onnx_export_runs_in_the_engine(void **state)
{
	enum { B = 5, D = 2 * 8 * 8 };
	float x[B * D];
	char path[] = "/tmp/sl-cnn-onnx-XXXXXX";
	int fd = mkstemp(path);
	sl_preproc pre = sl_preproc_default(SL_DTYPE_U8);
	sl_errmsg why = { "" };
	const uint64_t dims[3] = { 2, 8, 8 };
	sl_graph_opts go = { .max_batch = B, .row_rank = 3, .row_dims = dims };
	sl_model_info info;
	sl_graph *g = NULL;
	sl_cnn *a;
	sl_cnn_ws *wa = NULL;
	const float *za, *zg;

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	inputs(x, B * D);
	a = trained(x, B);
	assert_int_equal(sl_cnn_save_onnx(path, a, &pre, &why), 0);
	if (sl_graph_load(path, &go, &g, &info, &why) != 0) {
		print_error("%s\n", why.text);
		fail();
	}
	assert_int_equal(sl_graph_format(g), SL_GRAPH_ONNX);
	assert_int_equal(sl_graph_classes(g), 4);
	assert_int_equal(sl_cnn_ws_new(a, B, &wa), 0);
	za = sl_cnn_forward(a, wa, x, B, 0, NULL);
	assert_int_equal(sl_graph_forward(g, x, B, &zg, &why), 0);
	for (int i = 0; i < B * 4; i++)
		if (fabsf(za[i] - zg[i]) > 1e-5f * (1.0f + fabsf(za[i]))) {
			print_error("logit %d: %.7g vs engine %.7g\n", i,
			    (double)za[i], (double)zg[i]);
			fail();
		}
	unlink(path);
	sl_graph_free(&g);
	sl_cnn_ws_free(&wa);
	sl_cnn_free(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shapes_and_names),
		cmocka_unit_test(test_bad_descriptions),
		cmocka_unit_test(test_backward_finite_differences),
		cmocka_unit_test(test_running_statistics_and_eval),
		cmocka_unit_test(test_torch_module_text),
		cmocka_unit_test(test_two_threads_match_one),
		cmocka_unit_test(test_split_layers_bit_identical),
		cmocka_unit_test(test_safetensors_round_trip),
		cmocka_unit_test(test_onnx_export_runs_in_the_engine),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
