#include "checkpoint.h"
#include "sl_file.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* The last byte is the version: 2 is written for MLPs, 3 for networks
 * with running statistics (convolutional students); 1 to 3 are read. */
static const char magic[8] = { 'S', 'L', 'C', 'K', 'P', 'T', 0, 2 };

#define CKPT_MAX_BYTES ((size_t)3 * SL_MLP_MAX_PARAMS * 4 + ((size_t)1 << 30))

/* --- little-endian writer into a growing buffer --------------------------- */

typedef struct wbuf {
	unsigned char *p;
	size_t len, cap;
} wbuf;

static void
put(wbuf *w, const void *src, size_t n)
{
	/* cap is sized up front (ckpt_size), so this never overflows. */
	memcpy(w->p + w->len, src, n);
	w->len += n;
}

static void
put_u32(wbuf *w, uint32_t v)
{
	unsigned char b[4] = { (unsigned char)v, (unsigned char)(v >> 8),
		(unsigned char)(v >> 16), (unsigned char)(v >> 24) };

	put(w, b, 4);
}

static void
put_u64(wbuf *w, uint64_t v)
{
	put_u32(w, (uint32_t)v);
	put_u32(w, (uint32_t)(v >> 32));
}

static void
put_f32(wbuf *w, float f)
{
	uint32_t v;

	memcpy(&v, &f, 4);
	put_u32(w, v);
}

static void
put_f32s(wbuf *w, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		put_f32(w, x[i]);
}

/* --- bounds-checked reader ------------------------------------------------ */

typedef struct rbuf {
	const unsigned char *p;
	size_t len, off;
} rbuf;

static int
get(rbuf *r, void *dst, size_t n)
{
	if (r->len - r->off < n)
		return -1;
	memcpy(dst, r->p + r->off, n);
	r->off += n;
	return 0;
}

static int
get_u32(rbuf *r, uint32_t *v)
{
	unsigned char b[4];

	if (get(r, b, 4) != 0)
		return -1;
	*v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	    (uint32_t)b[3] << 24;
	return 0;
}

static int
get_u64(rbuf *r, uint64_t *v)
{
	uint32_t lo, hi;

	if (get_u32(r, &lo) != 0 || get_u32(r, &hi) != 0)
		return -1;
	*v = (uint64_t)hi << 32 | lo;
	return 0;
}

static int
get_f32(rbuf *r, float *f)
{
	uint32_t v;

	if (get_u32(r, &v) != 0)
		return -1;
	memcpy(f, &v, 4);
	return 0;
}

static size_t
ckpt_size_fixed(const ckpt_net *m, const sl_optim *o)
{
	size_t vecs = o->kind == SL_OPTIM_ADAM ? 3 : 2;

	return 8 + 4 + 4 * (size_t)(m->nlayers + 1) + 4 + 6 * 4 + 8 + 4 * 8 +
	    4 + 8 + 8 + 8 + 8 + 32 + 4 + 4 + vecs * 4 * m->nparams + 4 +
	    4 + 4 * m->nbufs + 4 + 8 * m->ncounts;
}

static int
has_state(const ckpt_net *m)
{
	return m->nbufs > 0 || m->ncounts > 0;
}

ckpt_net
ckpt_net_of_mlp(sl_mlp *m)
{
	ckpt_net n = { m->nlayers, m->sizes, m->params, m->nparams, NULL, 0,
		NULL, 0 };

	return n;
}

static void
put_f64(wbuf *w, double d)
{
	uint64_t v;

	memcpy(&v, &d, 8);
	put_u64(w, v);
}

static int
get_f64(rbuf *r, double *d)
{
	uint64_t v;

	if (get_u64(r, &v) != 0)
		return -1;
	memcpy(d, &v, 8);
	return 0;
}

/* The value of line "key=..." in text[0..len), or NULL; *vlen its length. */
static const char *
find_setting(const char *text, size_t len, const char *key, size_t klen,
    size_t *vlen)
{
	const char *p = text, *end = text + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;

		if ((size_t)(le - p) > klen && memcmp(p, key, klen) == 0 &&
		    p[klen] == '=') {
			*vlen = (size_t)(le - p) - klen - 1;
			return p + klen + 1;
		}
		p = le + 1;
	}
	return NULL;
}

/* Why the digests differ: the first setting of now whose value the
 * checkpoint's text holds otherwise (or lacks). */
