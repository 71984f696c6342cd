/* op_eltwise.c - the eltwise op family. */
#include "graph.h"

const sl_gop sl_g_ops_eltwise[] = {
	{ NULL, 0, 0, 0, 0, NULL, NULL, NULL },
};
