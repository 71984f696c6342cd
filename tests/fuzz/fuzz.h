/* fuzz.h - what every libFuzzer target in tests/fuzz/ shares.
 *
 * A target is one LLVMFuzzerTestOneInput that feeds the bytes to a decoder
 * and then checks properties of what the decoder accepted. A broken
 * property calls abort(), which libFuzzer reports as a crash and saves as a
 * reproducer; ASan/UBSan catch memory and undefined-behaviour errors, and
 * LeakSanitizer leaks, at the end of each run. Targets write to no file in
 * the tree and keep no state between inputs (fuzz_idx keeps one memfd).
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property every accepted input must have; stops the run otherwise. */
#define FUZZ_CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, \
		    __LINE__, #cond); \
		abort(); \
	} \
} while (0)

#endif
