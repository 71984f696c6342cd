/* parallel.c - work split over short-lived threads, each running
 * one-thread BLAS calls (graph.h: sl_g_parallel). */
#include "graph.h"

#include <cblas.h>
#include <pthread.h>

typedef struct part {
	sl_g_part_fn fn;
	void *arg;
	int t, nt;
} part;

static void *
part_main(void *p)
{
	const part *q = p;

	q->fn(q->arg, q->t, q->nt);
	return NULL;
}

/* OpenBLAS's threads are for one big GEMM; the small images and tokens of
 * our models make many small ones, and between them OpenBLAS's idle
 * threads spin in sched_yield for about a tenth of a second, taking the
 * core our own loops need (at 2 threads the ResNet ran 3x slower than at
 * 1). So a call on several threads splits its work itself and runs
 * one-thread GEMMs on each part, with OpenBLAS set to one thread meanwhile
 * and put back after. That setting is process-wide (graph.h, Caveats).
 *
 * Part 0 runs on the calling thread. A thread that cannot start runs its
 * part here instead: forward cannot fail. The threads are short-lived so
 * that nothing outlives the call; glibc reuses joined threads' stacks, so
 * one clone per part (about 20 us) is the whole cost. */
void
sl_g_parallel(int nt, sl_g_part_fn fn, void *arg)
{
	pthread_t th[SL_G_MAX_THREADS];
	part parts[SL_G_MAX_THREADS];
	int started[SL_G_MAX_THREADS] = { 0 };
	int prev;

	if (nt > SL_G_MAX_THREADS)
		nt = SL_G_MAX_THREADS;
	if (nt < 1)
		nt = 1;
	/* One part too: a call too small to split must not wake OpenBLAS's
	 * threads either, or they spin through the next ops. */
	prev = openblas_get_num_threads();
	if (prev > 1)
		openblas_set_num_threads(1);
	for (int t = 1; t < nt; t++) {
		parts[t] = (part){ fn, arg, t, nt };
		started[t] = pthread_create(&th[t], NULL, part_main,
		    &parts[t]) == 0;
	}
	fn(arg, 0, nt);
	for (int t = 1; t < nt; t++) {
		if (started[t])
			pthread_join(th[t], NULL);
		else
			fn(arg, t, nt);
	}
	if (prev > 1)
		openblas_set_num_threads(prev);
}
