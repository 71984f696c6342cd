"""Views: the deterministic augmentations of common/sl_view.c, in numpy.

A view of an image row is the row transformed by a recipe whose random
parameters come from (job seed, sample, view) alone. This module computes
the same parameters and the same pixels as the C code, bit for bit (u8 and
float32 rows; python_views.sh checks it against sl_view), so a PyTorch
student can train on exactly what a softlabel worker labeled:

    from softlabel.views import Recipe
    r = Recipe.parse("crop=2,flip")
    x = r.apply(row, seed=1, sample=i, view=v)   # row: (..., H, W) array

Recipe text (items joined by ','; "none"): ``rrc=SMIN:SMAX`` (random-resized
crop, area SMIN..SMAX, ratio 3/4..4/3, bilinear back to H x W with
half-pixel centres), ``crop=P`` (zero padding P, random H x W window),
``flip`` (mirror left-right with probability 1/2), applied in that order to
the raw row, before preprocessing. See common/sl_view.h for the draw order.
"""
import math
import struct

import numpy as np

__all__ = ["Recipe", "Params", "seed_of"]

_M64 = (1 << 64) - 1
MAX_PAD = 64
_LR = 0.28768207245178093  # log(4/3), as sl_view.c writes it
_RATIO_MIN, _RATIO_MAX = 3.0 / 4.0, 4.0 / 3.0


def _splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def seed_of(seed, sample, view):
    """sl_view_seed: the generator's seed for (seed, sample, view)."""
    return _splitmix64(_splitmix64(_splitmix64(seed & _M64) ^ (sample & _M64)) ^ (view & 0xFFFFFFFF))


class _Rng:
    """sl_rng: xoshiro256** seeded through splitmix64."""

    def __init__(self, seed):
        s, x = [], seed & _M64
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & _M64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
            s.append(z ^ (z >> 31))
        self.s = s

    @staticmethod
    def _rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & _M64

    def u64(self):
        s = self.s
        result = (self._rotl((s[1] * 5) & _M64, 7) * 9) & _M64
        t = (s[1] << 17) & _M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def float(self):
        return (self.u64() >> 40) * (1.0 / 16777216.0)

    def below(self, n):
        limit = _M64 - _M64 % n
        while True:
            x = self.u64()
            if x < limit:
                return x % n


def _exp_small(x):
    term = total = 1.0
    for k in range(1, 13):
        term = term * x / k
        total += term
    return total


def _f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


class Params:
    """The parameters of one view (sl_view_params)."""
    __slots__ = ("rrc", "box_top", "box_left", "box_h", "box_w", "crop", "dy", "dx", "flip")

    def __init__(self):
        self.rrc = self.crop = self.flip = 0
        self.box_top = self.box_left = self.box_h = self.box_w = 0
        self.dy = self.dx = 0

    def astuple(self):
        return tuple(getattr(self, k) for k in self.__slots__)


