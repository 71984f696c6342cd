/* op_norm.c - the norm op family. */
#include "graph.h"

const sl_gop sl_g_ops_norm[] = {
	{ NULL, 0, 0, 0, 0, NULL, NULL, NULL },
};
