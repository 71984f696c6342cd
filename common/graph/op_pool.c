/* op_pool.c - the pool op family. */
#include "graph.h"

const sl_gop sl_g_ops_pool[] = {
	{ NULL, 0, 0, 0, 0, NULL, NULL, NULL },
};
