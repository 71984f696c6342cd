/* arch.c - the architecture text of sl_cnn.h: parsing, shape checking,
 * and the PyTorch module it stands for. */
#include "cnn_impl.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 8
#define MAX_CHANNELS 65536
#define MAX_WINDOW 4096

typedef struct parser {
	sl_cnn *n;
	const char *s;          /* next character */
	sl_errmsg *why;
} parser;

/* One element's arguments: positional integers or floats, then key=value. */
typedef struct args {
	int npos;
	char pos[MAX_ARGS][32];
	int nkw;
	char key[MAX_ARGS][16], val[MAX_ARGS][32];
} args;

static int bad(parser *p, const cnn_layer *l, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* SL_EINVAL with "element NAME 'TEXT': " and the reason. */
static int
bad(parser *p, const cnn_layer *l, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return sl_errmsg_set(p->why, SL_EINVAL, "element %s '%s': %s", l->name,
	    l->text, msg);
}

static void
shape_str(const cnn_shape *s, char *buf, size_t len)
{
	if (s->flat)
		snprintf(buf, len, "(%d)", s->C);
	else
		snprintf(buf, len, "%dx%dx%d", s->C, s->H, s->W);
}

static int
parse_int(const char *t, long lo, long hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(t, &end, 10);
	if (errno != 0 || end == t || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

static int
parse_float(const char *t, double lo, double hi, float *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(t, &end);
	if (errno != 0 || end == t || *end != '\0' || !(v >= lo && v <= hi))
		return -1;
	*out = (float)v;
	return 0;
}

/* Split "conv:16:3:p=1" (text, already cut at the element's end) into the
 * name and its arguments. */
static int
split(parser *p, cnn_layer *l, char *name, size_t nlen, args *a)
{
	char buf[sizeof l->text];
	char *save = NULL, *tok;
	int first = 1;

	memset(a, 0, sizeof *a);
	snprintf(buf, sizeof buf, "%s", l->text);
	for (tok = strtok_r(buf, ":", &save); tok != NULL;
	    tok = strtok_r(NULL, ":", &save), first = 0) {
		char *eq = strchr(tok, '=');

		if (first) {
			snprintf(name, nlen, "%s", tok);
			continue;
		}
		if (eq == NULL) {
			if (a->nkw > 0)
				return bad(p, l, "%s", "positional argument after "
				    "key=value");
			if (a->npos == MAX_ARGS || strlen(tok) >= 32)
				return bad(p, l, "%s", "too many or too long arguments");
			snprintf(a->pos[a->npos++], 32, "%s", tok);
		} else {
			*eq = '\0';
			if (a->nkw == MAX_ARGS || strlen(tok) >= 16 ||
			    strlen(eq + 1) >= 32)
				return bad(p, l, "%s", "too many or too long arguments");
			snprintf(a->key[a->nkw], 16, "%s", tok);
			snprintf(a->val[a->nkw++], 32, "%s", eq + 1);
		}
	}
	if (first)
		return bad(p, l, "%s", "empty element");
	return 0;
}

/* The value of key, or NULL; each key once, and only the allowed ones. */
static int
check_keys(parser *p, const cnn_layer *l, const args *a, const char *allowed)
{
	for (int i = 0; i < a->nkw; i++) {
		char want[24];

		snprintf(want, sizeof want, " %s ", a->key[i]);
		if (strstr(allowed, want) == NULL)
			return bad(p, l, "unknown argument '%s'", a->key[i]);
		for (int j = 0; j < i; j++)
			if (strcmp(a->key[i], a->key[j]) == 0)
				return bad(p, l, "argument '%s' given twice",
				    a->key[i]);
	}
	return 0;
}

static const char *
kw(const args *a, const char *key)
{
	for (int i = 0; i < a->nkw; i++)
		if (strcmp(a->key[i], key) == 0)
			return a->val[i];
	return NULL;
}

static int
int_arg(parser *p, const cnn_layer *l, const char *text, const char *what,
    long lo, long hi, int *out)
{
	char msg[96];

	if (parse_int(text, lo, hi, out) == 0)
		return 0;
	snprintf(msg, sizeof msg, "%s '%s' is not an integer in %ld..%ld",
	    what, text, lo, hi);
	return bad(p, l, "%s", msg);
}

static int
need_image(parser *p, const cnn_layer *l, const char *module)
{
	if (!l->in.flat)
		return 0;
	char msg[128];

	snprintf(msg, sizeof msg, "%s needs an image (C, H, W) input, it gets "
	    "%d flat values", module, l->in.C);
	return bad(p, l, "%s", msg);
}

/* out = floor((in + 2p - k) / s) + 1, or a clear refusal. */
static int
window(parser *p, const cnn_layer *l, int k, int s, int pad, int *oh,
    int *ow)
{
	char msg[128];

	if (k > l->in.H + 2 * pad || k > l->in.W + 2 * pad) {
		snprintf(msg, sizeof msg, "kernel %d larger than its padded "
		    "input %dx%d", k, l->in.H + 2 * pad, l->in.W + 2 * pad);
		return bad(p, l, "%s", msg);
	}
	*oh = (l->in.H + 2 * pad - k) / s + 1;
	*ow = (l->in.W + 2 * pad - k) / s + 1;
	return 0;
}

static int
element(parser *p, cnn_layer *l)
{
	sl_cnn *n = p->n;
	char name[32], msg[160];
	args a;
	int rc;

	if ((rc = split(p, l, name, sizeof name, &a)) != 0)
		return rc;
	l->out = l->in;
	if (strcmp(name, "conv") == 0) {
		int oh, ow;

		l->kind = CNN_CONV;
		if ((rc = need_image(p, l, "conv (nn.Conv2d)")) != 0 ||
		    (rc = check_keys(p, l, &a, " s p g bias ")) != 0)
			return rc;
		if (a.npos != 2)
			return bad(p, l, "%s", "expected conv:OUT_CHANNELS:KERNEL");
		l->s = 1, l->p = 0, l->g = 1, l->bias = 1;
		if ((rc = int_arg(p, l, a.pos[0], "out channels", 1, MAX_CHANNELS,
		    &l->oc)) != 0 || (rc = int_arg(p, l, a.pos[1], "kernel", 1,
		    MAX_WINDOW, &l->k)) != 0 ||
		    (kw(&a, "s") && (rc = int_arg(p, l, kw(&a, "s"), "stride", 1,
		    MAX_WINDOW, &l->s)) != 0) ||
		    (kw(&a, "p") && (rc = int_arg(p, l, kw(&a, "p"), "padding", 0,
		    MAX_WINDOW, &l->p)) != 0) ||
		    (kw(&a, "g") && (rc = int_arg(p, l, kw(&a, "g"), "groups", 1,
		    MAX_CHANNELS, &l->g)) != 0) ||
		    (kw(&a, "bias") && (rc = int_arg(p, l, kw(&a, "bias"), "bias",
		    0, 1, &l->bias)) != 0))
			return rc;
		if (l->in.C % l->g != 0 || l->oc % l->g != 0) {
			snprintf(msg, sizeof msg, "groups %d must divide the %d "
			    "input and %d output channels", l->g, l->in.C, l->oc);
			return bad(p, l, "%s", msg);
		}
		if ((rc = window(p, l, l->k, l->s, l->p, &oh, &ow)) != 0)
			return rc;
		l->out = (cnn_shape){ l->oc, oh, ow, 0 };
		l->nw = (size_t)l->oc * (size_t)(l->in.C / l->g) * (size_t)l->k *
		    (size_t)l->k;
		l->nb = l->bias ? (size_t)l->oc : 0;
		l->cg = (sl_conv2d_geom){ .C = l->in.C, .H = l->in.H,
			.W = l->in.W, .OC = l->oc, .G = l->g, .KH = l->k,
			.KW = l->k, .SH = l->s, .SW = l->s, .DH = 1, .DW = 1,
			.PT = l->p, .PL = l->p, .OH = oh, .OW = ow, .threads = 1 };
	} else if (strcmp(name, "bn") == 0) {
		l->kind = CNN_BN;
		if ((rc = need_image(p, l, "bn (nn.BatchNorm2d)")) != 0 ||
		    (rc = check_keys(p, l, &a, " eps momentum ")) != 0)
			return rc;
		if (a.npos != 0)
			return bad(p, l, "%s", "bn takes only eps= and momentum=");
		l->eps = 1e-5f, l->momentum = 0.1f;
		if (kw(&a, "eps") && parse_float(kw(&a, "eps"), 1e-12, 1.0,
		    &l->eps) != 0)
			return bad(p, l, "eps '%s' is not in 1e-12..1",
			    kw(&a, "eps"));
		if (kw(&a, "momentum") && parse_float(kw(&a, "momentum"), 0.0,
		    1.0, &l->momentum) != 0)
			return bad(p, l, "momentum '%s' is not in 0..1",
			    kw(&a, "momentum"));
		l->nw = l->nb = (size_t)l->in.C;
		l->bias = 1;
		l->bn = n->nbn++;
		l->rm_off = n->nbufs;
		n->nbufs += 2 * (size_t)l->in.C;
	} else if (strcmp(name, "maxpool") == 0 || strcmp(name, "avgpool") == 0) {
		int oh, ow;

		l->kind = name[0] == 'm' ? CNN_MAXPOOL : CNN_AVGPOOL;
		if ((rc = need_image(p, l, l->kind == CNN_MAXPOOL ?
		    "maxpool (nn.MaxPool2d)" : "avgpool (nn.AvgPool2d)")) != 0 ||
		    (rc = check_keys(p, l, &a, " s p ")) != 0)
			return rc;
		if (a.npos != 1)
			return bad(p, l, "%s", "expected maxpool:KERNEL or "
			    "avgpool:KERNEL");
		if ((rc = int_arg(p, l, a.pos[0], "kernel", 1, MAX_WINDOW,
		    &l->k)) != 0)
			return rc;
		l->s = l->k, l->p = 0;
		if ((kw(&a, "s") && (rc = int_arg(p, l, kw(&a, "s"), "stride", 1,
		    MAX_WINDOW, &l->s)) != 0) ||
		    (kw(&a, "p") && (rc = int_arg(p, l, kw(&a, "p"), "padding", 0,
		    MAX_WINDOW, &l->p)) != 0))
			return rc;
		if (2 * l->p > l->k) {
			snprintf(msg, sizeof msg, "padding %d over half the kernel "
			    "%d (PyTorch refuses it)", l->p, l->k);
			return bad(p, l, "%s", msg);
		}
		if ((rc = window(p, l, l->k, l->s, l->p, &oh, &ow)) != 0)
			return rc;
		l->out = (cnn_shape){ l->in.C, oh, ow, 0 };
		l->pg = (sl_pool2d_geom){ .D = 1, .KD = 1, .SD = 1, .DD = 1,
			.OD = 1, .H = l->in.H, .W = l->in.W, .KH = l->k,
			.KW = l->k, .SH = l->s, .SW = l->s, .DH = 1, .DW = 1,
			.PT = l->p, .PL = l->p, .PB = l->p, .PR = l->p, .OH = oh,
			.OW = ow };
	} else if (strcmp(name, "gap") == 0 || strcmp(name, "relu") == 0 ||
	    strcmp(name, "flatten") == 0) {
		if (a.npos != 0 || a.nkw != 0)
			return bad(p, l, "%s", "takes no arguments");
		if (name[0] == 'g') {
			l->kind = CNN_GAP;
			if ((rc = need_image(p, l, "gap (nn.AdaptiveAvgPool2d(1))"))
			    != 0)
				return rc;
			l->out = (cnn_shape){ l->in.C, 1, 1, 0 };
		} else if (name[0] == 'r') {
			l->kind = CNN_RELU;
		} else {
			l->kind = CNN_FLATTEN;
			l->out = (cnn_shape){ (int)cnn_shape_size(&l->in), 1, 1, 1 };
		}
	} else if (strcmp(name, "linear") == 0) {
		l->kind = CNN_LINEAR;
		if ((rc = check_keys(p, l, &a, " bias ")) != 0)
			return rc;
		if (!l->in.flat) {
			char s[64];

			shape_str(&l->in, s, sizeof s);
			snprintf(msg, sizeof msg, "linear (nn.Linear) needs a flat "
			    "input, it gets %s: put flatten before it", s);
			return bad(p, l, "%s", msg);
		}
		if (a.npos != 1)
			return bad(p, l, "%s", "expected linear:OUT_FEATURES");
		l->bias = 1;
		if ((rc = int_arg(p, l, a.pos[0], "out features", 1, 1 << 20,
		    &l->oc)) != 0 || (kw(&a, "bias") && (rc = int_arg(p, l,
		    kw(&a, "bias"), "bias", 0, 1, &l->bias)) != 0))
			return rc;
		l->out = (cnn_shape){ l->oc, 1, 1, 1 };
		l->nw = (size_t)l->oc * (size_t)l->in.C;
		l->nb = l->bias ? (size_t)l->oc : 0;
	} else if (strcmp(name, "dropout") == 0) {
		l->kind = CNN_DROPOUT;
		if (a.npos != 1 || a.nkw != 0)
			return bad(p, l, "%s", "expected dropout:P");
		if (parse_float(a.pos[0], 0.0, 0.95, &l->drop) != 0)
			return bad(p, l, "probability '%s' is not in 0..0.95",
			    a.pos[0]);
		n->has_dropout = 1;
	} else {
		return bad(p, l, "unknown element '%s' (conv, bn, relu, maxpool, "
		    "avgpool, gap, flatten, linear, dropout, res(...))", name);
	}
	if (cnn_shape_size(&l->out) > SL_CNN_MAX_ACT)
		return bad(p, l, "%s", "output too large");
	if (l->nw > 0) {
		l->w_off = n->nparams;
		l->b_off = n->nparams + l->nw;
		n->nparams += l->nw + l->nb;
		if (n->nparams > SL_CNN_MAX_PARAMS)
			return bad(p, l, "%s", "too many parameters");
	}
	return 0;
}

static cnn_layer *
add_layer(parser *p, const char *prefix, int j, const char *text, size_t len,
    const cnn_shape *in)
{
	sl_cnn *n = p->n;
	cnn_layer *l;

	if (n->nl == SL_CNN_MAX_LAYERS) {
		sl_errmsg_set(p->why, SL_EINVAL, "more than %d elements",
		    SL_CNN_MAX_LAYERS);
		return NULL;
	}
	l = &n->L[n->nl++];
	memset(l, 0, sizeof *l);
	l->in = *in;
	l->partner = -1;
	if (prefix[0] != '\0')
		snprintf(l->name, sizeof l->name, "%s.%d", prefix, j);
	else
		snprintf(l->name, sizeof l->name, "%d", j);
	if (len >= sizeof l->text)
		len = sizeof l->text - 1;
	memcpy(l->text, text, len);
	l->text[len] = '\0';
	return l;
}

/* Elements up to `close` (')' in a res body, '\0' at the top), with
 * module names under prefix; *shape is the input, then the output. */
static int
parse_seq(parser *p, const char *prefix, int depth, char close,
    cnn_shape *shape)
{
	int rc;

	for (int j = 0;; j++) {
		const char *start = p->s;
		size_t len = 0;
		cnn_layer *l;

		while (isalpha((unsigned char)p->s[len]))
			len++;
		if (len == 3 && memcmp(start, "res", 3) == 0 && p->s[3] == '(') {
			const int begin = p->n->nl;
			char body[96];
			cnn_shape in = *shape;

			if ((l = add_layer(p, prefix, j, start, 4, shape)) == NULL)
				return SL_EINVAL;
			l->kind = CNN_RES_BEGIN;
			l->out = *shape;
			if (depth + 1 > SL_CNN_MAX_DEPTH)
				return sl_errmsg_set(p->why, SL_EINVAL, "element %s: "
				    "res(...) nested deeper than %d", l->name,
				    SL_CNN_MAX_DEPTH);
			snprintf(body, sizeof body, "%.*s.body", (int)sizeof body - 6,
			    l->name);
			p->s += 4;
			if (*p->s == ')')
				return sl_errmsg_set(p->why, SL_EINVAL, "element %s: "
				    "res() has an empty body", p->n->L[begin].name);
			if ((rc = parse_seq(p, body, depth + 1, ')', shape)) != 0)
				return rc;
			p->s++; /* ')' */
			if ((l = add_layer(p, prefix, j, "res", 3, shape)) == NULL)
				return SL_EINVAL;
			l->kind = CNN_RES_END;
			snprintf(l->name, sizeof l->name, "%s", p->n->L[begin].name);
			l->partner = begin;
			p->n->L[begin].partner = p->n->nl - 1;
			if (shape->C != in.C || shape->H != in.H || shape->W != in.W ||
			    shape->flat != in.flat) {
				char a[64], b[64];

				shape_str(&in, a, sizeof a);
				shape_str(shape, b, sizeof b);
				return sl_errmsg_set(p->why, SL_EINVAL, "element %s "
				    "'res(...)': its body gives %s from %s, and x + "
				    "body(x) needs the same shape", l->name, b, a);
			}
			l->out = *shape;
		} else {
			while (p->s[len] != '\0' && p->s[len] != ',' &&
			    p->s[len] != ')' && p->s[len] != '(')
				len++;
			if ((l = add_layer(p, prefix, j, start, len, shape)) == NULL)
				return SL_EINVAL;
			if (len == 0)
				return sl_errmsg_set(p->why, SL_EINVAL, "element %s: "
				    "empty (two commas, or a comma at an end?)",
				    l->name);
			if (p->s[len] == '(')
				return sl_errmsg_set(p->why, SL_EINVAL, "element %s "
				    "'%.*s(': only res takes a body in parentheses",
				    l->name, (int)len, start);
			p->s += len;
			if ((rc = element(p, l)) != 0)
				return rc;
			*shape = l->out;
		}
		if (*p->s == ',') {
			p->s++;
			continue;
		}
		if (*p->s == close)
			return 0;
		if (*p->s == ')')
			return sl_errmsg_set(p->why, SL_EINVAL, "unbalanced ')' "
			    "after element %s", p->n->L[p->n->nl - 1].name);
		if (*p->s == '\0')
			return sl_errmsg_set(p->why, SL_EINVAL, "element %s: res( "
			    "is not closed by ')'", prefix);
		return sl_errmsg_set(p->why, SL_EINVAL, "unexpected '%c' after "
		    "element %s (elements are separated by ',')", *p->s,
		    p->n->L[p->n->nl - 1].name);
	}
}

int
cnn_parse(sl_cnn *n, const char *arch, sl_errmsg *why)
{
	parser p = { n, arch, why };
	cnn_shape shape = n->in;
	int rc;

	if (strlen(arch) >= SL_CNN_MAX_ARCH)
		return sl_errmsg_set(why, SL_EINVAL, "longer than %d bytes",
		    SL_CNN_MAX_ARCH - 1);
	snprintf(n->arch, sizeof n->arch, "%s", arch);
	if ((rc = parse_seq(&p, "", 0, '\0', &shape)) != 0)
		return rc;
	if (!shape.flat) {
		char s[64];

		shape_str(&shape, s, sizeof s);
		return sl_errmsg_set(why, SL_EINVAL, "the last element gives %s: "
		    "end with flatten and linear:CLASSES (or gap, flatten, ...)",
		    s);
	}
	if (n->nparams == 0)
		return sl_errmsg_set(why, SL_EINVAL, "no element with "
		    "parameters (conv, bn or linear)");
	n->classes = shape.C;
	return 0;
}

int
sl_cnn_is_arch(const char *s)
{
	return isalpha((unsigned char)s[0]);
}

/* --- the PyTorch module ------------------------------------------------------ */

static void
indent(FILE *out, int depth)
{
	for (int i = 0; i < depth; i++)
		fputs("    ", out);
}

/* The shortest decimal that reads back as f: 1e-05, not 9.99999975e-06. */
static const char *
shortest(float f, char buf[32])
{
	for (int prec = 1; prec <= 9; prec++) {
		snprintf(buf, 32, "%.*g", prec, (double)f);
		if (strtof(buf, NULL) == f)
			break;
	}
	return buf;
}

static void
module(const cnn_layer *l, FILE *out)
{
	char a[32], b[32];

	switch (l->kind) {
	case CNN_CONV:
		fprintf(out, "nn.Conv2d(%d, %d, %d, stride=%d, padding=%d, "
		    "groups=%d, bias=%s)", l->in.C, l->oc, l->k, l->s, l->p, l->g,
		    l->bias ? "True" : "False");
		break;
	case CNN_BN:
		fprintf(out, "nn.BatchNorm2d(%d, eps=%s, momentum=%s)", l->in.C,
		    shortest(l->eps, a), shortest(l->momentum, b));
		break;
	case CNN_RELU:
		fputs("nn.ReLU()", out);
		break;
	case CNN_MAXPOOL:
	case CNN_AVGPOOL:
		fprintf(out, "nn.%s(%d, stride=%d, padding=%d)", l->kind ==
		    CNN_MAXPOOL ? "MaxPool2d" : "AvgPool2d", l->k, l->s, l->p);
		break;
	case CNN_GAP:
		fputs("nn.AdaptiveAvgPool2d(1)", out);
		break;
	case CNN_FLATTEN:
		fputs("nn.Flatten()", out);
		break;
	case CNN_LINEAR:
		fprintf(out, "nn.Linear(%d, %d, bias=%s)", l->in.C, l->oc,
		    l->bias ? "True" : "False");
		break;
	case CNN_DROPOUT:
		fprintf(out, "nn.Dropout(%s)", shortest(l->drop, a));
		break;
	default:
		break;
	}
}

void
sl_cnn_format_torch(const sl_cnn *n, FILE *out)
{
	int depth = 1, has_res = 0;

	for (int i = 0; i < n->nl; i++)
		has_res |= n->L[i].kind == CNN_RES_BEGIN;
	fputs("import torch.nn as nn\n\n", out);
	if (has_res)
		fputs("class Residual(nn.Module):\n"
		    "    \"\"\"x + body(x): softlabel's res(...).\"\"\"\n"
		    "    def __init__(self, *body):\n"
		    "        super().__init__()\n"
		    "        self.body = nn.Sequential(*body)\n\n"
		    "    def forward(self, x):\n"
		    "        return x + self.body(x)\n\n", out);
	fprintf(out, "# input (N, %d, %d, %d), %d classes\n", n->in.C, n->in.H,
	    n->in.W, n->classes);
	fputs("model = nn.Sequential(\n", out);
	for (int i = 0; i < n->nl; i++) {
		const cnn_layer *l = &n->L[i];

		if (l->kind == CNN_RES_END) {
			depth--;
			indent(out, depth);
			fputs("),\n", out);
			continue;
		}
		indent(out, depth);
		if (l->kind == CNN_RES_BEGIN) {
			fputs("Residual(\n", out);
			depth++;
			continue;
		}
		module(l, out);
		fputs(",\n", out);
	}
	fputs(")\n", out);
}
