/* cnn_impl.h - the insides of sl_cnn shared by its files (arch.c builds
 * the layer list, cnn.c runs it, cnn_io.c saves and loads it). Not for
 * programs: they use sl_cnn.h. */
#ifndef SL_CNN_IMPL_H
#define SL_CNN_IMPL_H

#include "sl_cnn.h"
#include "sl_layers.h"

enum cnn_kind {
	CNN_CONV = 1, CNN_BN, CNN_RELU, CNN_MAXPOOL, CNN_AVGPOOL, CNN_GAP,
	CNN_FLATTEN, CNN_LINEAR, CNN_DROPOUT,
	CNN_RES_BEGIN,          /* identity; its partner adds its input */
	CNN_RES_END,            /* out = in + input of the partner */
};

/* A row's shape: (C, H, W), or flat: C values (H = W = 1). */
typedef struct cnn_shape {
	int C, H, W, flat;
} cnn_shape;

typedef struct cnn_layer {
	int kind;               /* enum cnn_kind */
	cnn_shape in, out;
	int oc, k, s, p, g, bias; /* conv; pools use k, s, p; linear oc */
	float eps, momentum;    /* bn */
	float drop;             /* dropout */
	size_t w_off, b_off;    /* into params (b_off valid when bias) */
	size_t nw, nb;
	size_t rm_off;          /* bn: running_mean, then running_var */
	int bn;                 /* bn: its index among the bns */
	int partner;            /* res begin <-> end */
	char name[96];          /* module path: "3", "3.body.0" */
	char text[64];          /* the element as written (truncated) */
	sl_conv2d_geom cg;      /* conv, B unset */
	sl_pool2d_geom pg;      /* pools, N unset */
} cnn_layer;

struct sl_cnn {
	int nl;
	cnn_layer L[SL_CNN_MAX_LAYERS];
	cnn_shape in;
	int classes;
	size_t nparams, nbufs;
	float *params, *bufs;
	int nbn;
	int64_t nbt[SL_CNN_MAX_LAYERS];
	int has_dropout;
	char arch[SL_CNN_MAX_ARCH];
};

static inline size_t
cnn_shape_size(const cnn_shape *s)
{
	return (size_t)s->C * (size_t)s->H * (size_t)s->W;
}

/* arch.c: parse arch into n's layer list and sizes (n zeroed by the
 * caller, its blocks not yet allocated). */
int cnn_parse(sl_cnn *n, const char *arch, sl_errmsg *why);

#endif
