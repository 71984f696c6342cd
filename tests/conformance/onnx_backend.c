/* onnx_backend.c - ONNX's own backend test cases through the graph engine.
 *
 *   onnx_backend [-v] [--no-fork] [--all-dtypes] [-d DATA_DIR] [FILTER...]
 *
 * Walks DATA_DIR/{node,pytorch-converted,pytorch-operator,simple,real}
 * (default /usr/share/libonnx-testdata/data, Debian's libonnx-testdata:
 * ONNX 1.12's backend test data). A case is a directory holding model.onnx
 * and test_data_set_N/ directories of input_K.pb and output_K.pb, each one
 * serialized TensorProto. With FILTER arguments only cases whose
 * "kind/name" contains one of them are looked at.
 *
 * Which cases run. A case runs when all of these hold; otherwise it is
 * "not run", counted under the first reason that applies, in this order:
 *   1. model.onnx is there (real/ only has data.json: ONNX's runner
 *      downloads those models, and nothing is downloaded here);
 *   2. the model imports the default-domain opset, in [SL_ONNX_MIN_OPSET,
 *      SL_ONNX_MAX_OPSET] (the ai.onnx.preview.training cases import only
 *      their own domain);
 *   3. every node is in the default domain and its op is in the op table
 *      (sl_g_op_find) or is Constant (which the loader turns into a
 *      constant tensor itself);
 *   4. every graph input (initializers excepted) and every graph output is
 *      a tensor of float32, int64 or bool;
 *   5. at least one graph input or output is float32 (the issue's
 *      "float32 case": a float model, possibly with int64 shape inputs or
 *      an int64/bool result such as Shape, ArgMax or Equal); --all-dtypes
 *      drops this rule and runs the int64- and bool-only cases too;
 *   6. sl_onnx_parse does not refuse the model with SL_EUNSUPPORTED: an
 *      op may refuse an attribute value or mode on purpose (its init
 *      returns SL_EUNSUPPORTED naming it);
 *   7. sl_g_plan does not refuse it with SL_EUNSUPPORTED: what depends on
 *      the inputs' shapes or values can only be refused there (Dropout
 *      with training_mode bound to true, 3-D pooling of a 5-D input, Range
 *      over float inputs). Parsing and planning are both the load
 *      (sl_graph_load does the two before anything runs), so both are a
 *      refusal by the engine, not a failure.
 * 6 and 7 are the only deviations, and each such case is printed with the
 * engine's message so that it stays visible; there is no list of known
 * failures here. Any other error, and anything at run time, is a failure.
 * Reasons 2 and 3 are the loader's to enforce too: a model the list above
 * puts out for its opset or an op must be refused by sl_onnx_parse with
 * SL_EUNSUPPORTED, and the case fails if it is not.
 *
 * How a case runs, per data set: parse model.onnx; input_K.pb binds graph
 * input K (the model's K-th graph.input, by name, as ONNX's runner does):
 * its dtype and dims, and for int64/bool inputs their values before
 * sl_g_plan (shapes may depend on them); plan with max_batch = the first
 * dimension of the first input (1 for a scalar); point float inputs at
 * their values; sl_g_run; then every graph output K against output_K.pb.
 *
 * Comparison: ONNX's runner (onnx/backend/test/runner/__init__.py,
 * assert_similar_outputs) requires as many outputs as reference files, the
 * same dtype, and np.testing.assert_allclose(actual, expected, rtol, atol)
 * with rtol = 1e-3, atol = 1e-7 unless the case's data.json says otherwise
 * (loader/__init__.py). So: shapes equal exactly; for floats
 * |actual - expected| <= atol + rtol * |expected|, NaN equals NaN, an
 * infinity only equals itself; int64 and bool exactly.
 *
 * Each case runs in a child process (unless --no-fork), so a crash or a
 * hang (CASE_TIMEOUT_S) in one kernel fails that case and the rest still
 * run. Output: one line per failing case (with -v, one per case), then
 *
 *   N of M cases passed, K not run (unsupported: op, op, ...)
 *
 * where M counts the cases that ran (N passed, M - N failed), K those that
 * did not, and the list every op we lack in any case looked at, whichever
 * reason put that case out; then the not-run reasons broken down and the
 * number of cases using each op we lack. Exit status:
 * 1 if any case failed, 0 otherwise, 2 for bad usage or an unreadable
 * DATA_DIR.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "graph.h"
#include "onnx.h"
#include "onnx.pb-c.h"
#include "sl_file.h"

#define DEFAULT_DATA_DIR "/usr/share/libonnx-testdata/data"
#define CASE_TIMEOUT_S 30
#define MAX_FILE_BYTES ((size_t)256 << 20)
#define MSG_MAX 1024
#define MAX_OPS 512

static const char *const kinds[] = {
	"node", "pytorch-converted", "pytorch-operator", "simple", "real",
};

enum verdict {
	V_PASS,
	V_FAIL,
	V_NR_NO_MODEL,   /* 1 */
	V_NR_OPSET,      /* 2 */
	V_NR_OPS,        /* 3 */
	V_NR_DTYPE,      /* 4 */
	V_NR_NO_FLOAT,   /* 5 */
	V_NR_LOADER,     /* 6 */
	V_NR_PLAN,       /* 7 */
	V_STAGE,         /* a child's progress record, not a verdict */
	V_COUNT
};