static int
explain_mismatch(const char *saved, size_t slen, const char *now,
    sl_errmsg *why)
{
	const char *p = now;

	if (saved == NULL || now == NULL)
		return sl_errmsg_set(why, SL_EMISMATCH, "checkpoint belongs to a "
		    "run with other settings or data%s", saved == NULL ?
		    " (a version-1 checkpoint does not say which)" : "");
	while (*p != '\0') {
		const char *le = strchr(p, '\n'), *eq, *sv;
		size_t len, klen, vlen, svlen;

		if (le == NULL)
			le = p + strlen(p);
		len = (size_t)(le - p);
		eq = memchr(p, '=', len);
		if (eq != NULL) {
			klen = (size_t)(eq - p);
			vlen = len - klen - 1;
			sv = find_setting(saved, slen, p, klen, &svlen);
			if (sv == NULL || svlen != vlen || memcmp(sv, eq + 1,
			    vlen) != 0)
				return sl_errmsg_set(why, SL_EMISMATCH,
				    "checkpoint belongs to another run: %.*s "
				    "is %.*s there, %.*s here", (int)klen, p,
				    sv ? (int)(svlen > 200 ? 200 : svlen) : 6,
				    sv ? sv : "absent",
				    (int)(vlen > 200 ? 200 : vlen), eq + 1);
		}
		p = *le ? le + 1 : le;
	}
	return sl_errmsg_set(why, SL_EMISMATCH, "checkpoint belongs to a run "
	    "with other settings or data");
}

int
ckpt_save_net(const char *path, const ckpt_net *m, const sl_optim *o,
    const sl_rng *rng, const ckpt_pos *pos, const uint8_t digest[32],
    const char *settings, const uint8_t *mask, uint32_t mask_len,
    sl_errmsg *why)
{
	sl_atomic_file f;
	size_t slen = settings ? strlen(settings) : 0;
	wbuf w = { NULL, 0, 0 };
	int rc;

	if (slen > CKPT_MAX_SETTINGS)
		slen = CKPT_MAX_SETTINGS;
	w.cap = ckpt_size_fixed(m, o) + mask_len + slen;

	/* One buffer for the whole file: checkpoints happen every few hundred
	 * steps, not per batch, and a single write keeps the code simple. */
	w.p = malloc(w.cap);
	if (w.p == NULL)
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	put(&w, magic, 7);
	put(&w, has_state(m) ? "\3" : "\2", 1);
	put_u32(&w, (uint32_t)m->nlayers);
	for (int l = 0; l <= m->nlayers; l++)
		put_u32(&w, (uint32_t)m->sizes[l]);
	put_u32(&w, (uint32_t)o->kind);
	put_f32(&w, o->lr);
	put_f32(&w, o->momentum);
	put_f32(&w, o->beta1);
	put_f32(&w, o->beta2);
	put_f32(&w, o->eps);
	put_f32(&w, o->weight_decay);
	put_u64(&w, o->t);
	for (int i = 0; i < 4; i++)
		put_u64(&w, rng->s[i]);
	put_u32(&w, pos->epoch);
	put_u64(&w, pos->batch);
	put_u64(&w, pos->step);
	put_f64(&w, pos->loss_sum);
	put_u64(&w, pos->loss_rows);
	put(&w, digest, 32);
	put_u32(&w, (uint32_t)slen);
	if (slen > 0)
		put(&w, settings, slen);
	put_u32(&w, mask_len);
	if (mask_len > 0)
		put(&w, mask, mask_len);
	if (has_state(m)) {
		put_u32(&w, (uint32_t)m->nbufs);
		put_f32s(&w, m->bufs, m->nbufs);
		put_u32(&w, (uint32_t)m->ncounts);
		for (size_t i = 0; i < m->ncounts; i++)
			put_u64(&w, (uint64_t)m->counts[i]);
	}
	put_f32s(&w, m->params, m->nparams);
	put_f32s(&w, o->m, o->n);
	if (o->kind == SL_OPTIM_ADAM)
		put_f32s(&w, o->v, o->n);
	put_u32(&w, (uint32_t)crc32(0L, w.p, (uInt)w.len));

	if ((rc = sl_atomic_open(&f, path, why)) == 0 &&
	    (rc = sl_atomic_write(&f, w.p, w.len, why)) == 0)
		rc = sl_atomic_commit(&f, why);
	else
		sl_atomic_abort(&f);
	free(w.p);
	return rc;
}

static int
get_f32s(rbuf *r, float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (get_f32(r, &x[i]) != 0 || !isfinite(x[i]))
			return -1;
	return 0;
}

