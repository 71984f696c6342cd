/* op_shape.c - the shape op family. */
#include "graph.h"

const sl_gop sl_g_ops_shape[] = {
	{ NULL, 0, 0, 0, 0, NULL, NULL, NULL },
};
