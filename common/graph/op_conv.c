/* op_conv.c - the conv op family. */
#include "graph.h"

const sl_gop sl_g_ops_conv[] = {
	{ NULL, 0, 0, 0, 0, NULL, NULL, NULL },
};
