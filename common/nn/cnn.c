/* cnn.c - sl_cnn: building, initialising and running a convolutional
 * student, forward and backward, on the layers of sl_layers.h. */
#include "cnn_impl.h"
#include "graph.h"
#include "sl_nn.h"

#include <cblas.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

int
sl_cnn_new(const char *arch, int C, int H, int W, int flat, sl_cnn **out,
    sl_errmsg *why)
{
	sl_cnn *n;
	int rc;

	if (C < 1 || H < 1 || W < 1 || (flat && (H != 1 || W != 1)) ||
	    (size_t)C * (size_t)H * (size_t)W > SL_CNN_MAX_ACT)
		return sl_errmsg_set(why, SL_EINVAL, "input shape %dx%dx%d out "
		    "of range", C, H, W);
	n = calloc(1, sizeof *n);
	if (n == NULL)
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	n->in = (cnn_shape){ C, H, W, flat };
	if ((rc = cnn_parse(n, arch, why)) != 0)
		goto fail;
	n->params = calloc(n->nparams, sizeof *n->params);
	n->bufs = calloc(n->nbufs + 1, sizeof *n->bufs);
	if (n->params == NULL || n->bufs == NULL) {
		rc = sl_errmsg_set(why, SL_ENOMEM, "out of memory");
		goto fail;
	}
	for (int i = 0; i < n->nl; i++) {
		const cnn_layer *l = &n->L[i];

		if (l->kind == CNN_BN)
			for (int c = 0; c < l->in.C; c++)
				n->bufs[l->rm_off + (size_t)l->in.C + (size_t)c] = 1.0f;
	}
	*out = n;
	return 0;
fail:
	sl_cnn_free(&n);
	return rc;
}

void
sl_cnn_free(sl_cnn **n)
{
	if (n == NULL || *n == NULL)
		return;
	free((*n)->params);
	free((*n)->bufs);
	free(*n);
	*n = NULL;
}

void
sl_cnn_init_params(sl_cnn *n, sl_rng *rng)
{
	for (int i = 0; i < n->nl; i++) {
		const cnn_layer *l = &n->L[i];
		float *w = n->params + l->w_off, *b = n->params + l->b_off;

		if (l->kind == CNN_CONV || l->kind == CNN_LINEAR) {
			const size_t fan_in = l->nw / (size_t)l->oc;
			const float bound = 1.0f / sqrtf((float)fan_in);

			for (size_t j = 0; j < l->nw; j++)
				w[j] = (2.0f * sl_rng_float(rng) - 1.0f) * bound;
			for (size_t j = 0; j < l->nb; j++)
				b[j] = (2.0f * sl_rng_float(rng) - 1.0f) * bound;
		} else if (l->kind == CNN_BN) {
			for (size_t j = 0; j < l->nw; j++) {
				w[j] = 1.0f;
				b[j] = 0.0f;
				n->bufs[l->rm_off + j] = 0.0f;
				n->bufs[l->rm_off + l->nw + j] = 1.0f;
			}
			n->nbt[l->bn] = 0;
		}
	}
}

const char *sl_cnn_arch(const sl_cnn *n) { return n->arch; }
int sl_cnn_classes(const sl_cnn *n) { return n->classes; }
size_t sl_cnn_input_dim(const sl_cnn *n) { return cnn_shape_size(&n->in); }
size_t sl_cnn_nparams(const sl_cnn *n) { return n->nparams; }
float *sl_cnn_params(sl_cnn *n) { return n->params; }
size_t sl_cnn_nbufs(const sl_cnn *n) { return n->nbufs; }
float *sl_cnn_bufs(sl_cnn *n) { return n->bufs; }
int sl_cnn_nbn(const sl_cnn *n) { return n->nbn; }
int64_t *sl_cnn_batches_tracked(sl_cnn *n) { return n->nbt; }
int sl_cnn_nlayers(const sl_cnn *n) { return n->nl; }

size_t
sl_cnn_layer_size(const sl_cnn *n, int l)
{
	return l < 0 ? cnn_shape_size(&n->in) : cnn_shape_size(&n->L[l].out);
}

/* --- the state_dict ------------------------------------------------------------ */