static const char *const nr_text[V_COUNT] = {
	[V_NR_NO_MODEL] = "model not shipped (real/: ONNX's runner downloads it)",
	[V_NR_OPSET] = "no default-domain opset, or one outside",
	[V_NR_OPS] = "an op we lack",
	[V_NR_DTYPE] = "an input or output not float32, int64 or bool",
	[V_NR_NO_FLOAT] = "no float32 input or output",
	[V_NR_LOADER] = "refused by sl_onnx_parse (SL_EUNSUPPORTED; listed above)",
	[V_NR_PLAN] = "refused by sl_g_plan (SL_EUNSUPPORTED; listed above)",
};

/* What a child sends back through its pipe; the last record wins. */
typedef struct record {
	int verdict;
	char msg[MSG_MAX];
} record;

/* Ops we lack, over every case that has a model: name and case count. */
static struct {
	char name[96];
	int cases;
} missing[MAX_OPS];
static int nmissing;

/* Element types that put a case out (reason 4), with case counts. */
static int dtype_cases[32];

static int verbose;
static int all_dtypes; /* run cases without a float32 input or output */

static void msgf(record *r, int verdict, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
msgf(record *r, int verdict, const char *fmt, ...)
{
	va_list ap;

	r->verdict = verdict;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof r->msg, fmt, ap);
	va_end(ap);
}

/* snprintf into a path buffer; a path that does not fit is cut short and
 * then simply not found. */
