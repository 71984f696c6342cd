/* fold.h - rewrites at plan time, before constant folding: BatchNormalization
 * into the Conv before it, then Relu, Clip (ReLU6) and HardSwish into the
 * Conv before them (sl_gnode.act), Identity and inference Dropout out of
 * the run. */
#ifndef SL_GRAPH_FOLD_H
#define SL_GRAPH_FOLD_H

#include "graph.h"

/* Runs on a toposorted graph (g->order); marks rewritten-away nodes
 * folded. Returns 0, SL_ENOMEM. */
int sl_g_fold_rewrites(sl_graph *g, sl_errmsg *why);

#endif