int
sl_cnn_ntensors(const sl_cnn *n)
{
	int t = 0;

	for (int i = 0; i < n->nl; i++) {
		const cnn_layer *l = &n->L[i];

		if (l->kind == CNN_BN)
			t += 5;
		else if (l->kind == CNN_CONV || l->kind == CNN_LINEAR)
			t += l->bias ? 2 : 1;
	}
	return t;
}

void
sl_cnn_tensor_at(sl_cnn *n, int idx, sl_cnn_tensor *t)
{
	static const char *const bn_names[5] = { "weight", "bias",
		"running_mean", "running_var", "num_batches_tracked" };

	memset(t, 0, sizeof *t);
	for (int i = 0; i < n->nl; i++) {
		const cnn_layer *l = &n->L[i];
		int count = l->kind == CNN_BN ? 5 : (l->kind == CNN_CONV ||
		    l->kind == CNN_LINEAR) ? (l->bias ? 2 : 1) : 0;

		if (idx >= count) {
			idx -= count;
			continue;
		}
		if (l->kind == CNN_BN) {
			snprintf(t->name, sizeof t->name, "%s.%s", l->name,
			    bn_names[idx]);
			if (idx == 4) {
				t->rank = 0;
				t->i64 = &n->nbt[l->bn];
				return;
			}
			t->rank = 1;
			t->dims[0] = l->in.C;
			t->f32 = idx == 0 ? n->params + l->w_off : idx == 1 ?
			    n->params + l->b_off : n->bufs + l->rm_off +
			    (size_t)(idx - 2) * (size_t)l->in.C;
			return;
		}
		snprintf(t->name, sizeof t->name, "%s.%s", l->name, idx == 0 ?
		    "weight" : "bias");
		if (idx == 1) {
			t->rank = 1;
			t->dims[0] = l->oc;
			t->f32 = n->params + l->b_off;
		} else if (l->kind == CNN_CONV) {
			t->rank = 4;
			t->dims[0] = l->oc;
			t->dims[1] = l->in.C / l->g;
			t->dims[2] = t->dims[3] = l->k;
			t->f32 = n->params + l->w_off;
		} else {
			t->rank = 2;
			t->dims[0] = l->oc;
			t->dims[1] = l->in.C;
			t->f32 = n->params + l->w_off;
		}
		return;
	}
}

/* --- workspace ------------------------------------------------------------------ */

/* Per layer l: its output act[l] (B, out size), owned (own[l]) or the
 * input itself (flatten, res begin, dropout when evaluating); what
 * backward needs (dropout masks, bn batch statistics, the gradient a
 * residual's skip carries). Input gradients ping-pong between g[0] and
 * g[1], each as large as the largest layer input. */
struct sl_cnn_ws {
	int max_batch;
	int train;
	const float *x;
	const float *act[SL_CNN_MAX_LAYERS];
	float *own[SL_CNN_MAX_LAYERS];
	float *mask[SL_CNN_MAX_LAYERS];
	float *mean[SL_CNN_MAX_LAYERS], *invstd[SL_CNN_MAX_LAYERS];
	float *skip[SL_CNN_MAX_LAYERS];
	float *scratch;         /* conv forward (engine kernel) */
	float *col;             /* conv backward: a column buffer per thread */
	size_t col_floats;      /* one thread's */
	float *part;            /* conv backward: dW, db per thread */
	size_t part_floats;     /* one thread's */
	int threads;            /* OpenBLAS's count when ws was made */
	float *g[2];
};

static int
owns_output(int kind)
{
	return kind != CNN_FLATTEN && kind != CNN_RES_BEGIN;
}

