/* op_matmul.c - the matmul op family. */
#include "graph.h"

const sl_gop sl_g_ops_matmul[] = {
	{ NULL, 0, 0, 0, 0, NULL, NULL, NULL },
};