static void pathf(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
pathf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static const char *
onnx_dtype_name(int t)
{
	static const char *const names[] = {
		"undefined", "float32", "uint8", "int8", "uint16", "int16",
		"int32", "int64", "string", "bool", "float16", "double",
		"uint32", "uint64", "complex64", "complex128", "bfloat16",
	};

	return t >= 0 && t < (int)(sizeof names / sizeof names[0]) ?
	    names[t] : "unknown";
}

static void
note_missing(const char *name)
{
	for (int i = 0; i < nmissing; i++)
		if (strcmp(missing[i].name, name) == 0) {
			missing[i].cases++;
			return;
		}
	if (nmissing < MAX_OPS) {
		snprintf(missing[nmissing].name, sizeof missing[nmissing].name,
		    "%s", name);
		missing[nmissing++].cases = 1;
	}
}

static int
is_initializer(const Onnx__GraphProto *gp, const char *name)
{
	for (size_t i = 0; i < gp->n_initializer; i++)
		if (gp->initializer[i]->name != NULL &&
		    strcmp(gp->initializer[i]->name, name) == 0)
			return 1;
	return 0;
}

/* The element type of a graph input or output, -1 if it is not a tensor
 * (a sequence, a map, an optional) or is untyped. */
static int
value_dtype(const Onnx__ValueInfoProto *vi)
{
	if (vi->type == NULL ||
	    vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
	    vi->type->tensor_type == NULL ||
	    !vi->type->tensor_type->has_elem_type)
		return -1;
	return vi->type->tensor_type->elem_type;
}

/* Reasons 2 to 5 of the top comment, from the model itself. Records every
 * op we lack in missing[] (once per case); returns the first reason that
 * applies or V_PASS, with a message in r. */
static int
prescan(const Onnx__ModelProto *m, record *r)
{
	const Onnx__GraphProto *gp = m->graph;
	char seen[MAX_OPS][96];
	int nseen = 0, verdict = V_PASS, has_float = 0, bad_dtype = -2;
	int64_t opset = -1;

	for (size_t i = 0; i < m->n_opset_import; i++) {
		const Onnx__OperatorSetIdProto *o = m->opset_import[i];

		if (o->domain == NULL || o->domain[0] == '\0' ||
		    strcmp(o->domain, "ai.onnx") == 0)
			opset = o->has_version ? o->version : -1;
	}
	if (gp == NULL) {
		msgf(r, V_FAIL, "the model has no graph");
		return V_FAIL;
	}
	if (opset < 0) {
		msgf(r, V_NR_OPSET, "no default-domain opset imported");
		verdict = V_NR_OPSET;
	} else if (opset < SL_ONNX_MIN_OPSET || opset > SL_ONNX_MAX_OPSET) {
		msgf(r, V_NR_OPSET, "opset %lld, outside [%d, %d]",
		    (long long)opset, SL_ONNX_MIN_OPSET, SL_ONNX_MAX_OPSET);
		verdict = V_NR_OPSET;
	}
	for (size_t k = 0; k < gp->n_node; k++) {
		const Onnx__NodeProto *np = gp->node[k];
		const char *dom = np->domain != NULL ? np->domain : "";
		const char *op = np->op_type != NULL ? np->op_type : "";
		char name[96];
		int dup = 0;

		if (dom[0] == '\0' || strcmp(dom, "ai.onnx") == 0) {
			if (sl_g_op_find(op) != NULL ||
			    strcmp(op, "Constant") == 0)
				continue;
			snprintf(name, sizeof name, "%s", op);
		} else {
			snprintf(name, sizeof name, "%s:%s", dom, op);
		}
		for (int i = 0; i < nseen && !dup; i++)
			dup = strcmp(seen[i], name) == 0;
		if (dup || nseen == MAX_OPS)
			continue;
		memcpy(seen[nseen++], name, sizeof name);
		note_missing(name);
		if (verdict == V_PASS) {
			msgf(r, V_NR_OPS, "op %s", name);
			verdict = V_NR_OPS;
		}
	}
	for (size_t i = 0; i < gp->n_input + gp->n_output; i++) {
		const Onnx__ValueInfoProto *vi = i < gp->n_input ? gp->input[i] :
		    gp->output[i - gp->n_input];
		int dt;

		if (i < gp->n_input && vi->name != NULL &&
		    is_initializer(gp, vi->name))
			continue;
		dt = value_dtype(vi);
		if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
			has_float = 1;
		else if (dt != ONNX__TENSOR_PROTO__DATA_TYPE__INT64 &&
		    dt != ONNX__TENSOR_PROTO__DATA_TYPE__BOOL && bad_dtype == -2) {
			bad_dtype = dt;
			if (verdict == V_PASS)
				msgf(r, V_NR_DTYPE, "%s '%s' is %s", i < gp->n_input ?
				    "input" : "output", vi->name ? vi->name : "",
				    dt < 0 ? "not a typed tensor" :
				    onnx_dtype_name(dt));
		}
	}
	if (verdict == V_PASS && bad_dtype != -2) {
		dtype_cases[bad_dtype >= 0 && bad_dtype < 31 ? bad_dtype : 31]++;
		return V_NR_DTYPE;
	}
	if (verdict == V_PASS && !has_float && !all_dtypes) {
		msgf(r, V_NR_NO_FLOAT, "no float32 input or output");
		return V_NR_NO_FLOAT;
	}
	return verdict;
}

/* --- one case, in the child ---------------------------------------------- */

static int out_fd = -1;

/* Progress, so a crash names where it happened. */
static void stage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
stage(const char *fmt, ...)
{
	record r;
	va_list ap;

	if (out_fd < 0)
		return;
	memset(&r, 0, sizeof r);
	r.verdict = V_STAGE;
	va_start(ap, fmt);
	vsnprintf(r.msg, sizeof r.msg, fmt, ap);
	va_end(ap);
	if (write(out_fd, &r, sizeof r) != (ssize_t)sizeof r)
		_exit(3);
}

typedef struct pbtensor {
	int dtype, rank;
	int64_t dims[SL_G_MAX_RANK];
	void *data;
} pbtensor;

/* 1 when path exists, 0 when it does not, else a failure in r. */
static int
read_pb(const char *path, pbtensor *t, record *r)
{
	sl_errmsg why = { "" };
	void *buf;
	size_t len;
	int rc;

	if (access(path, F_OK) != 0)
		return 0;
	if ((rc = sl_file_read(path, MAX_FILE_BYTES, &buf, &len, &why)) != 0) {
		msgf(r, V_FAIL, "%s: %s", path, why.text);
		return -1;
	}
	rc = sl_onnx_tensor_decode(buf, len, &t->dtype, &t->rank, t->dims,
	    &t->data, &why);
	free(buf);
	if (rc != 0) {
		msgf(r, V_FAIL, "%s: sl_onnx_tensor_decode: %s (%s)", path,
		    why.text, sl_strerror(rc));
		return -1;
	}
	return 1;
}

static const char *
dims_str(int rank, const int64_t *dims, char *buf, size_t len)
{
	size_t off = (size_t)snprintf(buf, len, "[");

	for (int i = 0; i < rank && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%lld",
		    i ? ", " : "", (long long)dims[i]);
	if (off < len)
		snprintf(buf + off, len - off, "]");
	return buf;
}

static double
value_at(int dtype, const void *p, size_t i)
{
	switch (dtype) {
	case SL_G_F32: return (double)((const float *)p)[i];
	case SL_G_I64: return (double)((const int64_t *)p)[i];
	default: return (double)((const uint8_t *)p)[i];
	}
}

/* assert_allclose(actual, expected, rtol, atol), equal_nan. */
static int
close_enough(double a, double e, double rtol, double atol)
{
	if (isnan(a) || isnan(e))
		return isnan(a) && isnan(e);
	if (isinf(a) || isinf(e))
		return a == e;
	return fabs(a - e) <= atol + rtol * fabs(e);
}

/* Output `name` (graph output k) against the reference; 0 or a failure. */
static int
compare(const sl_gtensor *t, int k, const pbtensor *ref, double rtol,
    double atol, record *r)
{
	char s1[128], s2[128];
	size_t n, bad = 0, first = 0;
	double worst = 0;

	if (t->dtype != ref->dtype) {
		msgf(r, V_FAIL, "output %d '%s' is %s, expected %s", k, t->name,
		    onnx_dtype_name(t->dtype), onnx_dtype_name(ref->dtype));
		return -1;
	}
	if (t->rank != ref->rank ||
	    memcmp(t->dims, ref->dims, (size_t)t->rank * sizeof t->dims[0])) {
		msgf(r, V_FAIL, "output %d '%s' has shape %s, expected %s", k,
		    t->name, dims_str(t->rank, t->dims, s1, sizeof s1),
		    dims_str(ref->rank, ref->dims, s2, sizeof s2));
		return -1;
	}
	n = sl_g_numel(t);
	if (n > 0 && t->data == NULL) {
		msgf(r, V_FAIL, "output %d '%s' has no data", k, t->name);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		double a = value_at(t->dtype, t->data, i);
		double e = value_at(ref->dtype, ref->data, i);
		int ok = t->dtype == SL_G_F32 ? close_enough(a, e, rtol, atol) :
		    (t->dtype == SL_G_I64 ? ((const int64_t *)t->data)[i] ==
		    ((const int64_t *)ref->data)[i] : a == e);

		if (!ok) {
			if (bad++ == 0)
				first = i;
			if (fabs(a - e) > worst || isnan(a) != isnan(e))
				worst = isnan(a - e) ? (double)INFINITY : fabs(a - e);
		}
	}
	if (bad > 0) {
		int64_t idx[SL_G_MAX_RANK];
		size_t rest = first;

		for (int d = t->rank - 1; d >= 0; d--) {
			idx[d] = t->dims[d] ? (int64_t)(rest % (size_t)t->dims[d]) : 0;
			rest = t->dims[d] ? rest / (size_t)t->dims[d] : 0;
		}
		msgf(r, V_FAIL, "output %d '%s' %s: %zu of %zu values differ; "
		    "first at %zu %s: got %.9g, expected %.9g (max |diff| %.3g, "
		    "rtol %g, atol %g)", k, t->name,
		    dims_str(t->rank, t->dims, s1, sizeof s1), bad, n, first,
		    dims_str(t->rank, idx, s2, sizeof s2),
		    value_at(t->dtype, t->data, first),
		    value_at(ref->dtype, ref->data, first), worst, rtol, atol);
		return -1;
	}
	return 0;
}

/* One data set: parse, bind, plan, run, compare. 0 passed; 1 the parse
 * or the plan refused the model with SL_EUNSUPPORTED (r says why); -1
 * failed. */
static int
run_set(const char *setdir, const void *model, size_t model_len,
    const Onnx__GraphProto *gp, double rtol, double atol, record *r)
{
	pbtensor in[SL_G_MAX_IO], ref;
	sl_errmsg why = { "" };
	sl_graph *g = NULL;
	char path[4096];
	int nin = 0, rc, ret = -1, max_batch = 1;

	memset(in, 0, sizeof in);
	memset(&ref, 0, sizeof ref);
	stage("sl_onnx_parse");
	if ((rc = sl_onnx_parse(model, model_len, &g, &why)) != 0) {
		if (rc == SL_EUNSUPPORTED) {
			msgf(r, V_NR_LOADER, "%s", why.text);
			return 1;
		}
		msgf(r, V_FAIL, "sl_onnx_parse: %s (%s)", why.text,
		    sl_strerror(rc));
		return -1;
	}
	/* input_K.pb is graph.input[K] (initializers included, as in IR < 4
	 * models: ONNX's runner numbers them the same way). */
	for (;; nin++) {
		sl_gtensor *t;
		int idx, got;

		pathf(path, sizeof path, "%s/input_%d.pb", setdir, nin);
		if (nin == SL_G_MAX_IO) {
			if (access(path, F_OK) == 0) {
				msgf(r, V_FAIL, "more than %d inputs", SL_G_MAX_IO);
				goto out;
			}
			break;
		}
		if ((got = read_pb(path, &in[nin], r)) < 0)
			goto out;
		if (got == 0)
			break;
		if ((size_t)nin >= gp->n_input) {
			msgf(r, V_FAIL, "%s: the model has %zu inputs", path,
			    gp->n_input);
			goto out;
		}
		idx = sl_g_tensor_find(g, gp->input[nin]->name);
		if (idx < 0 || !(g->t[idx].flags & SL_GT_INPUT)) {
			msgf(r, V_FAIL, "input %d '%s' is not a graph input of the "
			    "parsed graph", nin, gp->input[nin]->name);
			goto out;
		}
		t = &g->t[idx];
		if (t->dtype != in[nin].dtype) {
			msgf(r, V_FAIL, "input %d '%s': the graph says %s, the data "
			    "is %s", nin, t->name, onnx_dtype_name(t->dtype),
			    onnx_dtype_name(in[nin].dtype));
			goto out;
		}
		if ((rc = sl_g_set_shape(t, in[nin].dtype, in[nin].rank,
		    in[nin].dims, &why)) != 0) {
			msgf(r, V_FAIL, "input %d: %s", nin, why.text);
			goto out;
		}
		if (t->dtype != SL_G_F32)
			t->data = in[nin].data; /* shapes may depend on it */
		if (nin == 0 && t->rank > 0)
			max_batch = t->dims[0] < 1 ? 1 : t->dims[0] > 1 << 20 ?
			    1 << 20 : (int)t->dims[0];
	}
	for (int i = 0; i < g->ninputs; i++) {
		const sl_gtensor *t = &g->t[g->inputs[i]];
		int bound = 0;

		for (int k = 0; k < nin && !bound; k++)
			bound = strcmp(gp->input[k]->name, t->name) == 0;
		if (!bound) {
			msgf(r, V_FAIL, "graph input '%s' has no input_K.pb",
			    t->name);
			goto out;
		}
	}
	stage("sl_g_plan at batch %d", max_batch);
	if ((rc = sl_g_plan(g, max_batch, &why)) != 0) {
		if (rc == SL_EUNSUPPORTED) {
			msgf(r, V_NR_PLAN, "%s", why.text);
			ret = 1;
		} else {
			msgf(r, V_FAIL, "sl_g_plan: %s (%s)", why.text,
			    sl_strerror(rc));
		}
		goto out;
	}
	for (int k = 0; k < nin; k++) {
		sl_gtensor *t = &g->t[sl_g_tensor_find(g, gp->input[k]->name)];

		if (t->dtype == SL_G_F32)
			t->data = in[k].data;
	}
	stage("sl_g_run");
	if ((rc = sl_g_run(g, &why)) != 0) {
		msgf(r, V_FAIL, "sl_g_run: %s (%s)", why.text, sl_strerror(rc));
		goto out;
	}
	stage("comparing outputs");
	for (int k = 0;; k++) {
		int got, idx;

		pathf(path, sizeof path, "%s/output_%d.pb", setdir, k);
		free(ref.data);
		ref.data = NULL;
		if ((got = read_pb(path, &ref, r)) < 0)
			goto out;
		if (got == 0) {
			if ((size_t)k != gp->n_output) {
				msgf(r, V_FAIL, "%d reference outputs, the model has "
				    "%zu", k, gp->n_output);
				goto out;
			}
			break;
		}
		if ((size_t)k >= gp->n_output) {
			msgf(r, V_FAIL, "%s: the model has %zu outputs", path,
			    gp->n_output);
			goto out;
		}
		idx = sl_g_tensor_find(g, gp->output[k]->name);
		if (idx < 0) {
			msgf(r, V_FAIL, "output %d '%s' is not in the graph", k,
			    gp->output[k]->name);
			goto out;
		}
		if (compare(&g->t[idx], k, &ref, rtol, atol, r) != 0)
			goto out;
	}
	ret = 0;
out:
	/* Bound inputs are the caller's: the graph does not free them. */
	for (int k = 0; k < nin; k++) {
		int idx = g != NULL ? sl_g_tensor_find(g, gp->input[k]->name) : -1;

		if (idx >= 0 && g->t[idx].data == in[k].data &&
		    !(g->t[idx].flags & SL_GT_CONST) && !g->t[idx].own)
			g->t[idx].data = NULL;
	}
	sl_g_free(&g);
	for (int k = 0; k <= nin && k < SL_G_MAX_IO; k++)
		free(in[k].data);
	free(ref.data);
	return ret;
}

static int
is_set_dir(const struct dirent *e)
{
	return strncmp(e->d_name, "test_data_set_", 14) == 0;
}

/* Every data set of the case; the verdict in r. */
static void
run_case(const char *dir, const void *model, size_t len,
    const Onnx__GraphProto *gp, double rtol, double atol, record *r)
{
	struct dirent **sets;
	int n = scandir(dir, &sets, is_set_dir, alphasort);

	if (n < 0) {
		msgf(r, V_FAIL, "%s: %s", dir, strerror(errno));
		return;
	}
	if (n == 0)
		msgf(r, V_FAIL, "no test_data_set_N in %s", dir);
	for (int i = 0; i < n; i++) {
		char setdir[4096];
		int rc;

		if (r->verdict == V_PASS || r->verdict == V_STAGE) {
			pathf(setdir, sizeof setdir, "%s/%s", dir,
			    sets[i]->d_name);
			r->verdict = V_PASS;
			rc = run_set(setdir, model, len, gp, rtol, atol, r);
			if (rc < 0) {
				record old = *r;

				msgf(r, V_FAIL, "%s: %s", sets[i]->d_name, old.msg);
			}
		}
		free(sets[i]);
	}
	free(sets);
}

/* Run the case in a child: a crash or a hang fails only this case. */
static void
run_isolated(const char *dir, const void *model, size_t len,
    const Onnx__GraphProto *gp, double rtol, double atol, int fork_it,
    record *r)
{
	int fds[2], status;
	pid_t pid;
	record got;
	ssize_t k;

	memset(r, 0, sizeof *r);
	if (!fork_it) {
		run_case(dir, model, len, gp, rtol, atol, r);
		return;
	}
	fflush(stdout);
	fflush(stderr);
	if (pipe(fds) != 0 || (pid = fork()) < 0) {
		msgf(r, V_FAIL, "pipe/fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		close(fds[0]);
		out_fd = fds[1];
		alarm(CASE_TIMEOUT_S);
		run_case(dir, model, len, gp, rtol, atol, r);
		if (write(out_fd, r, sizeof *r) != (ssize_t)sizeof *r)
			_exit(3);
		/* exit, not _exit: LeakSanitizer checks the child at exit. */
		exit(0);
	}
	close(fds[1]);
	msgf(r, V_FAIL, "the child sent nothing");
	while ((k = read(fds[0], &got, sizeof got)) == (ssize_t)sizeof got)
		*r = got;
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status))) {
		record old = *r;

		if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
			msgf(r, V_FAIL, "timed out after %d s in %s",
			    CASE_TIMEOUT_S, old.msg);
		else if (WIFSIGNALED(status))
			msgf(r, V_FAIL, "crashed (signal %d, %s) in %s",
			    WTERMSIG(status), strsignal(WTERMSIG(status)), old.msg);
		else
			msgf(r, V_FAIL, "exited with status %d in %s",
			    WEXITSTATUS(status), old.msg);
	} else if (r->verdict == V_STAGE) {
		msgf(r, V_FAIL, "the child stopped after: %s", r->msg);
	}
}