int
sl_cnn_ws_new(const sl_cnn *n, int max_batch, sl_cnn_ws **out)
{
	sl_cnn_ws *ws;
	size_t scratch = 0, col = 0, widest = 0;
	const size_t B = (size_t)max_batch;

	size_t part = 0;

	if (max_batch < 1)
		return SL_EINVAL;
	ws = calloc(1, sizeof *ws);
	if (ws == NULL)
		return SL_ENOMEM;
	ws->max_batch = max_batch;
	ws->threads = openblas_get_num_threads();
	if (ws->threads < 1)
		ws->threads = 1;
	if (ws->threads > SL_CONV_MAX_THREADS)
		ws->threads = SL_CONV_MAX_THREADS;
	for (int i = 0; i < n->nl; i++) {
		const cnn_layer *l = &n->L[i];
		const size_t no = B * cnn_shape_size(&l->out);
		const size_t ni = B * cnn_shape_size(&l->in);

		if (ni > widest)
			widest = ni;
		if (owns_output(l->kind) &&
		    (ws->own[i] = malloc(no * sizeof(float))) == NULL)
			goto fail;
		if (l->kind == CNN_DROPOUT &&
		    (ws->mask[i] = malloc(no * sizeof(float))) == NULL)
			goto fail;
		if (l->kind == CNN_RES_END &&
		    (ws->skip[i] = malloc(no * sizeof(float))) == NULL)
			goto fail;
		if (l->kind == CNN_BN &&
		    ((ws->mean[i] = malloc((size_t)l->in.C * sizeof(float))) ==
		    NULL || (ws->invstd[i] = malloc((size_t)l->in.C *
		    sizeof(float))) == NULL))
			goto fail;
		if (l->kind == CNN_CONV) {
			sl_conv2d_geom g = l->cg;
			size_t s, c;

			g.B = max_batch;
			g.threads = ws->threads;
			s = sl_op_conv2d_scratch_bytes(&g);
			c = sl_nn_conv2d_col_floats(&g);
			scratch = s > scratch ? s : scratch;
			col = c > col ? c : col;
			if (l->nw + l->nb > part)
				part = l->nw + l->nb;
		}
	}
	ws->scratch = malloc(scratch + sizeof(float));
	ws->col_floats = col + 1;
	ws->col = malloc(ws->col_floats * (size_t)ws->threads * sizeof(float));
	ws->part_floats = part + 1;
	ws->part = malloc(ws->part_floats * (size_t)ws->threads * sizeof(float));
	ws->g[0] = malloc((widest + 1) * sizeof(float));
	ws->g[1] = malloc((widest + 1) * sizeof(float));
	if (!ws->scratch || !ws->col || !ws->part || !ws->g[0] || !ws->g[1])
		goto fail;
	*out = ws;
	return 0;
fail:
	sl_cnn_ws_free(&ws);
	return SL_ENOMEM;
}

void
sl_cnn_ws_free(sl_cnn_ws **ws)
{
	if (ws == NULL || *ws == NULL)
		return;
	for (int i = 0; i < SL_CNN_MAX_LAYERS; i++) {
		free((*ws)->own[i]);
		free((*ws)->mask[i]);
		free((*ws)->mean[i]);
		free((*ws)->invstd[i]);
		free((*ws)->skip[i]);
	}
	free((*ws)->scratch);
	free((*ws)->col);
	free((*ws)->part);
	free((*ws)->g[0]);
	free((*ws)->g[1]);
	free(*ws);
	*ws = NULL;
}

/* --- per-channel, per-plane and elementwise layers over threads ------------------ */

/* Below this many values a layer runs on the calling thread: a thread
 * costs about 20 us to start, more than the work. */
#define SPLIT_MIN_FLOATS 16384

enum split_op {
	SPLIT_BN_TRAIN, SPLIT_BN_EVAL, SPLIT_BN_BACK, SPLIT_RELU,
	SPLIT_RELU_BACK, SPLIT_MAXPOOL, SPLIT_MAXPOOL_BACK, SPLIT_AVGPOOL,
	SPLIT_AVGPOOL_BACK,
};

/* One layer's work, cut into parts by channels (BN), planes (pools) or
 * elements (ReLU). Every output value is computed by the same code from
 * the same inputs whatever the cut, so the result does not depend on the
 * thread count. */
typedef struct split_job {
	int op;                 /* enum split_op */
	const cnn_layer *l;
	int B;
	float *out;             /* y, dx */
	const float *in, *d;    /* x; dout (backward) */
	const float *act;       /* relu backward: the layer's output */
	float *mean, *invstd;   /* bn */
	float *run_mean, *run_var;
	const float *gamma, *beta;
	float *dgamma, *dbeta;
} split_job;