class Recipe:
    """A view recipe: rrc=(lo, hi) or None, pad (0: no crop), flip."""

    def __init__(self, rrc=None, pad=0, flip=False):
        self.rrc = None if rrc is None else (_f32(rrc[0]), _f32(rrc[1]))
        self.pad, self.flip = int(pad), bool(flip)
        if self.rrc is not None and not (0 < self.rrc[0] <= self.rrc[1] <= 1):
            raise ValueError("rrc=SMIN:SMAX wants 0 < SMIN <= SMAX <= 1")
        if not 0 <= self.pad <= MAX_PAD:
            raise ValueError("crop=P wants P in 1..%d" % MAX_PAD)

    @classmethod
    def parse(cls, text):
        """The recipe text sl_view_recipe_parse reads."""
        if not text:
            raise ValueError("empty view recipe (want items such as crop=2,flip, or none)")
        if text == "none":
            return cls()
        rrc, pad, flip, seen = None, 0, False, set()
        for item in text.split(","):
            name = item.split("=", 1)[0] if "=" in item else item
            if name in seen:
                raise ValueError("'%s' given twice" % name)
            seen.add(name)
            if item == "flip":
                flip = True
            elif item.startswith("crop="):
                v = item[5:]
                if not v.isdigit() or not 1 <= int(v) <= MAX_PAD:
                    raise ValueError("'%s': want crop=P, P pixels of padding 1..%d" % (item, MAX_PAD))
                pad = int(v)
            elif item.startswith("rrc="):
                try:
                    lo, hi = (float(v) for v in item[4:].split(":"))
                except ValueError:
                    raise ValueError("'%s': want rrc=SMIN:SMAX" % item) from None
                if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi <= 1):
                    raise ValueError("'%s': want rrc=SMIN:SMAX, 0 < SMIN <= SMAX <= 1" % item)
                rrc = (lo, hi)
            else:
                raise ValueError("unknown view item '%s' (want rrc=SMIN:SMAX, crop=P, flip or none)" % item)
        return cls(rrc, pad, flip)

    def __str__(self):
        items = []
        if self.rrc is not None:
            items.append("rrc=%.9g:%.9g" % self.rrc)
        if self.pad:
            items.append("crop=%d" % self.pad)
        if self.flip:
            items.append("flip")
        return ",".join(items) or "none"

    def pack(self):
        """sl_view_recipe_pack's 12 bytes."""
        lo, hi = self.rrc if self.rrc is not None else (0.0, 0.0)
        return struct.pack("<BBHff", 1, int(self.flip), self.pad, lo, hi)

    @classmethod
    def unpack(cls, raw):
        """The recipe from sl_view_recipe_pack's 12 bytes (ValueError for
        another length or version)."""
        if len(raw) != 12:
            raise ValueError("view recipe of %d bytes, want 12" % len(raw))
        ver, flip, pad, lo, hi = struct.unpack("<BBHff", raw)
        if ver != 1:
            raise ValueError("view recipe version %d, this package reads 1" % ver)
        return cls(None if lo == 0 and hi == 0 else (lo, hi), pad, flip)

    def format(self):
        """The canonical text (sl_view_recipe_format)."""
        return str(self)

    def draw(self, seed, sample, view, H, W):
        """sl_view_draw: the parameters of view (seed, sample, view)."""
        g, p = _Rng(seed_of(seed, sample, view)), Params()
        if self.rrc is not None:
            p.rrc = 1
            self._draw_box(g, H, W, p)
        if self.pad:
            p.crop = 1
            p.dy = g.below(2 * self.pad + 1) - self.pad
            p.dx = g.below(2 * self.pad + 1) - self.pad
        if self.flip:
            p.flip = g.u64() >> 63
        return p

    def _draw_box(self, g, H, W, p):
        area, (lo, hi) = float(H) * W, self.rrc
        for _ in range(10):
            frac = lo + g.float() * (hi - lo)
            aspect = _exp_small(-_LR + g.float() * (_LR - -_LR))
            target = area * frac
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= W and 0 < h <= H:
                p.box_top = g.below(H - h + 1)
                p.box_left = g.below(W - w + 1)
                p.box_h, p.box_w = h, w
                return
        in_ratio, w, h = W / H, W, H
        if in_ratio < _RATIO_MIN:
            h = round(w / _RATIO_MIN)
        elif in_ratio > _RATIO_MAX:
            w = round(h * _RATIO_MAX)
        p.box_top, p.box_left, p.box_h, p.box_w = (H - h) // 2, (W - w) // 2, h, w

    def apply(self, row, seed, sample, view, params=None):
        """The view of row (an array whose last two axes are H, W; uint8 or
        float32), as a new array of the same shape and dtype."""
        x = np.asarray(row)
        if x.ndim < 2:
            raise ValueError("views transform images: rows need a shape [..., H, W], not %d dimension(s)" % x.ndim)
        if x.dtype not in (np.uint8, np.float32):
            raise ValueError("views take uint8 or float32 rows, not %s" % x.dtype)
        H, W = x.shape[-2:]
        p = params if params is not None else self.draw(seed, sample, view, H, W)
        if p.rrc:
            x = _resize(x, p)
        if p.crop or p.flip:
            x = _shift(x, p)
        return x if x is not row else x.copy()


def _src_index(n_out, box, n_in):
    f = np.float32
    scale = f(box) / f(n_out)
    s = scale * (np.arange(n_out, dtype=np.float32) + f(0.5)) - f(0.5)
    s = np.where(s < 0, f(0), s).astype(np.float32)
    i0 = s.astype(np.int64)
    i1 = i0 + (i0 < box - 1)
    return i0, i1, (s - i0.astype(np.float32)).astype(np.float32)


def _resize(x, p):
    H, W = x.shape[-2:]
    f = np.float32
    y0, y1, ly1 = _src_index(H, p.box_h, H)
    x0, x1, lx1 = _src_index(W, p.box_w, W)
    ly0, lx0 = (f(1) - ly1).astype(f), (f(1) - lx1).astype(f)
    src = x.astype(np.float32)
    r0, r1 = p.box_top + y0, p.box_top + y1
    c0, c1 = p.box_left + x0, p.box_left + x1
    a = src[..., r0[:, None], c0[None, :]]
    b = src[..., r0[:, None], c1[None, :]]
    c = src[..., r1[:, None], c0[None, :]]
    d = src[..., r1[:, None], c1[None, :]]
    LY0, LY1 = ly0[:, None], ly1[:, None]
    LX0, LX1 = lx0[None, :], lx1[None, :]
    # The C expression, one float32 rounding per operation.
    v = LY0 * (LX0 * a + LX1 * b) + LY1 * (LX0 * c + LX1 * d)
    if x.dtype == np.uint8:
        return np.clip(np.rint(v), 0, 255).astype(np.uint8)
    return v.astype(np.float32)


def _shift(x, p):
    H, W = x.shape[-2:]
    dy, dx = (p.dy, p.dx) if p.crop else (0, 0)
    ys = np.arange(H) + dy
    xs = (np.arange(W)[::-1] if p.flip else np.arange(W)) + dx
    out = np.zeros_like(x)
    oky, okx = (ys >= 0) & (ys < H), (xs >= 0) & (xs < W)
    out[..., np.nonzero(oky)[0][:, None], np.nonzero(okx)[0][None, :]] = \
        x[..., ys[oky][:, None], xs[okx][None, :]]
    return out
