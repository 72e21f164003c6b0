"""Colouring the demo's figures: garment patterns, seam/fold shading and a fixed fabric/sensor grain."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .figures import Painter


def _smooth_noise(rng, h, w, cell):
    """Low-frequency noise in [-1, 1] (bilinear upsampling of a coarse random grid)."""
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    g = Image.fromarray(rng.uniform(0, 255, (gh, gw)).astype(np.uint8), "L")
    g = g.resize((w, h), Image.BILINEAR)
    return np.asarray(g, np.float32) / 127.5 - 1.0


# ----------------------------------------------------------------------------------------------
# Colouring: patterns, shading, compositing
# ----------------------------------------------------------------------------------------------
def _pattern(rng, inst: dict, yy, xx, u: float, base) -> np.ndarray:
    """Texture (h, w, 3) for one instance over the grid yy (h,1), xx (1,w) in image pixels."""
    pat = inst["pat"]
    kind = pat["kind"]
    h, w = yy.shape[0], xx.shape[1]
    out = np.empty((h, w, 3), np.float32)
    out[:] = base
    sc = pat.get("scale", 1.0)
    if kind in ("stripes", "check"):
        period = max(3.0, 0.28 * u * sc)
        a = math.radians(pat["angle"])
        t = (xx * math.cos(a) + yy * math.sin(a)) / period
        s1 = (t % 1.0) < 0.45
        if kind == "stripes":
            out[np.broadcast_to(s1, (h, w))] = pat["c2"]
        else:
            t2 = (-xx * math.sin(a) + yy * math.cos(a)) / period
            s2 = (t2 % 1.0) < 0.45
            mix = (s1.astype(np.float32) + s2.astype(np.float32))[..., None] * 0.33
            out = out * (1 - mix) + pat["c2"] * mix
            thin = ((t % 1.0) < 0.08) | ((t2 % 1.0) < 0.08)
            out[np.broadcast_to(thin, (h, w))] = pat["c3"]
    elif kind == "dots":
        sp = max(4.0, 0.3 * u * sc)
        r = sp * 0.27
        row = np.floor(yy / sp)
        dx = (xx + (row % 2) * sp / 2) % sp - sp / 2
        dy = yy % sp - sp / 2
        out[(dx * dx + dy * dy) < r * r] = pat["c2"]
    elif kind == "denim":
        tw = np.sin((xx + yy) * (2.2 / max(1.0, u * 0.05)))
        n = rng.normal(0, 1, (h, w)).astype(np.float32)
        fade = _smooth_noise(rng, h, w, max(4.0, u * 0.6))
        out *= (1 + 0.05 * tw + 0.06 * n + 0.1 * fade)[..., None]
    elif kind == "leather":
        hl = np.clip(_smooth_noise(rng, h, w, max(3.0, u * 0.4)), 0, 1) ** 2
        out += (hl * 70)[..., None]
    elif kind == "hair":
        streak = np.sin(xx * (6.0 / max(1.0, u * 0.08)) + rng.uniform(0, 6))
        out *= (1 + 0.08 * np.broadcast_to(streak, (h, w)))[..., None]
    elif kind in ("floral", "leopard"):
        img = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB")
        dr = ImageDraw.Draw(img)
        step = max(3.0, (0.35 if kind == "floral" else 0.3) * u * sc)
        n = int(min(400, (h * w) / (step * step) * 1.1)) + 1
        cx = rng.uniform(0, w, n)
        cy = rng.uniform(0, h, n)
        c2 = tuple(int(v) for v in pat["c2"])
        c3 = tuple(int(v) for v in pat["c3"])
        r = step * 0.22
        for i in range(n):
            x, y = cx[i], cy[i]
            if kind == "floral":
                for k in range(5):
                    a = k * 1.2566
                    px, py = x + r * math.cos(a), y + r * math.sin(a)
                    dr.ellipse([px - r * .7, py - r * .7, px + r * .7, py + r * .7], fill=c2)
                dr.ellipse([x - r * .45, y - r * .45, x + r * .45, y + r * .45], fill=c3)
            else:
                rr = r * rng.uniform(0.8, 1.5)
                dr.ellipse([x - rr, y - rr * .8, x + rr, y + rr * .8], outline=(40, 28, 20),
                           width=max(1, int(rr * 0.45)))
                dr.ellipse([x - rr * .4, y - rr * .3, x + rr * .4, y + rr * .3], fill=c3)
        out = np.asarray(img, np.float32)
    return out


def render_figure_rgb(rng, P: Painter, W: int, H: int):
    """Colour the label image. Returns (crop box, rgb float crop, fg bool crop, full label array)."""
    lab = np.asarray(P.label)
    rows = np.flatnonzero(lab.any(1))
    cols = np.flatnonzero(lab.any(0))
    pad = 3
    y0, y1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, H)
    x0, x1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, W)
    crop = lab[y0:y1, x0:x1]
    lut = np.zeros((256, 3), np.float32)
    for ins in P.inst:
        lut[ins["id"]] = ins["col"]
    rgb = lut[crop]
    u = P.fig.u
    for ins in P.inst:
        if ins["pat"]["kind"] in ("plain", "skin"):
            continue
        m = crop == ins["id"]
        if not m.any():
            continue
        r = np.flatnonzero(m.any(1))
        c = np.flatnonzero(m.any(0))
        sy, sx = slice(r[0], r[-1] + 1), slice(c[0], c[-1] + 1)
        yy = np.arange(y0 + r[0], y0 + r[-1] + 1, dtype=np.float32)[:, None]
        xx = np.arange(x0 + c[0], x0 + c[-1] + 1, dtype=np.float32)[None, :]
        tex = _pattern(rng, ins, yy, xx, u, ins["col"])
        mm = m[sy, sx]
        sub = rgb[sy, sx]
        sub[mm] = tex[mm]
    fg = crop > 0
    # shading: darker near every instance boundary (volume + seams), side light, folds, fabric
    seam = np.zeros(crop.shape, np.uint8)
    seam[:, 1:] |= crop[:, 1:] != crop[:, :-1]
    seam[1:, :] |= crop[1:, :] != crop[:-1, :]
    seam_img = Image.fromarray(seam * 255, "L").filter(ImageFilter.GaussianBlur(max(0.8, 0.09 * u)))
    s = np.asarray(seam_img, np.float32) / 255.0
    shade = 1.0 - 0.45 * np.minimum(1.0, s * 2.2)
    xs = (np.arange(x0, x1, dtype=np.float32) - P.fig.cx) / (1.4 * u)
    shade = shade * (1.0 + 0.12 * P.fig.light * np.clip(xs, -1, 1))[None, :]
    folds = np.asarray(P.shade.crop((x0, y0, x1, y1)))
    own = np.asarray(P.owner.crop((x0, y0, x1, y1))) == crop
    folds = Image.fromarray(np.where(own, folds, 255).astype(np.uint8), "L")
    folds = folds.filter(ImageFilter.GaussianBlur(max(0.5, 0.02 * u)))
    shade = shade * (np.asarray(folds, np.float32) / 255.0)
    g = grain_tile()
    hh, ww = crop.shape
    if hh <= g.shape[0] and ww <= g.shape[1]:  # fabric grain
        oy, ox = int(rng.integers(0, g.shape[0] - hh + 1)), int(rng.integers(0, g.shape[1] - ww + 1))
        shade = shade * (1.0 + 0.02 * g[oy:oy + hh, ox:ox + ww, 0])
    rgb *= shade[..., None]
    return (y0, y1, x0, x1), rgb, fg, lab



_TILE: dict = {}


def grain_tile() -> np.ndarray:
    """Fixed N(0,1) noise tile (seed-independent constant, so reuse keeps determinism)."""
    if "g" not in _TILE:
        r = np.random.default_rng(20230817)
        _TILE["g"] = r.standard_normal((1024, 1024, 3), dtype=np.float32)
    return _TILE["g"]


def quantised_grain(amp: float, offset: int) -> np.ndarray:
    """The grain tile times ``amp``, shifted by +``offset`` into uint8 (cached per amplitude)."""
    key = ("u8", round(amp, 6))
    if key not in _TILE:
        _TILE[key] = np.clip(grain_tile() * amp + offset + 0.5, 0, 2 * offset).astype(np.uint8)
    return _TILE[key]