/* rtol/atol from the case's data.json where it has them. */
static void
tolerances(const char *dir, double *rtol, double *atol)
{
	char path[4096];
	void *buf;
	size_t len;
	cJSON *j, *x;
	char *s;

	*rtol = 1e-3;
	*atol = 1e-7;
	pathf(path, sizeof path, "%s/data.json", dir);
	if (sl_file_read(path, 1 << 20, &buf, &len, NULL) != 0)
		return;
	if ((s = realloc(buf, len + 1)) == NULL) {
		free(buf);
		return;
	}
	s[len] = '\0';
	if ((j = cJSON_Parse(s)) != NULL) {
		if ((x = cJSON_GetObjectItem(j, "rtol")) && cJSON_IsNumber(x))
			*rtol = x->valuedouble;
		if ((x = cJSON_GetObjectItem(j, "atol")) && cJSON_IsNumber(x))
			*atol = x->valuedouble;
		cJSON_Delete(j);
	}
	free(s);
}

static int
wanted(const char *name, int nfilter, char **filter)
{
	if (nfilter == 0)
		return 1;
	for (int i = 0; i < nfilter; i++)
		if (strstr(name, filter[i]) != NULL)
			return 1;
	return 0;
}

static int
is_case_dir(const struct dirent *e)
{
	return e->d_name[0] != '.';
}