int
ckpt_decode_net(const void *buf, size_t len, const ckpt_net *m, sl_optim *o,
    sl_rng *rng,
    ckpt_pos *pos, const uint8_t digest[32], const char *settings,
    uint8_t *mask, uint32_t mask_len, sl_errmsg *why)
{
	rbuf r = { buf, len, 0 };
	char head[8];
	uint32_t nl, v32, kind, crc, mlen, slen = 0;
	const uint8_t *mask_src;
	const char *saved = NULL;
	int version;
	float hyper[6];
	uint64_t t, s[4];
	uint8_t dg[32];
	ckpt_pos p;
	float *tmp = NULL;
	const size_t n = m->nparams;
	size_t vecs;
	int rc = SL_EFORMAT;

	if (len < sizeof magic + 4 || get(&r, head, 8) != 0 ||
	    memcmp(head, magic, 7) != 0 || head[7] < 1 || head[7] > 3)
		return sl_errmsg_set(why, SL_EFORMAT, "not a softlabel checkpoint");
	version = head[7];
	/* The CRC covers everything, so check it before trusting any field. */
	r.len = len - 4;
	{
		rbuf tail = { buf, len, len - 4 };

		if (get_u32(&tail, &crc) != 0 ||
		    crc != (uint32_t)crc32(0L, buf, (uInt)(len - 4)))
			return sl_errmsg_set(why, SL_ECORRUPT,
			    "checksum does not match (truncated or corrupt)");
	}
	if (get_u32(&r, &nl) != 0)
		goto trunc;
	if (nl != (uint32_t)m->nlayers)
		return sl_errmsg_set(why, SL_EMISMATCH,
		    "checkpoint has %u layers, run has %d", nl, m->nlayers);
	for (int l = 0; l <= m->nlayers; l++) {
		if (get_u32(&r, &v32) != 0)
			goto trunc;
		if (v32 != (uint32_t)m->sizes[l])
			return sl_errmsg_set(why, SL_EMISMATCH,
			    "checkpoint layer %d has %u units, run has %d", l,
			    v32, m->sizes[l]);
	}
	if (get_u32(&r, &kind) != 0)
		goto trunc;
	if (kind != (uint32_t)o->kind)
		return sl_errmsg_set(why, SL_EMISMATCH,
		    "checkpoint optimizer differs from this run's");
	for (int i = 0; i < 6; i++)
		if (get_f32(&r, &hyper[i]) != 0)
			goto trunc;
	if (get_u64(&r, &t) != 0)
		goto trunc;
	for (int i = 0; i < 4; i++)
		if (get_u64(&r, &s[i]) != 0)
			goto trunc;
	memset(&p, 0, sizeof p);
	if (get_u32(&r, &p.epoch) != 0 || get_u64(&r, &p.batch) != 0 ||
	    get_u64(&r, &p.step) != 0)
		goto trunc;
	if (version >= 2 && (get_f64(&r, &p.loss_sum) != 0 ||
	    get_u64(&r, &p.loss_rows) != 0))
		goto trunc;
	if (!isfinite(p.loss_sum) || p.loss_sum < 0)
		return sl_errmsg_set(why, SL_EFORMAT, "checkpoint loss sum %g "
		    "is not a finite sum of losses", p.loss_sum);
	if (get(&r, dg, 32) != 0)
		goto trunc;
	if (version >= 2) {
		if (get_u32(&r, &slen) != 0)
			goto trunc;
		if (slen > CKPT_MAX_SETTINGS)
			return sl_errmsg_set(why, SL_EFORMAT, "checkpoint "
			    "settings of %u bytes, over %d", slen,
			    CKPT_MAX_SETTINGS);
		if (r.len - r.off < slen)
			goto trunc;
		saved = (const char *)r.p + r.off;
		r.off += slen;
	}
	if (memcmp(dg, digest, 32) != 0)
		return explain_mismatch(saved, slen, settings, why);
	if (get_u32(&r, &mlen) != 0)
		goto trunc;
	if (mlen != mask_len)
		return sl_errmsg_set(why, SL_EMISMATCH, "checkpoint cache position "
		    "covers %u shard slots, this run has %u", mlen, mask_len);
	if (r.len - r.off < mlen)
		goto trunc;
	mask_src = r.p + r.off;
	r.off += mlen;
	/* Version 3: the running statistics and their counts. */
	const unsigned char *bufs_src = NULL, *counts_src = NULL;

	if (version >= 3) {
		uint32_t nb, nc;

		if (get_u32(&r, &nb) != 0)
			goto trunc;
		if (nb != m->nbufs || r.len - r.off < 4 * (size_t)nb)
			return sl_errmsg_set(why, SL_EMISMATCH, "checkpoint holds "
			    "%u running statistics, this run has %zu", nb,
			    m->nbufs);
		bufs_src = r.p + r.off;
		r.off += 4 * (size_t)nb;
		if (get_u32(&r, &nc) != 0)
			goto trunc;
		if (nc != m->ncounts || r.len - r.off < 8 * (size_t)nc)
			return sl_errmsg_set(why, SL_EMISMATCH, "checkpoint holds "
			    "%u batch counts, this run has %zu", nc, m->ncounts);
		counts_src = r.p + r.off;
		r.off += 8 * (size_t)nc;
	} else if (has_state(m)) {
		return sl_errmsg_set(why, SL_EMISMATCH, "checkpoint of version %d "
		    "has no running statistics", version);
	}
	vecs = kind == SL_OPTIM_ADAM ? 3 : 2;
	if (r.len - r.off != vecs * 4 * n)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "checkpoint holds %zu bytes of state, expected %zu",
		    r.len - r.off, vecs * 4 * n);

	/* Decode into scratch first: the caller's state changes only when the
	 * whole file is good. */
	tmp = malloc(vecs * n * sizeof *tmp);
	if (tmp == NULL)
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	if (get_f32s(&r, tmp, vecs * n) != 0) {
		rc = sl_errmsg_set(why, SL_EFORMAT, "non-finite value in state");
		goto fail;
	}
	if (bufs_src != NULL) {
		rbuf rb = { bufs_src, 4 * m->nbufs, 0 };
		float *b = malloc(m->nbufs * sizeof *b + 1);

		if (b == NULL) {
			rc = sl_errmsg_set(why, SL_ENOMEM, "out of memory");
			goto fail;
		}
		if (get_f32s(&rb, b, m->nbufs) != 0) {
			free(b);
			rc = sl_errmsg_set(why, SL_EFORMAT, "non-finite running "
			    "statistic");
			goto fail;
		}
		if (m->nbufs > 0) /* m->bufs is NULL for a net without any */
			memcpy(m->bufs, b, m->nbufs * sizeof *b);
		free(b);
		rbuf rc8 = { counts_src, 8 * m->ncounts, 0 };

		for (size_t i = 0; i < m->ncounts; i++) {
			uint64_t v;

			(void)get_u64(&rc8, &v);
			m->counts[i] = (int64_t)v;
		}
	}
	memcpy(m->params, tmp, n * sizeof *tmp);
	memcpy(o->m, tmp + n, n * sizeof *tmp);
	if (vecs == 3)
		memcpy(o->v, tmp + 2 * n, n * sizeof *tmp);
	o->lr = hyper[0];
	o->momentum = hyper[1];
	o->beta1 = hyper[2];
	o->beta2 = hyper[3];
	o->eps = hyper[4];
	o->weight_decay = hyper[5];
	o->t = t;
	memcpy(rng->s, s, sizeof s);
	if (mlen > 0)
		memcpy(mask, mask_src, mlen);
	*pos = p;
	free(tmp);
	return 0;
