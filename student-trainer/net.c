/* net.c - the student's network, an MLP or a CNN, behind the net_*
 * functions the training loop calls; --onnx-out conversion and
 * --print-torch. */
#include "run.h"
#include "sl_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
net_classes(const run *r)
{
	return r->cnn != NULL ? sl_cnn_classes(r->cnn) :
	    r->m->sizes[r->m->nlayers];
}

size_t
net_nparams(const run *r)
{
	return r->cnn != NULL ? sl_cnn_nparams(r->cnn) : r->m->nparams;
}

float *
net_params(run *r)
{
	return r->cnn != NULL ? sl_cnn_params(r->cnn) : r->m->params;
}

size_t
net_dim(const run *r)
{
	return r->cnn != NULL ? sl_cnn_input_dim(r->cnn) :
	    (size_t)r->m->sizes[0];
}

/* Logits of B rows of x; train: dropout (and BatchNorm's batch
 * statistics) on. Valid until the next forward. */
const float *
net_forward(run *r, const float *x, int B, int train)
{
	if (r->cnn != NULL)
		return sl_cnn_forward(r->cnn, r->cws, x, B, train, &r->rng);
	return sl_mlp_forward(r->m, r->ws, x, B, train ? r->cfg->dropout : 0.0f,
	    train ? &r->rng : NULL);
}

void
net_backward(run *r, const float *dz, int B)
{
	if (r->cnn != NULL)
		sl_cnn_backward(r->cnn, r->cws, dz, B, r->grads);
	else
		sl_mlp_backward(r->m, r->ws, dz, B, r->grads);
}

ckpt_net
net_ckpt(run *r)
{
	ckpt_net n;

	if (r->cnn == NULL)
		return ckpt_net_of_mlp(r->m);
	n.nlayers = sl_cnn_nlayers(r->cnn);
	n.sizes = r->csizes;
	n.params = sl_cnn_params(r->cnn);
	n.nparams = sl_cnn_nparams(r->cnn);
	n.bufs = sl_cnn_bufs(r->cnn);
	n.nbufs = sl_cnn_nbufs(r->cnn);
	n.counts = sl_cnn_batches_tracked(r->cnn);
	n.ncounts = (size_t)sl_cnn_nbn(r->cnn);
	return n;
}

/* The CNN --arch describes for the rows of ds: [H, W] rows are one
 * channel, [C, H, W] rows C channels, [D] rows D flat values. */
int
open_cnn(run *r, const char *arch)
{
	uint64_t shape[SL_DATA_MAX_DIMS];
	const uint32_t nd = sl_dataset_shape(r->ds, shape);
	sl_errmsg why = { "" };
	int C, H = 1, W = 1, flat = 0, rc;

	if (nd == 3) {
		C = 1, H = (int)shape[1], W = (int)shape[2];
	} else if (nd == 4) {
		C = (int)shape[1], H = (int)shape[2], W = (int)shape[3];
	} else if (nd == 2) {
		C = (int)shape[1], flat = 1;
	} else {
		sl_error("%s: rows of rank %u: a convolutional --arch takes [H, W], "
		    "[C, H, W] or flat rows", r->cfg->dataset, nd - 1);
		return SL_EINVAL;
	}
	if ((rc = sl_cnn_new(arch, C, H, W, flat, &r->cnn, &why)) != 0) {
		sl_error("--arch: %s", why.text);
		return rc;
	}
	for (int l = -1; l < sl_cnn_nlayers(r->cnn); l++)
		r->csizes[l + 1] = (int)sl_cnn_layer_size(r->cnn, l);
	return 0;
}


int
train_convert_onnx(const char *model, const char *onnx_out)
{
	sl_errmsg why = { "" };
	sl_model_info info;
	sl_cnn *n = NULL;
	int rc = sl_cnn_load(model, &n, &info, &why);

	if (rc != 0) {
		sl_error("%s: %s", model, why.text[0] ? why.text : sl_strerror(rc));
		return TRAIN_FAILED;
	}
	if (!info.has_preproc)
		info.pre = sl_preproc_default(SL_DTYPE_U8);
	rc = sl_cnn_save_onnx(onnx_out, n, &info.pre, &why);
	if (rc != 0)
		sl_error("%s: %s", onnx_out, why.text);
	else
		sl_info("wrote %s (ONNX) from %s", onnx_out, model);
	sl_cnn_free(&n);
	return rc == 0 ? TRAIN_OK : TRAIN_FAILED;
}

int
train_print_torch(const train_cfg *c)
{
	run r;
	int rc, sizes[SL_MLP_MAX_LAYERS + 1], nl;

	memset(&r, 0, sizeof r);
	r.cfg = c;
	if (!sl_cnn_is_arch(c->arch)) {
		if (sl_mlp_parse_arch(c->arch, sizes, &nl) != 0) {
			sl_error("--arch: '%s' is not a layer list like 784-128-10",
			    c->arch);
			return TRAIN_USAGE;
		}
		printf("import torch.nn as nn\n\n# input (N, %d), %d classes\n"
		    "model = nn.Sequential(\n", sizes[0], sizes[nl]);
		for (int l = 0; l < nl; l++)
			printf("    nn.Linear(%d, %d),\n%s", sizes[l], sizes[l + 1],
			    l + 1 < nl ? "    nn.ReLU(),\n" : "");
		printf(")\n");
		return TRAIN_OK;
	}
	if (c->dataset == NULL) {
		sl_error("--print-torch with a convolutional --arch needs "
		    "--dataset: the input shape comes from its rows");
		return TRAIN_USAGE;
	}
	if ((rc = open_data(c->dataset, &r.ds)) != 0 ||
	    (rc = open_cnn(&r, c->arch)) != 0) {
		rc = rc == SL_EINVAL ? TRAIN_USAGE : TRAIN_FAILED;
	} else {
		sl_cnn_format_torch(r.cnn, stdout);
		rc = fflush(stdout) == 0 ? TRAIN_OK : TRAIN_FAILED;
	}
	sl_cnn_free(&r.cnn);
	sl_dataset_close(&r.ds);
	return rc;
}