static void
split_range(size_t n, size_t align, int t, int nt, size_t *lo, size_t *hi)
{
	const size_t units = (n + align - 1) / align;
	const size_t a = units * (size_t)t / (size_t)nt * align;
	const size_t b = units * (size_t)(t + 1) / (size_t)nt * align;

	*lo = a < n ? a : n;
	*hi = b < n ? b : n;
}

static void
split_part(void *arg, int t, int nt)
{
	const split_job *j = arg;
	const cnn_layer *l = j->l;
	const int C = l->in.C, S = l->in.H * l->in.W;
	const size_t ni = (size_t)j->B * cnn_shape_size(&l->in);
	const size_t planes = (size_t)j->B * (size_t)C;
	size_t lo, hi;

	switch (j->op) {
	case SPLIT_BN_TRAIN:
		split_range((size_t)C, 1, t, nt, &lo, &hi);
		sl_nn_bn2d_forward_train_part(j->out, j->mean, j->invstd,
		    j->run_mean, j->run_var, j->in, j->gamma, j->beta, j->B, C, S,
		    l->eps, l->momentum, (int)lo, (int)hi);
		break;
	case SPLIT_BN_EVAL:
		/* The engine's kernel on a run of whole images. */
		split_range((size_t)j->B, 1, t, nt, &lo, &hi);
		if (hi > lo)
			sl_nn_bn2d_forward_eval(j->out + lo * (size_t)C * (size_t)S,
			    j->in + lo * (size_t)C * (size_t)S, j->gamma, j->beta,
			    j->run_mean, j->run_var, (int)(hi - lo), C, S, l->eps);
		break;
	case SPLIT_BN_BACK:
		split_range((size_t)C, 1, t, nt, &lo, &hi);
		sl_nn_bn2d_backward_part(j->out, j->dgamma, j->dbeta, j->d, j->in,
		    j->gamma, j->mean, j->invstd, j->B, C, S, (int)lo, (int)hi);
		break;
	case SPLIT_RELU:
		split_range(ni, 16, t, nt, &lo, &hi);
		sl_nn_relu_forward(j->out + lo, j->in + lo, hi - lo);
		break;
	case SPLIT_RELU_BACK:
		split_range(ni, 16, t, nt, &lo, &hi);
		sl_nn_relu_backward(j->out + lo, j->d + lo, j->act + lo, hi - lo);
		break;
	default: { /* pools: a run of planes */
		sl_pool2d_geom g = l->pg;
		const size_t HW = (size_t)S;
		const size_t OHW = (size_t)l->out.H * (size_t)l->out.W;

		split_range(planes, 1, t, nt, &lo, &hi);
		if (hi <= lo)
			break;
		g.N = hi - lo;
		if (j->op == SPLIT_MAXPOOL)
			sl_nn_maxpool2d_forward(j->out + lo * OHW, j->in + lo * HW,
			    &g);
		else if (j->op == SPLIT_AVGPOOL)
			sl_nn_avgpool2d_forward(j->out + lo * OHW, j->in + lo * HW,
			    &g);
		else if (j->op == SPLIT_MAXPOOL_BACK)
			sl_nn_maxpool2d_backward(j->out + lo * HW, j->d + lo * OHW,
			    j->in + lo * HW, &g);
		else
			sl_nn_avgpool2d_backward(j->out + lo * HW, j->d + lo * OHW,
			    &g);
		break;
	}
	}
}

/* Runs j on the workspace's threads, or here when the layer is small. */
static void
split_run(const sl_cnn_ws *ws, split_job *j)
{
	const size_t ni = (size_t)j->B * cnn_shape_size(&j->l->in);
	const int nt = ni < SPLIT_MIN_FLOATS ? 1 : ws->threads;

	if (nt <= 1)
		split_part(j, 0, 1);
	else
		sl_g_parallel(nt, split_part, j);
}

/* --- forward and backward ---------------------------------------------------------- */

static const float *
input_of(const sl_cnn_ws *ws, int i)
{
	return i == 0 ? ws->x : ws->act[i - 1];
}