static int
cmp_missing(const void *a, const void *b)
{
	return strcmp(((const char *)a), ((const char *)b));
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: onnx_backend [-v] [--no-fork] [--all-dtypes] "
	    "[-d DATA_DIR] [FILTER...]\n"
	    "  -d DATA_DIR    ONNX backend test data (default %s)\n"
	    "  -v             one line per case, not only failures\n"
	    "  --no-fork      run cases in this process (for a debugger)\n"
	    "  --all-dtypes   also the cases with no float32 input or output\n"
	    "  FILTER         only cases whose kind/name contains it\n",
	    DEFAULT_DATA_DIR);
}

int
main(int argc, char **argv)
{
	const char *data = DEFAULT_DATA_DIR;
	int fork_it = 1, nfilter = 0, counts[V_COUNT] = { 0 }, total = 0;
	char **filter = calloc((size_t)argc + 1, sizeof *filter);
	struct stat st;

	if (filter == NULL)
		return 2;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-v") == 0)
			verbose = 1;
		else if (strcmp(argv[i], "--no-fork") == 0)
			fork_it = 0;
		else if (strcmp(argv[i], "--all-dtypes") == 0)
			all_dtypes = 1;
		else if (strcmp(argv[i], "-d") == 0 && i + 1 < argc)
			data = argv[++i];
		else if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			free(filter);
			return 0;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "onnx_backend: unknown option %s\n",
			    argv[i]);
			usage(stderr);
			free(filter);
			return 2;
		} else {
			filter[nfilter++] = argv[i];
		}
	}
	if (stat(data, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "onnx_backend: %s: not a directory (install "
		    "libonnx-testdata)\n", data);
		free(filter);
		return 2;
	}
	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		char kdir[4096];
		struct dirent **cases;
		int n;

		pathf(kdir, sizeof kdir, "%s/%s", data, kinds[k]);
		if ((n = scandir(kdir, &cases, is_case_dir, alphasort)) < 0)
			continue;
		for (int c = 0; c < n; c++) {
			char dir[4096], name[512], mpath[4096];
			Onnx__ModelProto *m = NULL;
			void *model = NULL;
			size_t len = 0;
			double rtol, atol;
			sl_errmsg why = { "" };
			record r;
			int v, rc;

			pathf(name, sizeof name, "%s/%s", kinds[k],
			    cases[c]->d_name);
			pathf(dir, sizeof dir, "%s/%s", kdir, cases[c]->d_name);
			free(cases[c]);
			if (!wanted(name, nfilter, filter) ||
			    stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
				continue;
			total++;
			memset(&r, 0, sizeof r);
			pathf(mpath, sizeof mpath, "%s/model.onnx", dir);
			tolerances(dir, &rtol, &atol);
			if (access(mpath, F_OK) != 0) {
				v = V_NR_NO_MODEL;
				msgf(&r, v, "no model.onnx");
			} else if ((rc = sl_file_read(mpath, MAX_FILE_BYTES, &model,
			    &len, &why)) != 0) {
				v = V_FAIL;
				msgf(&r, v, "%s: %s", mpath, why.text);
			} else if ((m = onnx__model_proto__unpack(NULL, len,
			    model)) == NULL) {
				v = V_FAIL;
				msgf(&r, v, "protobuf-c cannot unpack model.onnx");
			} else if ((v = prescan(m, &r)) == V_NR_OPSET ||
			    v == V_NR_OPS) {
				/* The loader must refuse it too, by name. */
				sl_graph *g = NULL;

				if ((rc = sl_onnx_parse(model, len, &g, &why)) !=
				    SL_EUNSUPPORTED) {
					record old = r;

					msgf(&r, V_FAIL, "%s, but sl_onnx_parse returned "
					    "%s%s%s", old.msg, rc ? sl_strerror(rc) : "0",
					    rc ? ": " : "", rc ? why.text : "");
					v = V_FAIL;
				}
				sl_g_free(&g);
			} else if (v == V_PASS) {
				run_isolated(dir, model, len, m->graph, rtol, atol,
				    fork_it, &r);
				v = r.verdict;
			}
			counts[v]++;
			if (v == V_FAIL)
				printf("FAIL %s: %s\n", name, r.msg);
			else if (v == V_NR_LOADER || v == V_NR_PLAN)
				printf("not run %s: %s refuses it: %s\n", name,
				    v == V_NR_LOADER ? "sl_onnx_parse" : "sl_g_plan",
				    r.msg);
			else if (verbose && v == V_PASS)
				printf("ok   %s\n", name);
			else if (verbose)
				printf("not run %s: %s\n", name, r.msg);
			if (m != NULL)
				onnx__model_proto__free_unpacked(m, NULL);
			free(model);
		}
		free(cases);
	}

	int ran = counts[V_PASS] + counts[V_FAIL];
	int notrun = total - ran;

	qsort(missing, (size_t)nmissing, sizeof missing[0], cmp_missing);
	printf("%d of %d cases passed, %d not run (unsupported:", counts[V_PASS],
	    ran, notrun);
	for (int i = 0; i < nmissing; i++)
		printf("%s %s", i ? "," : "", missing[i].name);
	printf(")\n");
	printf("not run, by reason (first that applies):\n");
	for (int v = V_NR_NO_MODEL; v <= V_NR_PLAN; v++) {
		printf("  %4d  %s", counts[v], nr_text[v]);
		if (v == V_NR_OPSET)
			printf(" [%d, %d]", SL_ONNX_MIN_OPSET, SL_ONNX_MAX_OPSET);
		if (v == V_NR_DTYPE) {
			int first = 1;

			for (int t = 0; t < 32; t++)
				if (dtype_cases[t] > 0) {
					printf("%s%s %d", first ? " (" : ", ", t == 31 ?
					    "not a tensor" : onnx_dtype_name(t),
					    dtype_cases[t]);
					first = 0;
				}
			if (!first)
				printf(")");
		}
		printf("\n");
	}
	if (nmissing > 0) {
		printf("cases using each op we lack (any reason):");
		for (int i = 0; i < nmissing; i++)
			printf("%s %s %d", i ? "," : "", missing[i].name,
			    missing[i].cases);
		printf("\n");
	}
	free(filter);
	return counts[V_FAIL] > 0 ? 1 : 0;
}
