/* fuzz_proto.c - sl_proto_decode on arbitrary frames.
 *
 * Property: a frame that decodes re-encodes into a frame that decodes again
 * to the same type (the encoder writes what the decoder reads back). */
#include "fuzz.h"

#include "sl_proto.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sl_msg m, again;
	sl_errmsg why;
	sl_proto_buf b = { 0 };
	int rc;

	rc = sl_proto_decode(data, size, &m, &why);
	if (rc != 0) {
		FUZZ_CHECK(rc == SL_EFORMAT || rc == SL_ELIMIT ||
		    rc == SL_EUNSUPPORTED);
		return 0;
	}
	FUZZ_CHECK(sl_proto_encode(&m, &b) == 0);
	rc = sl_proto_decode(b.p, b.len, &again, &why);
	if (rc != 0)
		fprintf(stderr, "re-decode of %s: %s\n",
		    sl_proto_type_name(m.type), why.text);
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(again.type == m.type);
	sl_proto_buf_fini(&b);
	return 0;
}