const float *
sl_cnn_forward(sl_cnn *n, sl_cnn_ws *ws, const float *x, int B, int train,
    sl_rng *rng)
{
	ws->x = x;
	ws->train = train;
	for (int i = 0; i < n->nl; i++) {
		cnn_layer *l = &n->L[i];
		const float *in = input_of(ws, i);
		float *o = ws->own[i];
		const size_t no = (size_t)B * cnn_shape_size(&l->out);
		const int S = l->in.H * l->in.W;

		switch (l->kind) {
		case CNN_CONV: {
			sl_conv2d_geom g = l->cg;

			g.B = B;
			g.threads = ws->threads;
			sl_nn_conv2d_forward(o, in, n->params + l->w_off, l->bias ?
			    n->params + l->b_off : NULL, &g, ws->scratch);
			break;
		}
		case CNN_BN: {
			split_job j = { .op = train ? SPLIT_BN_TRAIN : SPLIT_BN_EVAL,
				.l = l, .B = B, .out = o, .in = in,
				.mean = ws->mean[i], .invstd = ws->invstd[i],
				.run_mean = n->bufs + l->rm_off,
				.run_var = n->bufs + l->rm_off + (size_t)l->in.C,
				.gamma = n->params + l->w_off,
				.beta = n->params + l->b_off };

			split_run(ws, &j);
			if (train)
				n->nbt[l->bn]++;
			break;
		}
		case CNN_RELU: {
			split_job j = { .op = SPLIT_RELU, .l = l, .B = B, .out = o,
				.in = in };

			split_run(ws, &j);
			break;
		}
		case CNN_MAXPOOL:
		case CNN_AVGPOOL: {
			split_job j = { .op = l->kind == CNN_MAXPOOL ? SPLIT_MAXPOOL :
				SPLIT_AVGPOOL, .l = l, .B = B, .out = o, .in = in };

			split_run(ws, &j);
			break;
		}
		case CNN_GAP:
			sl_nn_gap_forward(o, in, (size_t)B * (size_t)l->in.C,
			    (size_t)S);
			break;
		case CNN_LINEAR:
			sl_nn_dense_forward(o, in, n->params + l->w_off, l->bias ?
			    n->params + l->b_off : NULL, B, l->in.C, l->oc);
			break;
		case CNN_DROPOUT:
			if (!train || l->drop <= 0.0f || rng == NULL) {
				o = NULL;
				break;
			}
			memcpy(o, in, no * sizeof *o);
			sl_nn_dropout_forward(o, ws->mask[i], no, l->drop, rng);
			break;
		case CNN_RES_END:
			sl_nn_add_forward(o, in, input_of(ws, l->partner), no);
			break;
		default: /* flatten, res begin: the input itself */
			o = NULL;
			break;
		}
		ws->act[i] = o != NULL ? o : in;
	}
	return ws->act[n->nl - 1];
}

/* A conv layer's backward split by images over the workspace's threads:
 * part t takes images [B t / T, B (t+1) / T), writes their dx (disjoint)
 * and its own dW, db, which are then added in part order, so a run with
 * the same thread count is reproducible bit for bit. */
typedef struct conv_job {
	const cnn_layer *l;
	sl_cnn_ws *ws;
	float *dx;
	const float *d, *in, *w;
	int B;
} conv_job;

static void
conv_part(void *arg, int t, int nt)
{
	const conv_job *j = arg;
	const cnn_layer *l = j->l;
	const int b0 = j->B * t / nt, b1 = j->B * (t + 1) / nt;
	const size_t in_sz = cnn_shape_size(&l->in);
	const size_t out_sz = cnn_shape_size(&l->out);
	float *part = j->ws->part + (size_t)t * j->ws->part_floats;
	sl_conv2d_geom g = l->cg;

	memset(part, 0, (l->nw + l->nb) * sizeof *part);
	if (b1 <= b0)
		return;
	g.B = b1 - b0;
	sl_nn_conv2d_backward(j->dx ? j->dx + (size_t)b0 * in_sz : NULL, part,
	    l->bias ? part + l->nw : NULL, j->d + (size_t)b0 * out_sz,
	    j->in + (size_t)b0 * in_sz, j->w, &g,
	    j->ws->col + (size_t)t * j->ws->col_floats);
}