trunc:
	return sl_errmsg_set(why, SL_EFORMAT, "checkpoint truncated");
fail:
	free(tmp);
	return rc;
}

int
ckpt_load_net(const char *path, const ckpt_net *m, sl_optim *o, sl_rng *rng,
    ckpt_pos *pos, const uint8_t digest[32], const char *settings,
    uint8_t *mask, uint32_t mask_len, sl_errmsg *why)
{
	void *buf;
	size_t len;
	int rc;

	if ((rc = sl_file_read(path, CKPT_MAX_BYTES, &buf, &len, why)) != 0)
		return rc;
	rc = ckpt_decode_net(buf, len, m, o, rng, pos, digest, settings, mask,
	    mask_len, why);
	free(buf);
	return rc;
}

int
ckpt_save(const char *path, const sl_mlp *m, const sl_optim *o,
    const sl_rng *rng, const ckpt_pos *pos, const uint8_t digest[32],
    const char *settings, const uint8_t *mask, uint32_t mask_len,
    sl_errmsg *why)
{
	const ckpt_net n = ckpt_net_of_mlp((sl_mlp *)m);

	return ckpt_save_net(path, &n, o, rng, pos, digest, settings, mask,
	    mask_len, why);
}

int
ckpt_decode(const void *buf, size_t len, sl_mlp *m, sl_optim *o, sl_rng *rng,
    ckpt_pos *pos, const uint8_t digest[32], const char *settings,
    uint8_t *mask, uint32_t mask_len, sl_errmsg *why)
{
	const ckpt_net n = ckpt_net_of_mlp(m);

	return ckpt_decode_net(buf, len, &n, o, rng, pos, digest, settings, mask,
	    mask_len, why);
}

int
ckpt_load(const char *path, sl_mlp *m, sl_optim *o, sl_rng *rng,
    ckpt_pos *pos, const uint8_t digest[32], const char *settings,
    uint8_t *mask, uint32_t mask_len, sl_errmsg *why)
{
	const ckpt_net n = ckpt_net_of_mlp(m);

	return ckpt_load_net(path, &n, o, rng, pos, digest, settings, mask,
	    mask_len, why);
}
