/* view_dump: the views sl_view computes, for tests that compare another
 * implementation with it (tests/integration/python_views.sh).
 *
 *   view_dump RECIPE SEED u8|f32 C H W ROWS VIEWS IN OUT
 *
 * IN holds ROWS rows of C x H x W values of the dtype (raw, native order);
 * OUT gets, for each row i and view v in order, the view (seed, i, v) of
 * row i. stdout gets one line per (i, v) with the drawn parameters:
 * "i v rrc top left h w crop dy dx flip". Exit 0, 2 on bad arguments, 1 on
 * I/O errors. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_view.h"

static long
num(const char *s, long lo, long hi)
{
	char *e;
	long v = strtol(s, &e, 10);

	if (*s == '\0' || *e != '\0' || v < lo || v > hi) {
		fprintf(stderr, "view_dump: '%s': want %ld..%ld\n", s, lo, hi);
		exit(2);
	}
	return v;
}

int
main(int argc, char **argv)
{
	sl_view_recipe r;
	sl_errmsg why = { "" };
	FILE *in, *out;

	if (argc != 11) {
		fprintf(stderr, "usage: view_dump RECIPE SEED u8|f32 C H W ROWS "
		    "VIEWS IN OUT\n");
		return 2;
	}
	if (sl_view_recipe_parse(argv[1], &r, &why) != 0) {
		fprintf(stderr, "view_dump: %s\n", why.text);
		return 2;
	}
	const uint64_t seed = strtoull(argv[2], NULL, 10);
	const enum sl_dtype dt = strcmp(argv[3], "u8") == 0 ? SL_DTYPE_U8 :
	    SL_DTYPE_F32;
	const int C = (int)num(argv[4], 1, 64), H = (int)num(argv[5], 1, 4096),
	    W = (int)num(argv[6], 1, 4096);
	const long rows = num(argv[7], 1, 1000000), views = num(argv[8], 1, 1024);
	const size_t esize = dt == SL_DTYPE_U8 ? 1 : sizeof(float);
	const size_t row_bytes = (size_t)C * H * W * esize;
	unsigned char *row = malloc(row_bytes), *view = malloc(row_bytes),
	    *scratch = malloc((size_t)H * W * esize);

	if (row == NULL || view == NULL || scratch == NULL)
		return 1;
	if ((in = fopen(argv[9], "rb")) == NULL || (out = fopen(argv[10],
	    "wb")) == NULL) {
		perror("view_dump");
		return 1;
	}
	for (long i = 0; i < rows; i++) {
		if (fread(row, 1, row_bytes, in) != row_bytes) {
			fprintf(stderr, "view_dump: %s: short read at row %ld\n",
			    argv[9], i);
			return 1;
		}
		for (long v = 0; v < views; v++) {
			sl_view_params p;

			sl_view_draw(&r, seed, (uint64_t)i, (uint32_t)v, H, W, &p);
			sl_view_apply(&p, dt, row, view, scratch, C, H, W);
			if (fwrite(view, 1, row_bytes, out) != row_bytes) {
				perror("view_dump");
				return 1;
			}
			printf("%ld %ld %d %d %d %d %d %d %d %d %d\n", i, v, p.rrc,
			    p.box_top, p.box_left, p.box_h, p.box_w, p.crop, p.dy,
			    p.dx, p.flip);
		}
	}
	fclose(in);
	if (fclose(out) != 0) {
		perror("view_dump");
		return 1;
	}
	free(row);
	free(view);
	free(scratch);
	return 0;
}