static void
conv_backward(const sl_cnn *n, sl_cnn_ws *ws, const cnn_layer *l,
    float *dx, const float *d, const float *in, int B, float *grads)
{
	const int nt = B < ws->threads ? B : ws->threads;
	conv_job j = { l, ws, dx, d, in, n->params + l->w_off, B };

	if (nt <= 1) {
		sl_conv2d_geom g = l->cg;

		g.B = B;
		sl_nn_conv2d_backward(dx, grads + l->w_off, l->bias ?
		    grads + l->b_off : NULL, d, in, n->params + l->w_off, &g,
		    ws->col);
		return;
	}
	sl_g_parallel(nt, conv_part, &j);
	for (int t = 0; t < nt; t++) {
		const float *part = ws->part + (size_t)t * ws->part_floats;

		for (size_t i = 0; i < l->nw + l->nb; i++)
			grads[l->w_off + i] += part[i];
	}
}

void
sl_cnn_backward(const sl_cnn *n, sl_cnn_ws *ws, const float *dlogits, int B,
    float *grads)
{
	const float *d = dlogits;
	int first = n->nl;

	memset(grads, 0, n->nparams * sizeof *grads);
	/* Below the first layer with parameters no gradient is needed. */
	for (int i = 0; i < n->nl; i++)
		if (n->L[i].nw > 0) {
			first = i;
			break;
		}
	for (int i = n->nl - 1; i >= first; i--) {
		const cnn_layer *l = &n->L[i];
		const float *in = input_of(ws, i);
		const size_t ni = (size_t)B * cnn_shape_size(&l->in);
		const int S = l->in.H * l->in.W;
		float *dst = d == ws->g[0] ? ws->g[1] : ws->g[0];
		float *dx = i > first ? dst : NULL;

		switch (l->kind) {
		case CNN_CONV:
			conv_backward(n, ws, l, dx, d, in, B, grads);
			break;
		case CNN_BN: {
			split_job j = { .op = SPLIT_BN_BACK, .l = l, .B = B, .out = dx,
				.in = in, .d = d, .mean = ws->mean[i],
				.invstd = ws->invstd[i], .gamma = n->params + l->w_off,
				.dgamma = grads + l->w_off, .dbeta = grads + l->b_off };

			split_run(ws, &j);
			break;
		}
		case CNN_LINEAR:
			sl_nn_dense_backward(dx, grads + l->w_off, l->bias ?
			    grads + l->b_off : NULL, d, in, n->params + l->w_off, B,
			    l->in.C, l->oc);
			break;
		case CNN_RELU:
			if (dx != NULL) {
				split_job j = { .op = SPLIT_RELU_BACK, .l = l, .B = B,
					.out = dx, .d = d, .act = ws->act[i] };

				split_run(ws, &j);
			}
			break;
		case CNN_MAXPOOL:
		case CNN_AVGPOOL:
			if (dx != NULL) {
				split_job j = { .op = l->kind == CNN_MAXPOOL ?
					SPLIT_MAXPOOL_BACK : SPLIT_AVGPOOL_BACK, .l = l,
					.B = B, .out = dx, .in = in, .d = d };

				split_run(ws, &j);
			}
			break;
		case CNN_GAP:
			if (dx != NULL)
				sl_nn_gap_backward(dx, d, (size_t)B * (size_t)l->in.C,
				    (size_t)S);
			break;
		case CNN_DROPOUT:
			if (ws->act[i] == in) { /* not applied */
				dx = NULL;
				break;
			}
			if (dx != NULL) {
				memcpy(dx, d, ni * sizeof *dx);
				sl_nn_dropout_backward(dx, ws->mask[i], ni);
			}
			break;
		case CNN_RES_END:
			/* The skip's share waits for the block's start. */
			memcpy(ws->skip[i], d, ni * sizeof *d);
			dx = NULL;
			break;
		case CNN_RES_BEGIN:
			if (dx != NULL)
				sl_nn_add_forward(dx, d, ws->skip[l->partner], ni);
			break;
		default: /* flatten: the same values */
			dx = NULL;
			break;
		}
		if (dx != NULL)
			d = dx;
	}
}
