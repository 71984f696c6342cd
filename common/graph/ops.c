/* ops.c - the op table: ONNX op types to their init, infer and forward.
 * Each family file (op_<family>.c) exports one array; adding an op is a
 * row there. */
#include "graph.h"

#include <string.h>

static const sl_gop *const families[] = {
	sl_g_ops_conv, sl_g_ops_pool, sl_g_ops_matmul, sl_g_ops_norm,
	sl_g_ops_eltwise, sl_g_ops_shape,
};

#define NFAMILIES (sizeof families / sizeof families[0])

const sl_gop *
sl_g_op_find(const char *op_type)
{
	for (size_t f = 0; f < NFAMILIES; f++)
		for (const sl_gop *op = families[f]; op->name != NULL; op++)
			if (strcmp(op->name, op_type) == 0)
				return op;
	return NULL;
}

const char *const *
sl_g_op_names(void)
{
	/* Built once; the table is constant. Callers are single-threaded
	 * at load, and the result is the same whoever builds it. */
	static const char *names[256];
	static int built;

	if (!built) {
		size_t k = 0;

		for (size_t f = 0; f < NFAMILIES; f++)
			for (const sl_gop *op = families[f]; op->name != NULL &&
			    k + 1 < sizeof names / sizeof names[0]; op++)
				names[k++] = op->name;
		names[k] = NULL;
		built = 1;
	}
	return names;
}
