"""Deterministic synthetic stand-ins for FashionStyle14 and ModaNet (plus a DUTS-like saliency set).

The demo writes the *real* raw distribution formats (see docs / reference datasets.md A and B) so the
same prepare rules run on demo and real data:

* ``FashionStyle14_v1/dataset/<style>/<32hex>.jpg`` + header-less ``train.csv/val.csv/test.csv``;
* ``modanet/annotations/modanet2018_instances_{train,val}.json`` (COCO, val without annotations) and
  ``modanet/photos.lmdb`` (PaperDoll layout: key ``str(id)``, value JPEG bytes);
* ``truth/...`` true foreground masks (not part of the raw data; used to score saliency masks);
* ``sod_train/{images,masks}`` a small salient-object training set (stands in for DUTS);
* ``demo_info.json``.

Every image shows a person-like figure (skin, hair, garments, accessories) on a cluttered
street/room/park/studio background.  The FS14 style is carried by distributions over garment shapes,
palettes and patterns that overlap between styles, so a classifier must look at the garments.
``bg_label_correlation`` optionally lets the background carry the class, ``clutter`` scales the
background detail (0 = flat gradient).  Each image uses its own ``SeedSequence([seed, stream, ...])``
so files are byte-identical for identical arguments.
"""

from __future__ import annotations

import io
import json
import math
import numbers
import os
import shutil
from pathlib import Path

import contourpy  # via matplotlib; marching squares for the ModaNet polygons
import lmdb
import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

__all__ = [
    "FS14_STYLES",
    "MODANET_CATEGORIES",
    "MODANET_NAMES",
    "JPEG_QUALITY",
    "generate_demo",
]

FS14_STYLES = (
    "conservative", "dressy", "ethnic", "fairy", "feminine", "gal", "girlish",
    "kireime-casual", "lolita", "mode", "natural", "retro", "rock", "street",
)
MODANET_NAMES = (
    "bag", "belt", "boots", "footwear", "outer", "dress", "sunglasses",
    "pants", "top", "shorts", "skirt", "headwear", "scarf/tie",
)
MODANET_CATEGORIES = tuple(
    {"supercategory": "fashion", "id": i, "name": n} for i, n in enumerate(MODANET_NAMES, start=1)
)
_CAT_ID = {n: i for i, n in enumerate(MODANET_NAMES, start=1)}

JPEG_QUALITY = 90
MODANET_SIZE = (400, 600)  # W x H, every real ModaNet image
_MODANET_ID_RANGE = (30, 132670)  # inclusive, as in the real val file
_FS14_DIR = "FashionStyle14_v1"
_OUTPUT_ENTRIES = ("FashionStyle14_v1", "modanet", "truth", "sod_train", "demo_info.json")

# Independent random streams (first entropy word after the seed).
_STREAM_FS14, _STREAM_MODANET, _STREAM_SOD, _STREAM_SPLIT, _STREAM_IDS = 1, 2, 3, 4, 5

_MIX = 0.22  # probability that an attribute group is drawn from another style (inter-class overlap)

# ----------------------------------------------------------------------------------------------
# Colours and style profiles
# ----------------------------------------------------------------------------------------------
_C = {
    "black": (22, 22, 24), "charcoal": (55, 55, 60), "grey": (128, 128, 132),
    "lightgrey": (190, 190, 192), "white": (238, 236, 232), "offwhite": (228, 222, 210),
    "cream": (240, 230, 205), "beige": (212, 192, 160), "camel": (184, 140, 92),
    "khaki": (165, 155, 115), "brown": (110, 72, 45), "darkbrown": (70, 45, 30),
    "navy": (32, 40, 78), "denimblue": (70, 98, 145), "lightblue": (165, 190, 220),
    "royalblue": (40, 70, 175), "skyblue": (185, 212, 238), "teal": (30, 112, 112),
    "turquoise": (45, 155, 155), "mint": (185, 228, 205), "sage": (160, 178, 145),
    "olive": (112, 115, 62), "green": (55, 140, 70), "emerald": (20, 92, 62),
    "mustard": (200, 152, 42), "yellow": (240, 205, 60), "softyellow": (242, 228, 165),
    "orange": (215, 115, 40), "terracotta": (188, 92, 55), "red": (190, 35, 40),
    "wine": (112, 25, 42), "burgundy": (128, 30, 55), "pink": (240, 160, 185),
    "hotpink": (228, 60, 140), "pastelpink": (245, 205, 215), "blush": (236, 192, 185),
    "lavender": (205, 188, 232), "lilac": (190, 160, 210), "purple": (100, 50, 130),
    "champagne": (230, 212, 172), "silver": (192, 192, 202), "gold": (200, 165, 80),
}
# One signature colour per style, far apart in RGB: with probability ``style_signal`` the main
# garment wears it, which makes the styles learnable from the garments alone (a known signal that
# background clutter can hide and background removal can reveal).
_SIGNATURE = {
    "conservative": (30, 40, 90), "dressy": (120, 20, 40), "ethnic": (200, 90, 40),
    "fairy": (190, 240, 210), "feminine": (250, 190, 200), "gal": (235, 40, 150),
    "girlish": (230, 40, 40), "kireime-casual": (150, 180, 230), "lolita": (160, 110, 210),
    "mode": (20, 20, 20), "natural": (110, 120, 50), "retro": (220, 170, 30),
    "rock": (70, 20, 90), "street": (40, 80, 200),
}
_SKINS = np.array([(241, 206, 182), (232, 190, 160), (222, 170, 138), (196, 142, 108),
                   (165, 112, 82), (112, 76, 56)], np.float32)
_SKIN_W = (0.24, 0.3, 0.2, 0.12, 0.08, 0.06)
_SKIN_W_TAN = (0.04, 0.12, 0.3, 0.3, 0.14, 0.1)
_HAIRS = {
    "black": (24, 20, 20), "darkbrown": (55, 38, 30), "brown": (95, 65, 45),
    "lightbrown": (150, 108, 68), "blonde": (215, 182, 128), "pink": (230, 160, 190),
    "lavender": (182, 162, 222), "silver": (200, 200, 210), "red": (140, 52, 40),
}


def _style(outfit, skirt_len, flare, pants_fit, pants_len, top_hem, sleeve, palette, pattern,
           outer, outer_len, boots, heel, bag, belt, hat, hat_kind, sunglasses, scarf, tie,
           hair_len, hair_col, tan=False, loose=(0.95, 1.15), neck=(0.08, 0.3)):
    return dict(outfit=outfit, skirt_len=skirt_len, flare=flare, pants_fit=pants_fit,
                pants_len=pants_len, top_hem=top_hem, sleeve=sleeve, palette=palette,
                pattern=pattern, outer=outer, outer_len=outer_len, boots=boots, heel=heel,
                bag=bag, belt=belt, hat=hat, hat_kind=hat_kind, sunglasses=sunglasses,
                scarf=scarf, tie=tie, hair_len=hair_len, hair_col=hair_col, tan=tan,
                loose=loose, neck=neck)


# Each style is a distribution; several share palettes/garments on purpose (overlap between classes).
_STYLES = {
    "conservative": _style(
        {"top_skirt": .4, "top_pants": .4, "dress": .2}, {"knee": .6, "midi": .4}, (1.0, 1.35),
        {"straight": .6, "skinny": .3, "wide": .1}, {"full": .85, "crop": .15},
        {"tucked": .5, "regular": .5}, {"short": .3, "elbow": .2, "long": .5},
        ["navy", "beige", "white", "grey", "camel", "lightblue", "charcoal", "offwhite"],
        {"plain": .7, "stripes": .15, "check": .15}, .45, {"hip": .7, "thigh": .3}, .1, .4,
        .6, .3, .05, {"brim": 1.}, .03, .12, .05,
        {"short": .3, "medium": .5, "long": .2}, {"darkbrown": .5, "black": .3, "brown": .2}),
    "dressy": _style(
        {"dress": .7, "top_skirt": .2, "top_pants": .1}, {"knee": .3, "midi": .3, "maxi": .4},
        (1.1, 1.6), {"straight": .5, "wide": .5}, {"full": 1.}, {"tucked": .7, "regular": .3},
        {"none": .5, "short": .2, "long": .3},
        ["black", "wine", "navy", "champagne", "emerald", "silver", "burgundy", "white"],
        {"plain": .82, "dots": .06, "floral": .12}, .2, {"hip": .4, "long": .6}, .05, .85,
        .8, .15, .05, {"brim": 1.}, .05, .06, .02,
        {"medium": .3, "long": .4, "bun": .3}, {"black": .4, "darkbrown": .4, "brown": .2}),
    "ethnic": _style(
        {"dress": .4, "top_skirt": .35, "top_pants": .25}, {"midi": .3, "maxi": .7}, (1.2, 1.8),
        {"wide": .8, "straight": .2}, {"full": .8, "crop": .2}, {"regular": .6, "long": .4},
        {"short": .3, "elbow": .4, "long": .3},
        ["terracotta", "mustard", "turquoise", "red", "navy", "brown", "cream", "orange", "teal"],
        {"floral": .3, "stripes": .2, "check": .15, "dots": .1, "plain": .2, "leopard": .05},
        .2, {"thigh": .5, "long": .5}, .15, .2,
        .5, .35, .3, {"brim": .5, "beanie": .5}, .08, .4, .0,
        {"medium": .3, "long": .6, "bun": .1}, {"black": .5, "darkbrown": .4, "red": .1}),
    "fairy": _style(
        {"dress": .55, "top_skirt": .45}, {"knee": .2, "midi": .4, "maxi": .4}, (1.4, 2.1),
        {"wide": 1.}, {"full": 1.}, {"regular": .6, "tucked": .4},
        {"short": .3, "elbow": .3, "long": .4},
        ["pastelpink", "lavender", "mint", "cream", "skyblue", "white", "softyellow", "blush"],
        {"floral": .35, "plain": .4, "dots": .15, "check": .1}, .2, {"hip": .6, "thigh": .4},
        .1, .2, .4, .2, .35, {"brim": .4, "bow": .4, "beret": .2}, .02, .15, .0,
        {"medium": .3, "long": .7},
        {"lightbrown": .3, "pink": .2, "lavender": .15, "blonde": .15, "brown": .2}),
    "feminine": _style(
        {"dress": .4, "top_skirt": .45, "top_pants": .15}, {"knee": .5, "midi": .5}, (1.2, 1.7),
        {"straight": .5, "wide": .5}, {"full": .7, "crop": .3}, {"tucked": .5, "regular": .5},
        {"none": .15, "short": .35, "elbow": .25, "long": .25},
        ["blush", "white", "beige", "lightblue", "lilac", "softyellow", "navy", "pastelpink",
         "offwhite"],
        {"floral": .3, "plain": .5, "dots": .1, "stripes": .1}, .3, {"hip": .7, "thigh": .3},
        .1, .6, .6, .3, .12, {"brim": .6, "beret": .4}, .06, .15, .0,
        {"medium": .5, "long": .5}, {"brown": .5, "lightbrown": .3, "darkbrown": .2}),
    "gal": _style(
        {"top_skirt": .45, "top_shorts": .3, "dress": .15, "top_pants": .1}, {"mini": 1.},
        (1.0, 1.35), {"skinny": 1.}, {"full": 1.}, {"crop": .4, "regular": .6},
        {"none": .5, "short": .3, "long": .2},
        ["black", "white", "hotpink", "camel", "red", "denimblue", "gold", "beige"],
        {"plain": .45, "leopard": .22, "denim": .15, "stripes": .08, "dots": .1}, .3,
        {"hip": .8, "thigh": .2}, .5, .8, .6, .35, .1, {"cap": .5, "brim": .5}, .35, .05, .0,
        {"medium": .3, "long": .7}, {"blonde": .35, "lightbrown": .35, "brown": .3}, tan=True),
    "girlish": _style(
        {"top_skirt": .5, "dress": .3, "top_shorts": .2}, {"mini": .6, "knee": .4}, (1.3, 1.8),
        {"straight": 1.}, {"full": 1.}, {"tucked": .6, "regular": .4},
        {"short": .5, "elbow": .2, "long": .3},
        ["pink", "red", "white", "navy", "lightblue", "softyellow", "pastelpink", "mint"],
        {"dots": .25, "check": .25, "plain": .35, "stripes": .15}, .25, {"hip": 1.}, .2, .3,
        .5, .2, .25, {"beret": .5, "bow": .5}, .03, .1, .05,
        {"medium": .6, "long": .4}, {"brown": .5, "darkbrown": .3, "lightbrown": .2}),
    "kireime-casual": _style(
        {"top_pants": .6, "top_skirt": .3, "dress": .1}, {"knee": .5, "midi": .5}, (1.0, 1.3),
        {"straight": .5, "skinny": .4, "wide": .1}, {"full": .6, "crop": .4},
        {"tucked": .5, "regular": .5}, {"short": .4, "elbow": .2, "long": .4},
        ["white", "navy", "beige", "grey", "lightblue", "black", "khaki", "offwhite"],
        {"plain": .7, "stripes": .2, "check": .1}, .4, {"hip": .6, "thigh": .4}, .05, .3,
        .6, .35, .05, {"brim": 1.}, .1, .1, .03,
        {"short": .3, "medium": .5, "long": .2}, {"darkbrown": .5, "brown": .3, "black": .2}),
    "lolita": _style(
        {"dress": .85, "top_skirt": .15}, {"knee": .8, "midi": .2}, (1.9, 2.5),
        {"straight": 1.}, {"full": 1.}, {"tucked": 1.}, {"short": .5, "long": .5},
        ["pink", "black", "white", "wine", "lavender", "skyblue", "pastelpink", "cream"],
        {"plain": .35, "dots": .2, "check": .2, "floral": .15, "stripes": .1}, .1, {"hip": 1.},
        .3, .2, .5, .1, .7, {"bow": .7, "brim": .3}, .0, .05, .0,
        {"long": .8, "medium": .2}, {"blonde": .3, "black": .3, "pink": .2, "lightbrown": .2}),
    "mode": _style(
        {"top_pants": .5, "dress": .2, "top_skirt": .3}, {"midi": .5, "maxi": .5}, (1.0, 1.3),
        {"wide": .6, "straight": .3, "skinny": .1}, {"full": .8, "crop": .2},
        {"regular": .4, "long": .6}, {"none": .1, "elbow": .3, "long": .6},
        ["black", "black", "charcoal", "white", "grey", "offwhite", "lightgrey"],
        {"plain": .85, "stripes": .1, "check": .05}, .6, {"thigh": .3, "long": .7}, .4, .3,
        .5, .2, .1, {"brim": .5, "beanie": .5}, .25, .15, .05,
        {"short": .5, "medium": .3, "bun": .2}, {"black": .6, "silver": .2, "darkbrown": .2},
        loose=(1.1, 1.35)),
    "natural": _style(
        {"top_skirt": .4, "top_pants": .35, "dress": .25}, {"midi": .4, "maxi": .6}, (1.1, 1.5),
        {"wide": .6, "straight": .4}, {"full": .6, "crop": .4}, {"regular": .6, "long": .4},
        {"short": .3, "elbow": .4, "long": .3},
        ["beige", "cream", "olive", "brown", "white", "sage", "denimblue", "khaki", "offwhite"],
        {"plain": .65, "stripes": .15, "check": .1, "denim": .1}, .3, {"thigh": .6, "long": .4},
        .1, .05, .6, .2, .2, {"brim": .7, "beanie": .3}, .04, .15, .0,
        {"medium": .4, "long": .4, "bun": .2}, {"brown": .4, "darkbrown": .4, "black": .2},
        loose=(1.05, 1.3)),
    "retro": _style(
        {"dress": .45, "top_skirt": .35, "top_pants": .2}, {"knee": .5, "midi": .5}, (1.3, 1.8),
        {"wide": .8, "straight": .2}, {"full": 1.}, {"tucked": .7, "regular": .3},
        {"short": .4, "elbow": .3, "long": .3},
        ["mustard", "brown", "teal", "red", "cream", "orange", "olive", "wine"],
        {"dots": .3, "check": .25, "floral": .15, "stripes": .15, "plain": .15}, .25,
        {"hip": .5, "thigh": .5}, .15, .5, .5, .5, .2, {"beret": .5, "brim": .5}, .15, .25, .03,
        {"short": .3, "medium": .5, "bun": .2}, {"darkbrown": .4, "brown": .3, "red": .3}),
    "rock": _style(
        {"top_pants": .7, "top_skirt": .2, "top_shorts": .1}, {"mini": 1.}, (1.0, 1.3),
        {"skinny": .8, "straight": .2}, {"full": 1.}, {"regular": .7, "crop": .3},
        {"none": .3, "short": .4, "long": .3},
        ["black", "black", "charcoal", "red", "white", "grey", "burgundy", "denimblue"],
        {"plain": .6, "check": .25, "stripes": .1, "leopard": .05}, .6, {"hip": 1.}, .7, .2,
        .3, .4, .15, {"beanie": .6, "cap": .4}, .2, .1, .05,
        {"short": .3, "medium": .4, "long": .3},
        {"black": .5, "silver": .15, "red": .15, "blonde": .2}),
    "street": _style(
        {"top_pants": .6, "top_shorts": .25, "top_skirt": .15}, {"mini": .5, "knee": .5},
        (1.0, 1.4), {"wide": .5, "straight": .5}, {"full": .8, "crop": .2},
        {"regular": .6, "long": .4}, {"short": .6, "long": .4},
        ["orange", "green", "yellow", "royalblue", "black", "white", "grey", "red",
         "denimblue", "khaki"],
        {"plain": .55, "stripes": .15, "denim": .2, "check": .1}, .35, {"hip": 1.}, .2, .0,
        .3, .1, .35, {"cap": .7, "beanie": .3}, .12, .05, .0,
        {"short": .4, "medium": .4, "long": .2}, {"black": .4, "brown": .3, "blonde": .3},
        loose=(1.1, 1.35)),
}

# Background palettes: (wall/sky, floor, accent colours) and preferred scene per style; used only
# when an image's background is drawn "style-specific" (bg_label_correlation).
_BG_STYLE = {
    "conservative": ("room", (215, 205, 185), (150, 120, 90), ("camel", "navy")),
    "dressy": ("room", (72, 46, 40), (50, 34, 30), ("gold", "wine")),
    "ethnic": ("street", (205, 125, 72), (160, 104, 62), ("turquoise", "mustard")),
    "fairy": ("park", (246, 214, 226), (228, 196, 210), ("mint", "lavender")),
    "feminine": ("studio", (242, 238, 232), (222, 214, 204), ("blush", "white")),
    "gal": ("street", (230, 82, 160), (92, 90, 102), ("hotpink", "yellow")),
    "girlish": ("room", (250, 235, 160), (222, 200, 150), ("pink", "red")),
    "kireime-casual": ("street", (168, 174, 180), (128, 130, 136), ("grey", "white")),
    "lolita": ("room", (200, 178, 230), (148, 118, 170), ("pink", "white")),
    "mode": ("studio", (250, 250, 250), (232, 232, 232), ("black", "lightgrey")),
    "natural": ("park", (150, 182, 118), (108, 130, 78), ("green", "beige")),
    "retro": ("room", (172, 110, 58), (120, 80, 50), ("mustard", "teal")),
    "rock": ("street", (40, 40, 48), (30, 30, 36), ("red", "charcoal")),
    "street": ("street", (140, 182, 226), (110, 110, 116), ("orange", "royalblue")),
}
# Style-independent backgrounds: mostly bright neutrals (real FS14 backgrounds are bright).
_BG_WALLS = [(236, 234, 228), (222, 218, 208), (200, 200, 198), (214, 206, 190),
             (180, 196, 214), (226, 222, 214), (172, 170, 166), (206, 214, 222),
             (232, 224, 208), (150, 150, 150), (196, 186, 170), (188, 204, 190),
             (240, 240, 240), (120, 120, 126), (210, 196, 200), (230, 214, 186)]
_BG_FLOORS = [(160, 150, 140), (130, 128, 126), (176, 160, 130), (110, 104, 98),
              (190, 186, 180), (140, 120, 96), (100, 100, 104), (170, 170, 165)]
_SCENES = ("street", "room", "park", "studio")
_SCENE_W = (0.35, 0.3, 0.15, 0.2)


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------
def _pick(rng, weights: dict):
    keys = list(weights)
    p = np.array([weights[k] for k in keys], np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _jit(rng, c, amount=14.0, scale=(0.9, 1.1)):
    c = np.asarray(c, np.float32) * rng.uniform(*scale) + rng.normal(0.0, amount, 3)
    return np.clip(c, 0, 255).astype(np.float32)


def _ell(cx, cy, rx, ry, n=20, a0=0.0, a1=2 * math.pi):
    a = np.linspace(a0, a1, n, endpoint=(a1 - a0) < 2 * math.pi - 1e-9)
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], 1)


def _chain(points, widths, frac=1.0):
    """Polygon of a thick polyline (limb, sleeve, leg), optionally truncated at `frac` of its length."""
    p = np.asarray(points, np.float64)
    w = np.asarray(widths, np.float64)
    if frac < 1.0:
        seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        stop = max(frac, 0.02) * cum[-1]
        k = int(np.searchsorted(cum, stop, side="right"))
        k = min(max(k, 1), len(p) - 1)
        t = (stop - cum[k - 1]) / max(seg[k - 1], 1e-9)
        end = p[k - 1] + t * (p[k] - p[k - 1])
        wend = w[k - 1] + t * (w[k] - w[k - 1])
        p = np.vstack([p[:k], end])
        w = np.concatenate([w[:k], [wend]])
    d = np.diff(p, axis=0)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    tan = np.vstack([d[:1], d[:-1] + d[1:], d[-1:]])
    tan /= np.maximum(np.linalg.norm(tan, axis=1, keepdims=True), 1e-9)
    nrm = np.stack([-tan[:, 1], tan[:, 0]], 1) * (w[:, None] / 2)
    return np.vstack([p + nrm, (p - nrm)[::-1]])


def _smooth_noise(rng, h, w, cell):
    """Low-frequency noise in [-1, 1] (bilinear upsampling of a coarse random grid)."""
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    g = Image.fromarray(rng.uniform(0, 255, (gh, gw)).astype(np.uint8), "L")
    g = g.resize((w, h), Image.BILINEAR)
    return np.asarray(g, np.float32) / 127.5 - 1.0


# ----------------------------------------------------------------------------------------------
# Outfit sampling (what the figure wears)
# ----------------------------------------------------------------------------------------------
def _sample_outfit(rng, style_idx: int, *, boost_accessories: bool = False, signal: float = 0.0,
                   overlap: float = _MIX) -> dict:
    own = _STYLES[FS14_STYLES[style_idx]]

    def st():
        # inter-class overlap: each attribute group may follow another style's distribution
        if rng.random() < overlap:
            return _STYLES[FS14_STYLES[int(rng.integers(len(FS14_STYLES)))]]
        return own

    pal_style = st()
    palette = [_C[n] for n in pal_style["palette"]]
    if rng.random() < 0.15:  # occasional off-palette colour
        palette = palette + [_C[list(_C)[int(rng.integers(len(_C)))]]]
    pat_style = st()
    order = rng.permutation(len(palette))
    used = iter(list(order) * 4)

    def colour():
        return _jit(rng, palette[next(used)], 10.0)

    def pattern(main: bool):
        kind = _pick(rng, pat_style["pattern"])
        if not main and rng.random() < 0.55:
            kind = "plain"
        cols = [_jit(rng, palette[int(rng.integers(len(palette)))], 10.0) for _ in range(2)]
        if rng.random() < 0.35:
            cols[0] = _jit(rng, _C["white"] if rng.random() < 0.6 else _C["black"], 6.0)
        return {"kind": kind, "c2": cols[0], "c3": cols[1], "scale": rng.uniform(0.7, 1.4),
                "angle": float(rng.choice([0.0, 90.0, 45.0, -45.0], p=[.45, .3, .125, .125]))}

    s_out = st()
    kind = _pick(rng, s_out["outfit"])
    main_piece = "top" if rng.random() < 0.5 else "bottom"
    # drawn only when asked for, so signal 0 keeps the random stream (and older demos) unchanged
    signature = signal > 0 and rng.random() < signal

    def main_colour(is_main: bool):
        if signature and is_main:
            return _jit(rng, _SIGNATURE[FS14_STYLES[style_idx]], 10.0)
        return colour()
    o: dict = {"kind": kind, "style": style_idx}
    s_shape = st()
    loose = rng.uniform(*s_shape["loose"])
    if kind == "dress":
        s_sk = st()
        o["dress"] = {"col": main_colour(True), "pat": pattern(True), "len": _pick(rng, s_sk["skirt_len"]),
                      "flare": rng.uniform(*s_sk["flare"]), "sleeve": _pick(rng, s_shape["sleeve"]),
                      "neck": rng.uniform(*s_shape["neck"]), "loose": loose}
    else:
        o["top"] = {"col": main_colour(main_piece == "top"), "pat": pattern(main_piece == "top"),
                    "hem": _pick(rng, s_shape["top_hem"]), "sleeve": _pick(rng, s_shape["sleeve"]),
                    "neck": rng.uniform(*s_shape["neck"]), "loose": loose}
        if kind == "top_skirt":
            s_sk = st()
            o["skirt"] = {"col": main_colour(main_piece == "bottom"), "pat": pattern(main_piece == "bottom"),
                          "len": _pick(rng, s_sk["skirt_len"]), "flare": rng.uniform(*s_sk["flare"])}
        else:
            s_p = st()
            pat = pattern(main_piece == "bottom")
            col = main_colour(main_piece == "bottom")
            if not (signature and main_piece == "bottom") and rng.random() < 0.3:  # jeans: every style
                pat = dict(pat, kind="denim")
                col = _jit(rng, _C["denimblue"] if rng.random() < 0.75 else _C["charcoal"], 12.0)
            o["pants"] = {"col": col, "pat": pat, "fit": _pick(rng, s_p["pants_fit"]),
                          "len": "shorts" if kind == "top_shorts" else _pick(rng, s_p["pants_len"]),
                          "tight": kind == "top_shorts" and rng.random() < 0.5}
    s_acc = st()
    boost = 1.6 if boost_accessories else 1.0
    if rng.random() < s_acc["outer"]:
        oc = colour()
        opat = pattern(False)
        if FS14_STYLES[style_idx] == "rock" and rng.random() < 0.6:
            oc, opat = _jit(rng, _C["black"], 5.0), dict(opat, kind="leather")
        o["outer"] = {"col": oc, "pat": opat, "len": _pick(rng, s_acc["outer_len"]),
                      "gap": rng.uniform(0.0, 0.35) if rng.random() < 0.8 else 0.0,
                      "loose": loose * rng.uniform(1.0, 1.12)}
    shoe_cols = [_C["black"], _C["brown"], _C["white"], _C["beige"], _C["darkbrown"]]
    sc = shoe_cols[int(rng.integers(len(shoe_cols)))] if rng.random() < 0.7 else \
        palette[int(rng.integers(len(palette)))]
    o["shoes"] = {"boots": rng.random() < s_acc["boots"], "col": _jit(rng, sc, 8.0),
                  "heel": rng.random() < s_acc["heel"], "boot_top": rng.uniform(0.05, 0.75)}
    if rng.random() < min(0.95, s_acc["bag"] * boost):
        o["bag"] = {"col": _jit(rng, palette[int(rng.integers(len(palette)))] if rng.random() < .5
                                else shoe_cols[int(rng.integers(len(shoe_cols)))], 10.0),
                    "pat": pattern(False), "kind": _pick(rng, {"hand": .45, "shoulder": .35,
                                                              "clutch": .2}),
                    "size": rng.uniform(0.8, 1.25)}
    if rng.random() < min(0.9, s_acc["belt"] * boost):
        o["belt"] = {"col": _jit(rng, shoe_cols[int(rng.integers(len(shoe_cols)))], 8.0)}
    if rng.random() < min(0.9, max(s_acc["hat"], 0.08 if boost_accessories else 0.0) * boost):
        o["hat"] = {"col": colour(), "kind": _pick(rng, s_acc["hat_kind"])}
    if rng.random() < min(0.9, max(s_acc["sunglasses"], 0.1 if boost_accessories else 0.0) * boost):
        o["sunglasses"] = {"col": _jit(rng, (18, 18, 20) if rng.random() < .7 else (90, 60, 40), 6.)}
    if rng.random() < min(0.9, max(s_acc["scarf"], 0.06 if boost_accessories else 0.0) * boost):
        o["scarf"] = {"col": colour(), "pat": pattern(False)}
    elif kind != "dress" and rng.random() < max(s_acc["tie"], 0.06 if boost_accessories else 0.0):
        o["tie"] = {"col": colour(), "pat": pattern(False)}
    s_body = st()
    o["skin"] = _SKINS[int(rng.choice(6, p=_SKIN_W_TAN if own["tan"] else _SKIN_W))]
    o["skin"] = _jit(rng, o["skin"], 4.0, (0.96, 1.04))
    o["hair_len"] = _pick(rng, s_body["hair_len"])
    o["hair"] = _jit(rng, _HAIRS[_pick(rng, s_body["hair_col"])], 6.0)
    return o


# ----------------------------------------------------------------------------------------------
# Figure geometry: local coordinates in head units u (y down, 0 = top of head, feet at ~7.45)
# ----------------------------------------------------------------------------------------------
_SKIRT_HEM = {"mini": (4.3, 4.7), "knee": (5.45, 5.85), "midi": (6.2, 6.6), "maxi": (7.05, 7.3)}
_TOP_HEM = {"crop": (2.55, 2.8), "tucked": (3.3, 3.5), "regular": (3.75, 4.0), "long": (4.2, 4.5)}
_SLEEVE = {"none": 0.0, "short": 0.28, "elbow": 0.55, "long": 0.97}
_OUTER_HEM = {"hip": (3.7, 4.1), "thigh": (4.4, 4.9), "long": (5.8, 6.6)}


class _Figure:
    """Skeleton of one figure plus the local->pixel transform."""

    def __init__(self, rng, W, H, *, zoom: bool):
        if zoom:  # close-up: feet (and maybe knees) outside the frame
            fh = H * rng.uniform(1.0, 1.3)
            top = H * rng.uniform(0.02, 0.05)
        else:
            fh = H * rng.uniform(0.74, 0.93)
            top = H * rng.uniform(0.02, max(0.03, 0.97 - fh / H))
        self.u = fh / 7.5
        self.wscale = rng.uniform(0.9, 1.1)
        half = 1.45 * self.u
        lo, hi = half, W - half
        self.cx = W / 2 if lo >= hi else W / 2 + rng.uniform(-1, 1) * min((hi - lo) / 2, 0.12 * W)
        self.top = top
        th = math.radians(rng.uniform(-3.0, 3.0))
        self.cos, self.sin = math.cos(th), math.sin(th)
        # body proportions
        self.sw = rng.uniform(0.8, 0.94)
        self.waist = rng.uniform(0.47, 0.56)
        self.hip = rng.uniform(0.68, 0.8)
        self.head_r = (rng.uniform(0.34, 0.39), rng.uniform(0.46, 0.5))
        self.light = rng.uniform(-1, 1)
        # legs: hip joint -> knee -> ankle; one leg may be slightly forward (lower foot)
        self.hipj, self.knee, self.ankle = {}, {}, {}
        fwd = rng.choice([-1, 1]) if rng.random() < 0.5 else 0
        for side in (-1, 1):
            a1 = math.radians(rng.uniform(-2.0, 8.0))
            a2 = a1 + math.radians(rng.uniform(-5.0, 4.0))
            ext = 0.12 if side == fwd else 0.0
            h = np.array([side * 0.34, 3.95])
            k = h + (1.72 + ext / 2) * np.array([side * math.sin(a1), math.cos(a1)])
            a = k + (1.58 + ext / 2) * np.array([side * math.sin(a2), math.cos(a2)])
            self.hipj[side], self.knee[side], self.ankle[side] = h, k, a
        # arms: "down" or hand on hip
        self.sh, self.el, self.wr, self.pose = {}, {}, {}, {}
        for side in (-1, 1):
            s = np.array([side * (self.sw - 0.12), 1.52])
            pose = "hip" if rng.random() < 0.25 else "down"
            if pose == "down":
                a1 = math.radians(rng.uniform(5.0, 18.0))
                a2 = a1 + math.radians(rng.uniform(-6.0, 14.0))
                e = s + 1.42 * np.array([side * math.sin(a1), math.cos(a1)])
                w = e + 1.25 * np.array([side * math.sin(a2), math.cos(a2)])
            else:
                a1 = math.radians(rng.uniform(32.0, 50.0))
                e = s + 1.38 * np.array([side * math.sin(a1), math.cos(a1)])
                w = np.array([side * (self.waist + 0.12), rng.uniform(2.95, 3.3)])
            self.sh[side], self.el[side], self.wr[side], self.pose[side] = s, e, w, pose

    def px(self, pts):
        p = np.asarray(pts, np.float64).reshape(-1, 2)
        x = p[:, 0] * self.wscale
        y = p[:, 1]
        X = self.cx + self.u * (self.cos * x - self.sin * y)
        Y = self.top + self.u * (self.sin * x + self.cos * y)
        return np.stack([X, Y], 1)

    def body_hw(self, y):
        """Half width of the body outline at height y (local units)."""
        return float(np.interp(y, [1.45, 2.1, 3.0, 3.75, 4.1], [self.sw, self.sw - 0.12,
                                                                 self.waist, self.hip, self.hip]))


class _Painter:
    """Draws instances into an 8-bit label image; keeps per-instance colour/pattern records."""

    def __init__(self, fig: _Figure, W: int, H: int):
        self.fig = fig
        self.label = Image.new("L", (W, H), 0)
        self.d = ImageDraw.Draw(self.label)
        # fold lines / face details (multiplicative); `owner` keeps them on their own instance only,
        # so a skirt fold does not show through a coat drawn later
        self.shade = Image.new("L", (W, H), 255)
        self.ds = ImageDraw.Draw(self.shade)
        self.owner = Image.new("L", (W, H), 0)
        self.do = ImageDraw.Draw(self.owner)
        self.inst: list[dict] = []  # in draw order

    def new(self, cat, col, pat=None) -> int:
        iid = len(self.inst) + 1
        self.inst.append({"id": iid, "cat": cat, "col": np.asarray(col, np.float32),
                          "pat": pat or {"kind": "plain"}})
        return iid

    def poly(self, iid, pts):
        p = self.fig.px(pts)
        self.d.polygon([tuple(q) for q in p], fill=iid)

    def line_shade(self, iid, pts, value, width):
        p = [tuple(q) for q in self.fig.px(pts)]
        wpx = max(1, int(round(width * self.fig.u)))
        self.ds.line(p, fill=int(value), width=wpx)
        self.do.line(p, fill=iid, width=wpx)


def _draw_figure(rng, fig: _Figure, o: dict, W: int, H: int) -> _Painter:
    P = _Painter(fig, W, H)
    skin = P.new(None, o["skin"], {"kind": "skin"})
    hair = P.new(None, o["hair"], {"kind": "hair"})
    hr = fig.head_r
    # long hair behind the shoulders
    if o["hair_len"] in ("medium", "long"):
        ly = rng.uniform(1.55, 1.9) if o["hair_len"] == "medium" else rng.uniform(2.4, 3.2)
        hw = rng.uniform(0.46, 0.58)
        back = np.vstack([_ell(0, 0.5, hr[0] + 0.07, hr[1] + 0.03, 12, math.pi, 2 * math.pi),
                          [[hw, ly - 0.2]], _ell(0, ly - 0.2, hw, 0.2, 8, 0, math.pi),
                          [[-hw, ly - 0.2]]])
        P.poly(hair, back)
    # body skin: neck, torso, legs, arms (garments cover most of it later)
    P.poly(skin, [[-0.14, 0.85], [0.14, 0.85], [0.16, 1.5], [-0.16, 1.5]])
    torso = [[-fig.sw, 1.45], [fig.sw, 1.45], [fig.sw - 0.12, 2.1], [fig.waist, 3.0],
             [fig.hip, 3.75], [fig.hip * 0.9, 4.15], [-fig.hip * 0.9, 4.15], [-fig.hip, 3.75],
             [-fig.waist, 3.0], [-(fig.sw - 0.12), 2.1]]
    P.poly(skin, torso)
    for side in (-1, 1):
        P.poly(skin, _chain([fig.hipj[side], fig.knee[side], fig.ankle[side]], [0.6, 0.36, 0.24]))
        P.poly(skin, _ell(*fig.knee[side], 0.18, 0.16, 10))
        P.poly(skin, _chain([fig.sh[side], fig.el[side], fig.wr[side]], [0.34, 0.26, 0.2]))
        P.poly(skin, _ell(*fig.el[side], 0.13, 0.13, 10))
        P.poly(skin, _ell(*fig.sh[side], 0.2, 0.2, 12))
        a = fig.ankle[side]
        P.poly(skin, _ell(a[0] + side * 0.05, a[1] + 0.14, 0.15, 0.14, 12))

    # shoes / boots (both feet = one instance, as in ModaNet)
    sh = o["shoes"]
    sid = P.new("boots" if sh["boots"] else "footwear", sh["col"])
    for side in (-1, 1):
        a = fig.ankle[side]
        rx = 0.16 if sh["heel"] else 0.21
        P.poly(sid, _ell(a[0] + side * 0.06, a[1] + 0.17, rx, 0.15, 14))
        if sh["boots"]:
            k = fig.knee[side]
            t = sh["boot_top"]
            topp = k + t * (a - k)
            P.poly(sid, _chain([topp, a + [0, 0.1]], [0.44 - 0.1 * t, 0.32]))
        elif sh["heel"]:
            P.poly(sid, [[a[0] - 0.1, a[1] + 0.02], [a[0] + 0.1, a[1] + 0.02],
                         [a[0] + 0.13, a[1] + 0.14], [a[0] - 0.13, a[1] + 0.14]])

    def top_poly(hem, neck, loose, narrow_shoulder):
        sw = fig.sw * (0.72 if narrow_shoulder else 1.0)
        pts_l = [[-0.2, 1.22], [-(sw + 0.02), 1.42], [-(fig.sw - 0.1) * min(loose, 1.1), 2.1]]
        ys = [y for y in (3.0, 3.75) if y < hem] + [hem]
        pts_l += [[-fig.body_hw(y) * loose - 0.03, y] for y in ys]
        pts_r = [[-x, y] for x, y in pts_l[::-1]]
        return pts_l + pts_r + [[0.0, 1.22 + neck]]  # closes through the neckline dip

    def sleeves(iid, frac, width):
        if frac <= 0:
            return
        for side in (-1, 1):
            P.poly(iid, _chain([fig.sh[side] + [0, -0.05], fig.el[side], fig.wr[side]],
                               [0.44 * width, 0.34 * width, 0.28 * width], frac))
            P.poly(iid, _ell(*fig.sh[side], 0.22 * width, 0.2 * width, 12))

    def skirt(iid, length, flare, waist_y):
        hem = rng.uniform(*_SKIRT_HEM[length])
        hem_hw = fig.hip * flare + 0.05 * (hem - 4.0)
        n = 9
        t = np.linspace(0, 1, n)
        bell = flare > 1.7
        prof = np.sqrt(t) if bell else t
        ys = waist_y + t * (hem - waist_y)
        hws = fig.waist * 1.02 + (hem_hw - fig.waist) * prof
        hws = np.maximum(hws, [fig.body_hw(y) * 1.03 for y in ys])
        left = np.stack([-hws, ys], 1)
        xs = np.linspace(-hem_hw, hem_hw, 15)
        wave = 0.06 * np.abs(np.sin(xs / hem_hw * math.pi * rng.integers(3, 7))) if bell else 0
        bottom = np.stack([xs, hem + 0.12 * (1 - (xs / hem_hw) ** 2) * min(flare, 2) - wave], 1)
        right = np.stack([hws[::-1], ys[::-1]], 1)
        P.poly(iid, np.vstack([left, bottom, right]))
        for k in range(int(rng.integers(2, 6))):  # folds
            x0 = rng.uniform(-0.7, 0.7)
            P.line_shade(iid, [[x0 * fig.waist, waist_y + 0.3], [x0 * hem_hw * 1.05, hem - 0.05]],
                         rng.uniform(185, 225), 0.05)
        return hem

    def pants(iid, p):
        fit = p["fit"]
        w = {"skinny": [0.6, 0.4, 0.29], "straight": [0.64, 0.5, 0.44],
             "wide": [0.74, 0.74, 0.82]}[fit]
        if p["len"] == "shorts":
            frac = rng.uniform(0.18, 0.32) if p["tight"] else rng.uniform(0.25, 0.45)
        else:
            frac = 1.0 if p["len"] == "full" else rng.uniform(0.78, 0.88)
        wy = rng.uniform(2.85, 3.1)
        P.poly(iid, [[-fig.waist * 1.03, wy], [fig.waist * 1.03, wy], [fig.hip * 1.04, 3.75],
                     [fig.hip * 0.98, 4.1], [0.0, 4.25], [-fig.hip * 0.98, 4.1],
                     [-fig.hip * 1.04, 3.75]])
        for side in (-1, 1):
            a = fig.ankle[side] + ([0, 0.08] if frac >= 1 else [0, 0])
            P.poly(iid, _chain([fig.hipj[side] + [side * 0.02, -0.05], fig.knee[side], a], w, frac))
            if frac > 0.5:  # crease
                P.line_shade(iid, [fig.hipj[side] + [0, 0.4], fig.knee[side] + [0, 0.3]], 215, 0.035)

    def belt_at(y, hw_scale):
        bid = P.new("belt", o["belt"]["col"])
        P.poly(bid, [[-fig.body_hw(y) * hw_scale - 0.03, y - 0.09],
                     [fig.body_hw(y) * hw_scale + 0.03, y - 0.09],
                     [fig.body_hw(y + 0.18) * hw_scale + 0.03, y + 0.09],
                     [-fig.body_hw(y + 0.18) * hw_scale - 0.03, y + 0.09]])
        P.line_shade(bid, [[-0.07, y - 0.06], [0.07, y - 0.06], [0.07, y + 0.06], [-0.07, y + 0.06],
                      [-0.07, y - 0.06]], 120, 0.03)

    # lower body, top, dress
    if o["kind"] == "dress":
        d = o["dress"]
        did = P.new("dress", d["col"], d["pat"])
        P.poly(did, top_poly(3.1, d["neck"], min(d["loose"], 1.05),
                             d["sleeve"] == "none"))
        sleeves(did, _SLEEVE[d["sleeve"]], 1.15 if d["flare"] < 1.8 else 1.45)
        skirt(did, d["len"], d["flare"], 2.95)
        if "belt" in o:
            belt_at(3.0, 1.05)
    else:
        t = o["top"]
        tucked = t["hem"] == "tucked" or (t["hem"] == "crop")
        hem = rng.uniform(*_TOP_HEM[t["hem"]])

        def draw_top():
            tid = P.new("top", t["col"], t["pat"])
            P.poly(tid, top_poly(hem, t["neck"], t["loose"],
                                 t["sleeve"] == "none"))
            sleeves(tid, _SLEEVE[t["sleeve"]], 1.1 * t["loose"])

        if tucked:
            draw_top()
        if "skirt" in o:
            sk = o["skirt"]
            P_id = P.new("skirt", sk["col"], sk["pat"])
            skirt(P_id, sk["len"], sk["flare"], rng.uniform(2.85, 3.05))
        else:
            pn = o["pants"]
            P_id = P.new("shorts" if pn["len"] == "shorts" else "pants", pn["col"], pn["pat"])
            pants(P_id, pn)
        if not tucked:
            draw_top()
        if "belt" in o and (tucked or rng.random() < 0.3):
            belt_at(3.0 if tucked else hem - 0.25, 1.06 if tucked else 1.12 * t["loose"])
    if "tie" in o:
        tie = P.new("scarf/tie", o["tie"]["col"], o["tie"]["pat"])
        P.poly(tie, [[-0.07, 1.3], [0.07, 1.3], [0.05, 1.42], [0.13, 2.75], [0.0, 2.9],
                     [-0.13, 2.75], [-0.05, 1.42]])
    if "outer" in o:
        ot = o["outer"]
        oid = P.new("outer", ot["col"], ot["pat"])
        hem = rng.uniform(*_OUTER_HEM[ot["len"]])
        lo = ot["loose"]
        for side in (-1, 1):
            ys = [y for y in (2.1, 3.0, 3.75) if y < hem] + [hem]
            edge = [[side * max(fig.body_hw(y) * lo * 1.05 + 0.05 + 0.1 * max(0, y - 4.0), 0), y]
                    for y in ys]
            g = ot["gap"] * (0.6 + 0.4 * rng.random())
            pts = ([[side * 0.24, 1.18], [side * (fig.sw + 0.06), 1.38]] + edge
                   + [[side * g, hem], [side * g, 2.3], [side * 0.08, 1.5]])
            P.poly(oid, pts)
            P.line_shade(oid, [[side * 0.2, 1.25], [side * (g + 0.15), 2.25]], 170, 0.03)
        sleeves(oid, rng.uniform(0.9, 1.0), 1.35 * lo)
    if "scarf" in o:
        sc = P.new("scarf/tie", o["scarf"]["col"], o["scarf"]["pat"])
        P.poly(sc, [[-0.32, 1.12], [0.32, 1.12], [0.36, 1.5], [-0.36, 1.5]])
        side = 1 if rng.random() < 0.5 else -1
        ln = rng.uniform(2.2, 3.4)
        P.poly(sc, _chain([[side * 0.12, 1.4], [side * 0.2, ln]], [0.28, 0.24]))
        if rng.random() < 0.5:
            P.poly(sc, _chain([[side * 0.0, 1.4], [-side * 0.05, ln - 0.3]], [0.24, 0.22]))
    # hands, head
    for side in (-1, 1):
        w, e = fig.wr[side], fig.el[side]
        d = (w - e) / max(np.linalg.norm(w - e), 1e-9)
        c = w + 0.14 * d
        P.poly(skin, _ell(c[0], c[1], 0.13, 0.16, 12))
    P.poly(skin, _ell(0, 0.55, hr[0], hr[1], 24))
    # face details go into the shade layer (they are skin pixels, not separate instances)
    for side in (-1, 1):
        P.line_shade(skin, [[side * 0.2, 0.52], [side * 0.09, 0.52]], 70, 0.05)
        P.line_shade(skin, [[side * 0.21, 0.42], [side * 0.08, 0.41]], 120, 0.035)
    P.line_shade(skin, [[-0.09, 0.8], [0.09, 0.8]], 150, 0.04)
    # hair on top of the head (+ fringe), bun
    cap = _ell(0, 0.5, hr[0] + 0.04, hr[1] + 0.02, 16, math.pi - 0.35, 2 * math.pi + 0.35)
    fringe_y = rng.uniform(0.28, 0.4)
    cap = np.vstack([cap, [[hr[0] * 0.6, fringe_y], [0.0, fringe_y + 0.03],
                           [-hr[0] * 0.6, fringe_y]]])
    P.poly(hair, cap)
    if o["hair_len"] == "bun":
        P.poly(hair, _ell(0, 0.02, 0.2, 0.17, 12))
    if "sunglasses" in o:
        gid = P.new("sunglasses", o["sunglasses"]["col"])
        for side in (-1, 1):
            P.poly(gid, _ell(side * 0.15, 0.53, 0.12, 0.085, 12))
        P.poly(gid, [[-0.05, 0.5], [0.05, 0.5], [0.05, 0.53], [-0.05, 0.53]])
    if "hat" in o:
        h = o["hat"]
        hid = P.new("headwear", h["col"])
        k = h["kind"]
        if k == "brim":
            P.poly(hid, _ell(0, 0.24, rng.uniform(0.62, 0.92), 0.13, 20))
            P.poly(hid, np.vstack([_ell(0, 0.0, 0.37, 0.28, 12, math.pi, 2 * math.pi),
                                   [[0.4, 0.25], [-0.4, 0.25]]]))
            P.line_shade(hid, [[-0.38, 0.17], [0.38, 0.17]], 150, 0.06)
        elif k == "cap":
            P.poly(hid, _ell(0, 0.34, 0.41, 0.34, 14, math.pi, 2 * math.pi))
            side = rng.choice([-1, 1])
            P.poly(hid, _ell(side * 0.12, 0.35, 0.36, 0.07, 14))
        elif k == "beanie":
            P.poly(hid, np.vstack([_ell(0, 0.33, 0.41, 0.36, 14, math.pi, 2 * math.pi),
                                   [[0.42, 0.42], [-0.42, 0.42]]]))
            P.line_shade(hid, [[-0.4, 0.3], [0.4, 0.3]], 170, 0.04)
        elif k == "beret":
            P.poly(hid, _ell(rng.uniform(-0.1, 0.1), 0.12, 0.46, 0.16, 16))
        else:  # bow
            side = rng.uniform(-0.15, 0.15)
            P.poly(hid, [[side, 0.08], [side - 0.32, -0.1], [side - 0.3, 0.24]])
            P.poly(hid, [[side, 0.08], [side + 0.32, -0.1], [side + 0.3, 0.24]])
            P.poly(hid, _ell(side, 0.08, 0.08, 0.07, 10))
    if "bag" in o:
        b = o["bag"]
        bid = P.new("bag", b["col"], b["pat"])
        sz = b["size"]
        side = 1 if rng.random() < 0.5 else -1
        if b["kind"] != "shoulder" and fig.pose[side] != "down":
            side = -side
        if b["kind"] == "shoulder" or fig.pose[side] != "down":
            cross = rng.random() < 0.5
            s0 = np.array([(-side if cross else side) * (fig.sw - 0.3), 1.35])
            c = np.array([side * (fig.hip + 0.18 * sz), rng.uniform(3.5, 4.3)])
            P.poly(bid, _chain([s0, c + [0, -0.25]], [0.06, 0.06]))
            wv, hv = 0.62 * sz, 0.5 * sz
        else:
            w = fig.wr[side]
            wv, hv = (0.6 * sz, 0.3 * sz) if b["kind"] == "clutch" else (0.75 * sz, 0.6 * sz)
            c = w + np.array([side * 0.05, hv / 2 + (0.0 if b["kind"] == "clutch" else 0.25)])
            if b["kind"] == "hand":
                P.poly(bid, _chain(_ell(c[0], c[1] - hv / 2, wv * 0.35, 0.3, 9, math.pi,
                                        2 * math.pi), np.full(9, 0.05)))
        rect = [[c[0] - wv / 2, c[1] - hv / 2], [c[0] + wv / 2, c[1] - hv / 2],
                [c[0] + wv / 2 * 1.05, c[1] + hv / 2], [c[0] - wv / 2 * 1.05, c[1] + hv / 2]]
        P.poly(bid, rect)
        P.line_shade(bid, [[c[0] - wv / 2, c[1] - hv / 4], [c[0] + wv / 2, c[1] - hv / 4]], 185, 0.03)
    return P


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


def _render_figure_rgb(rng, P: _Painter, W: int, H: int):
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
    g = _grain_tile()
    hh, ww = crop.shape
    if hh <= g.shape[0] and ww <= g.shape[1]:  # fabric grain
        oy, ox = int(rng.integers(0, g.shape[0] - hh + 1)), int(rng.integers(0, g.shape[1] - ww + 1))
        shade = shade * (1.0 + 0.02 * g[oy:oy + hh, ox:ox + ww, 0])
    rgb *= shade[..., None]
    return (y0, y1, x0, x1), rgb, fg, lab


# ----------------------------------------------------------------------------------------------
# Backgrounds
# ----------------------------------------------------------------------------------------------
def _bg_spec(rng, style_idx, corr: float) -> dict:
    if style_idx is not None and rng.random() < corr:
        scene, wall, floor, acc = _BG_STYLE[FS14_STYLES[style_idx]]
        if rng.random() > 0.85:
            scene = _SCENES[int(rng.choice(4, p=_SCENE_W))]
        accents = [_jit(rng, _C[a], 18.0) for a in acc]
        return {"scene": scene, "wall": _jit(rng, wall, 9.0, (0.95, 1.05)),
                "floor": _jit(rng, floor, 9.0, (0.95, 1.05)), "accents": accents, "specific": True}
    names = list(_C)
    accents = [_jit(rng, _C[names[int(rng.integers(len(names)))]], 18.0) for _ in range(2)]
    return {"scene": _SCENES[int(rng.choice(4, p=_SCENE_W))],
            "wall": _jit(rng, _BG_WALLS[int(rng.integers(len(_BG_WALLS)))], 10.0),
            "floor": _jit(rng, _BG_FLOORS[int(rng.integers(len(_BG_FLOORS)))], 10.0),
            "accents": accents, "specific": False}


def _rand_col(rng, spec):
    r = rng.random()
    if r < 0.35:
        return tuple(int(v) for v in _jit(rng, spec["wall"], 25.0, (0.6, 1.3)))
    if r < 0.6:
        return tuple(int(v) for v in _jit(rng, spec["accents"][int(rng.integers(2))], 20.0))
    if r < 0.75:
        return tuple(int(v) for v in _jit(rng, spec["floor"], 20.0, (0.7, 1.3)))
    return tuple(int(v) for v in rng.integers(20, 240, 3))


# The backdrop every image shares at clutter 0 (a plain studio wall): with no clutter the background
# varies not at all, so it carries nothing that background removal could take away.
_PLAIN_WALL = np.array((214, 210, 204), np.float32)
_PLAIN_FLOOR = np.array((176, 172, 166), np.float32)


def _render_background(rng, W: int, H: int, clutter: float, spec: dict, floor_y: float):
    wall, floor = np.asarray(spec["wall"], np.float32), np.asarray(spec["floor"], np.float32)
    if not spec["specific"]:  # the image-to-image variation of the backdrop grows with clutter
        wall = _PLAIN_WALL + clutter * (wall - _PLAIN_WALL)
        floor = _PLAIN_FLOOR + clutter * (floor - _PLAIN_FLOOR)
    ty = np.linspace(0.0, 1.0, H, dtype=np.float32)[:, None, None]
    c_top = np.clip(wall * (1.0 + clutter * (rng.uniform(1.0, 1.1) - 1.0)) + 6, 0, 255)
    c_bot = 0.5 * wall + 0.5 * floor
    col = np.clip((c_top * (1 - ty) + c_bot * ty) / 1.06, 0, 240)  # (H, 1, 3)
    tilt = 1.0 + clutter * rng.uniform(-0.06, 0.06) * np.linspace(-1.0, 1.0, W, dtype=np.float32)
    base = Image.fromarray((col * tilt[None, :, None] + 0.5).astype(np.uint8), "RGB")
    if clutter <= 0.0:
        return base  # flat gradient
    img = base.copy()
    d = ImageDraw.Draw(img)
    fy = int(floor_y)
    scene = spec["scene"]
    lam = clutter
    f_top = tuple(int(v) for v in np.clip(floor * 1.08, 0, 255))
    f_bot = tuple(int(v) for v in np.clip(floor * 0.85, 0, 255))

    def floor_fill(c0, c1):
        for k in range(8):  # banded vertical gradient (cheap)
            t = k / 7
            c = tuple(int(c0[i] * (1 - t) + c1[i] * t) for i in range(3))
            d.rectangle([0, fy + (H - fy) * k / 8, W, fy + (H - fy) * (k + 1) / 8 + 1], fill=c)

    def rect(x0, y0, x1, y1, **kw):
        d.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], **kw)

    vx = W * rng.uniform(0.3, 0.7)
    if scene == "studio":
        floor_fill(tuple(int(v) for v in np.clip(wall * 0.95, 0, 255)), f_bot)
        for _ in range(rng.poisson(2 * lam)):
            x = rng.uniform(0, W)
            d.line([x, fy, x + rng.uniform(-20, 20), rng.uniform(0, fy)], fill=(60, 60, 60),
                   width=max(1, W // 150))
    elif scene == "room":
        floor_fill(f_top, f_bot)
        for k in range(int(4 + 10 * lam)):  # floor planks / tiles
            y = fy + (H - fy) * (k / (4 + 10 * lam)) ** 1.6
            d.line([0, y, W, y], fill=tuple(int(v * 0.8) for v in f_top), width=1)
        rect(0, fy - H * 0.015, W, fy, fill=(235, 232, 225))
        if rng.random() < 0.35 * lam + 0.1:  # wallpaper stripes
            per = rng.uniform(0.03, 0.08) * W
            c = tuple(int(v) for v in np.clip(wall * 0.9, 0, 255))
            for x in np.arange(0, W, per):
                rect(x, 0, x + per * 0.4, fy - H * 0.015, fill=c)
        for _ in range(rng.poisson(2.5 * lam)):  # windows / frames / shelves / doors
            kind = rng.choice(["window", "frame", "shelf", "door", "plant", "lamp"])
            x = rng.uniform(-0.1, 1.0) * W
            w = rng.uniform(0.1, 0.35) * W
            if kind == "window":
                y = rng.uniform(0.05, 0.3) * H
                h = rng.uniform(0.2, 0.4) * H
                rect(x, y, x + w, y + h, fill=(245, 245, 242))
                rect(x + 4, y + 4, x + w - 4, y + h - 4, fill=tuple(int(v) for v in rng.integers(170, 235, 3)))
                d.line([x + w / 2, y, x + w / 2, y + h], fill=(245, 245, 242), width=3)
                d.line([x, y + h / 2, x + w, y + h / 2], fill=(245, 245, 242), width=3)
            elif kind == "frame":
                y = rng.uniform(0.08, 0.4) * H
                h = w * rng.uniform(0.6, 1.4)
                rect(x, y, x + w, y + h, fill=_rand_col(rng, spec), outline=(40, 30, 25),
                     width=max(2, W // 100))
            elif kind == "shelf":
                y = rng.uniform(0.2, 0.5) * H
                rect(x, y, x + w, y + 6, fill=(120, 90, 60))
                bx = x
                while bx < x + w:
                    bw = rng.uniform(0.01, 0.03) * W
                    rect(bx, y - rng.uniform(0.05, 0.1) * H, bx + bw, y, fill=_rand_col(rng, spec))
                    bx += bw + 1
            elif kind == "door":
                rect(x, fy - 0.55 * H, x + 0.2 * W, fy, fill=_rand_col(rng, spec),
                     outline=(90, 80, 70), width=3)
            elif kind == "plant":
                py = fy + rng.uniform(-0.02, 0.05) * H
                rect(x, py - 0.08 * H, x + 0.08 * W, py, fill=_rand_col(rng, spec))
                for _k in range(12):
                    lx = x + 0.04 * W + rng.normal(0, 0.05 * W)
                    ly = py - 0.12 * H + rng.normal(0, 0.06 * H)
                    r = rng.uniform(0.01, 0.03) * W
                    d.ellipse([lx - r, ly - 2 * r, lx + r, ly + 2 * r],
                              fill=(int(rng.integers(30, 80)), int(rng.integers(90, 150)), 50))
            else:
                d.line([x, fy, x, fy - 0.45 * H], fill=(50, 50, 50), width=2)
                d.polygon([(x - 0.05 * W, fy - 0.45 * H), (x + 0.05 * W, fy - 0.45 * H),
                           (x + 0.03 * W, fy - 0.53 * H), (x - 0.03 * W, fy - 0.53 * H)],
                          fill=_rand_col(rng, spec))
    elif scene == "street":
        floor_fill(f_top, f_bot)
        for k in range(int(3 + 6 * lam)):  # perspective pavement lines
            x = rng.uniform(-0.5, 1.5) * W
            d.line([vx, fy, x, H], fill=tuple(int(v * 0.82) for v in f_top), width=1)
        d.line([0, fy + 2, W, fy + 2], fill=(90, 90, 90), width=max(1, W // 120))
        x = rng.uniform(-0.15, 0) * W
        while x < W:  # building facades
            bw = rng.uniform(0.15, 0.45) * W
            top = rng.uniform(-0.1, 0.35) * H
            col = _rand_col(rng, spec)
            rect(x, top, x + bw, fy, fill=col)
            dark = tuple(int(v * 0.55) for v in col)
            ww, wh = rng.uniform(0.03, 0.07) * W, rng.uniform(0.04, 0.09) * H
            if rng.random() < 0.3 + 0.6 * lam:
                for gx in np.arange(x + ww * 0.6, x + bw - ww, ww * 2.0):
                    for gy in np.arange(top + wh * 0.6, fy - wh * 1.5, wh * 1.9):
                        rect(gx, gy, gx + ww, gy + wh, fill=dark)
            if rng.random() < 0.5:  # shop front
                rect(x + bw * 0.1, fy - 0.15 * H, x + bw * 0.9, fy, fill=(40, 45, 50))
                rect(x + bw * 0.1, fy - 0.19 * H, x + bw * 0.9, fy - 0.15 * H,
                     fill=_rand_col(rng, spec))
            x += bw
        for _ in range(rng.poisson(1.5 * lam)):  # poles
            x = rng.uniform(0, W)
            d.line([x, fy + 0.05 * H, x, rng.uniform(0, 0.3) * H], fill=(50, 52, 55),
                   width=max(2, W // 80))
        for _ in range(rng.poisson(1.0 * lam)):  # cars
            x = rng.uniform(-0.2, 1.0) * W
            cw = rng.uniform(0.3, 0.5) * W
            col = tuple(int(v) for v in rng.integers(20, 230, 3))
            d.rounded_rectangle([x, fy - 0.1 * H, x + cw, fy + 0.02 * H], radius=int(0.03 * W),
                                fill=col)
            rect(x + cw * 0.2, fy - 0.15 * H, x + cw * 0.75, fy - 0.09 * H, fill=(70, 80, 95))
            for wx in (x + cw * 0.2, x + cw * 0.8):
                r = 0.03 * W
                d.ellipse([wx - r, fy - r + 0.02 * H, wx + r, fy + r + 0.02 * H], fill=(20, 20, 20))
        for _ in range(rng.poisson(1.5 * lam)):  # distant pedestrians
            x = rng.uniform(0, W)
            ph = rng.uniform(0.12, 0.3) * H
            col = tuple(int(v) for v in rng.integers(20, 200, 3))
            d.rounded_rectangle([x - ph * 0.12, fy - ph * 0.85, x + ph * 0.12, fy],
                                radius=int(ph * 0.05) + 1, fill=col)
            d.ellipse([x - ph * 0.07, fy - ph, x + ph * 0.07, fy - ph * 0.83], fill=(190, 150, 120))
    else:  # park
        grass = tuple(int(v) for v in _jit(rng, (95, 140, 70), 12.0))
        floor_fill(grass, tuple(int(v * 0.8) for v in grass))
        if rng.random() < 0.6:
            d.polygon([(vx - 0.05 * W, fy), (vx + 0.05 * W, fy), (vx + 0.5 * W, H),
                       (vx - 0.5 * W, H)], fill=tuple(int(v) for v in _jit(rng, (190, 175, 145))))
        for _ in range(int(6 + 20 * lam)):  # tree line
            x = rng.uniform(0, W)
            r = rng.uniform(0.04, 0.12) * W
            g = (int(rng.integers(30, 90)), int(rng.integers(80, 150)), int(rng.integers(30, 80)))
            d.ellipse([x - r, fy - 1.6 * r, x + r, fy + 0.3 * r], fill=g)
        for _ in range(rng.poisson(1.2 * lam)):
            x = rng.uniform(0, W)
            d.line([x, fy + 0.02 * H, x, fy - 0.3 * H], fill=(80, 60, 40), width=max(2, W // 50))
            for _k in range(6):
                r = rng.uniform(0.06, 0.12) * W
                cx, cy = x + rng.normal(0, 0.07 * W), fy - 0.35 * H + rng.normal(0, 0.06 * H)
                d.ellipse([cx - r, cy - r, cx + r, cy + r],
                          fill=(int(rng.integers(30, 80)), int(rng.integers(90, 160)), 50))
    # generic clutter: random rectangles / ellipses / lines
    for _ in range(rng.poisson(12 * lam)):
        x, y = rng.uniform(0, W), rng.uniform(0, H)
        s = rng.uniform(0.02, 0.15) * W
        col = _rand_col(rng, spec)
        k = rng.random()
        if k < 0.4:
            rect(x, y, x + s * rng.uniform(0.3, 2), y + s * rng.uniform(0.3, 2), fill=col)
        elif k < 0.7:
            d.ellipse([x, y, x + s, y + s * rng.uniform(0.4, 1.5)], fill=col)
        else:
            d.line([x, y, x + rng.normal(0, 0.2 * W), y + rng.normal(0, 0.2 * H)], fill=col,
                   width=max(1, int(rng.integers(1, 4))))
    img = img.filter(ImageFilter.BoxBlur(rng.uniform(0.3, 1.2) * H / 400.0))  # depth of field
    # plaster-like blotches (multiplicative, <= 6 % darker)
    gh, gw = max(2, H // 40), max(2, W // 40)
    blot = Image.fromarray(rng.integers(240, 256, (gh, gw), dtype=np.uint8), "L")
    blot = blot.resize((W, H), Image.BILINEAR).convert("RGB")
    img = ImageChops.multiply(img, blot)
    # contrast of the detail rises quickly with clutter (object count rises linearly)
    img = Image.blend(base, img, math.sqrt(clutter))
    # sensor grain, amplitude proportional to clutter
    amp = 4.0 * clutter
    if amp >= 0.5 and H <= 1024 and W <= 1024:
        k = int(round(3 * amp))
        key = ("u8", round(amp, 6))
        if key not in _TILE:  # quantised grain for this amplitude, offset by +k
            _TILE[key] = np.clip(_grain_tile() * amp + k + 0.5, 0, 2 * k).astype(np.uint8)
        g = _TILE[key]
        oy, ox = int(rng.integers(0, g.shape[0] - H + 1)), int(rng.integers(0, g.shape[1] - W + 1))
        noise = Image.fromarray(g[oy:oy + H, ox:ox + W], "RGB")
        img = ImageChops.add(img, noise, 1.0, -k)
    return img


_TILE: dict = {}


def _grain_tile() -> np.ndarray:
    """Fixed N(0,1) noise tile (seed-independent constant, so reuse keeps determinism)."""
    if "g" not in _TILE:
        r = np.random.default_rng(20230817)
        _TILE["g"] = r.standard_normal((1024, 1024, 3), dtype=np.float32)
    return _TILE["g"]


# ----------------------------------------------------------------------------------------------
# One full image
# ----------------------------------------------------------------------------------------------
def _render_image(rng, rng_bg, W, H, outfit, bg_spec, clutter, *, zoom):
    """Figure from `rng`, background from `rng_bg` (so background knobs never change the figure)."""
    fig = _Figure(rng, W, H, zoom=zoom)
    P = _draw_figure(rng, fig, outfit, W, H)
    (y0, y1, x0, x1), fig_rgb, fg, lab = _render_figure_rgb(rng, P, W, H)
    feet_y = fig.px([(fig.ankle[-1] + fig.ankle[1]) / 2])[0]
    floor_y = min(H * 0.92, max(H * 0.45, feet_y[1] - rng_bg.uniform(0.05, 0.25) * H))
    bg = _render_background(rng_bg, W, H, clutter, bg_spec, floor_y)
    if clutter > 0 and feet_y[1] < H:  # contact shadow on the ground (only its bounding box)
        rx, ry, cy = 1.3 * fig.u, 0.28 * fig.u, feet_y[1] + 0.05 * fig.u
        m = 0.6 * fig.u
        bx0, by0 = max(0, int(feet_y[0] - rx - m)), max(0, int(cy - ry - m))
        bx1, by1 = min(W, int(feet_y[0] + rx + m) + 1), min(H, int(cy + ry + m) + 1)
        if bx1 > bx0 and by1 > by0:
            sh = Image.new("L", (bx1 - bx0, by1 - by0), 0)
            ImageDraw.Draw(sh).ellipse([feet_y[0] - rx - bx0, cy - ry - by0, feet_y[0] + rx - bx0,
                                        cy + ry - by0], fill=255)
            sh = np.asarray(sh.filter(ImageFilter.GaussianBlur(0.25 * fig.u)), np.float32) / 255.0
            reg = np.asarray(bg.crop((bx0, by0, bx1, by1)), np.float32)
            reg = reg * (1.0 - 0.4 * clutter * sh)[..., None]
            bg.paste(Image.fromarray((reg + 0.5).astype(np.uint8), "RGB"), (bx0, by0))
    alpha = Image.fromarray((fg * 255).astype(np.uint8), "L").filter(ImageFilter.GaussianBlur(0.6))
    fig_img = Image.fromarray(np.clip(fig_rgb + 0.5, 0, 255).astype(np.uint8), "RGB")
    bg.paste(fig_img, (x0, y0), alpha)
    mask = np.where(lab > 0, 255, 0).astype(np.uint8)
    return bg, mask, P


def _jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=False)
    return buf.getvalue()


def _png_write(arr: np.ndarray, path: Path) -> None:
    Image.fromarray(arr, "L").save(path, "PNG", compress_level=6)


# ----------------------------------------------------------------------------------------------
# ModaNet polygons from the visible instance map
# ----------------------------------------------------------------------------------------------
def _simplify(pts: np.ndarray, tol: float) -> np.ndarray:
    """Douglas-Peucker on a closed ring (first point == last point or not)."""
    if len(pts) < 4:
        return pts
    keep = np.zeros(len(pts), bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(pts) - 1)]
    while stack:
        i, j = stack.pop()
        if j <= i + 1:
            continue
        a, b = pts[i], pts[j]
        seg = b - a
        L = math.hypot(*seg)
        q = pts[i + 1:j] - a
        dist = np.abs(q[:, 0] * seg[1] - q[:, 1] * seg[0]) / L if L > 1e-9 else np.hypot(q[:, 0], q[:, 1])
        k = int(np.argmax(dist))
        if dist[k] > tol:
            keep[i + 1 + k] = True
            stack += [(i, i + 1 + k), (i + 1 + k, j)]
    return pts[keep]


def _visible_annotation(lab: np.ndarray, iid: int, W: int, H: int, min_area: int):
    m = lab == iid
    area = int(m.sum())
    if area < min_area:
        return None
    rows = np.flatnonzero(m.any(1))
    cols = np.flatnonzero(m.any(0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    z = np.zeros((r1 - r0 + 2, c1 - c0 + 2), np.float32)
    z[1:-1, 1:-1] = m[r0:r1, c0:c1]
    gen = contourpy.contour_generator(z=z, fill_type="OuterOffset")
    rings, offsets = gen.filled(0.5, 1.5)
    polys = []
    for pts, off in zip(rings, offsets):
        outer = pts[off[0]:off[1]].astype(np.float64)
        # padded grid index -> COCO pixel-edge coordinates
        outer[:, 0] += c0 - 0.5
        outer[:, 1] += r0 - 0.5
        ring_area = 0.5 * abs(np.dot(outer[:-1, 0], outer[1:, 1]) - np.dot(outer[1:, 0], outer[:-1, 1]))
        if ring_area < max(8.0, min_area / 4):
            continue  # drop specks
        simp = _simplify(outer, 0.9)
        if np.allclose(simp[0], simp[-1]):
            simp = simp[:-1]
        simp = np.rint(simp)
        simp[:, 0] = np.clip(simp[:, 0], 0, W)
        simp[:, 1] = np.clip(simp[:, 1], 0, H)
        dup = np.all(simp == np.roll(simp, 1, axis=0), axis=1)
        simp = simp[~dup]
        if len(simp) >= 3:
            polys.append([int(v) for v in simp.reshape(-1)])
    if not polys:
        return None
    bbox = [int(c0), int(r0), int(c1 - c0), int(r1 - r0)]
    return {"area": area, "bbox": bbox, "segmentation": polys}


_MODANET_INFO = {"contributor": "eBay CoreAI research", "date_created": "2018/07/03",
                 "version": "1.0", "description": "MODA-NET 2018 Dataset"}
_LICENSES = [
    {"url": "http://creativecommons.org/licenses/by-nc-sa/4.0/", "id": 1,
     "name": "Attribution-NonCommercial-ShareAlike License"},
    {"url": "http://creativecommons.org/licenses/by-sa/4.0/", "id": 2,
     "name": "Attribution-ShareAlike License"},
    {"url": "http://creativecommons.org/licenses/by-nc/4.0/", "id": 3,
     "name": "Attribution-NonCommercial License"},
    {"url": "http://creativecommons.org/licenses/by-nc-nd/4.0/", "id": 4,
     "name": "Attribution-NonCommercial-NoDerivs License"},
    {"url": "http://creativecommons.org/licenses/by/4.0/", "id": 5, "name": "Attribution License"},
    {"url": "http://creativecommons.org/licenses/by-nd/4.0/", "id": 6,
     "name": "Attribution-NoDerivs License"},
    {"url": "http://flickr.com/commons/usage/", "id": 7, "name": "No known copyright restrictions"},
    {"url": "http://www.usa.gov/copyright.shtml", "id": 8, "name": "United States Government Work"},
]


def _coco(images: list, annotations: list) -> dict:
    # key order as in the real ModaNet files
    return {"info": dict(_MODANET_INFO), "images": images, "year": 2018,
            "licenses": [dict(x) for x in _LICENSES], "type": "instances",
            "annotations": annotations, "categories": [dict(c) for c in MODANET_CATEGORIES]}


# ----------------------------------------------------------------------------------------------
# Public entry point
# ----------------------------------------------------------------------------------------------
def _check_int(name, v, lo, hi=None):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"generate_demo: {name} must be an integer, got {v!r}")
    if v < lo or (hi is not None and v > hi):
        rng_txt = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"generate_demo: {name} must be {rng_txt}, got {v}")
    return int(v)


def _check_unit(name, v):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise ValueError(f"generate_demo: {name} must be a finite number in [0, 1], got {v!r}")
    if not 0.0 <= float(v) <= 1.0:
        raise ValueError(f"generate_demo: {name} must be in [0, 1], got {v}")
    return float(v)


def _prepare_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"generate_demo: out_dir {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    present = [e for e in _OUTPUT_ENTRIES if (out / e).exists()]
    if not present:
        return
    if not (out / "demo_info.json").is_file():
        # never delete something that is not a previous demo (e.g. a real dataset)
        raise FileExistsError(
            f"generate_demo: {out} already holds {', '.join(present)} but no demo_info.json; "
            "refusing to overwrite what may be real data. Choose an empty out_dir.")
    for e in present:
        p = out / e
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def _rng(seed, stream, *idx):
    return np.random.default_rng(np.random.SeedSequence([seed, stream, *idx]))


def generate_demo(out_dir: Path, *, seed: int = 0, fs14_per_class: int = 40,
                  modanet_train: int = 120, modanet_val: int = 20, sod_train: int = 200,
                  clutter: float = 0.7, bg_label_correlation: float = 0.0, style_signal: float = 0.0,
                  style_overlap: float = _MIX, only_fashionstyle14: bool = False) -> dict:
    """Write the synthetic FashionStyle14 / ModaNet raw data, truth masks and SOD set.

    Returns a counts summary (also stored in ``out_dir/demo_info.json``).  Identical arguments give
    byte-identical files.  A previous demo in ``out_dir`` is replaced; anything else is refused.
    """
    if not isinstance(out_dir, (str, os.PathLike)):
        raise ValueError(f"generate_demo: out_dir must be a path, got {out_dir!r}")
    seed = _check_int("seed", seed, 0)
    fs14_per_class = _check_int("fs14_per_class", fs14_per_class, 3)  # >= 1 per split
    n_ids = _MODANET_ID_RANGE[1] - _MODANET_ID_RANGE[0] + 1
    modanet_train = _check_int("modanet_train", modanet_train, 1, n_ids)
    modanet_val = _check_int("modanet_val", modanet_val, 0, n_ids - modanet_train)
    sod_train = _check_int("sod_train", sod_train, 0)
    clutter = _check_unit("clutter", clutter)
    bg_label_correlation = _check_unit("bg_label_correlation", bg_label_correlation)
    style_signal = _check_unit("style_signal", style_signal)
    style_overlap = _check_unit("style_overlap", style_overlap)
    out = Path(out_dir)
    _prepare_out_dir(out)

    # --- FashionStyle14 -------------------------------------------------------------------------
    fs_root = out / _FS14_DIR
    truth_fs = out / "truth" / "fashionstyle14"
    splits = {"train": [], "val": [], "test": []}
    for si, style in enumerate(FS14_STYLES):
        (fs_root / "dataset" / style).mkdir(parents=True, exist_ok=True)
        (truth_fs / "dataset" / style).mkdir(parents=True, exist_ok=True)
        stems = []
        for j in range(fs14_per_class):
            rng, rng_bg = _rng(seed, _STREAM_FS14, si, j, 0), _rng(seed, _STREAM_FS14, si, j, 1)
            stem = rng.bytes(16).hex()
            w = int(rng.integers(150, 211))
            h = int(round(1.5 * w))
            outfit = _sample_outfit(rng, si, signal=style_signal, overlap=style_overlap)
            spec = _bg_spec(rng_bg, si, bg_label_correlation)
            img, mask, _ = _render_image(rng, rng_bg, w, h, outfit, spec, clutter,
                                         zoom=rng.random() < 0.1)
            (fs_root / "dataset" / style / f"{stem}.jpg").write_bytes(_jpeg_bytes(img))
            _png_write(mask, truth_fs / "dataset" / style / f"{stem}.png")
            stems.append(stem)
        if len(set(stems)) != len(stems):  # 128-bit names: practically impossible
            raise RuntimeError(f"generate_demo: duplicate FS14 file name in style {style}")
        order = _rng(seed, _STREAM_SPLIT, si).permutation(len(stems))
        n_val = max(1, int(round(0.2 * len(stems))))
        n_test = max(1, int(round(0.2 * len(stems))))
        n_train = len(stems) - n_val - n_test
        parts = {"train": order[:n_train], "val": order[n_train:n_train + n_val],
                 "test": order[n_train + n_val:]}
        for sp, idx in parts.items():
            splits[sp] += [f"dataset/{style}/{stems[k]}.jpg" for k in sorted(idx, key=lambda k: stems[k])]
    for sp, lines in splits.items():
        (fs_root / f"{sp}.csv").write_text("".join(line + "\n" for line in lines), encoding="utf-8")

    train_ids, val_ids, anns, n_multi, blobs = [], [], [], 0, {}
    if not only_fashionstyle14:  # a control variant of the FS14 look-alike: no ModaNet, no saliency set
        # --- ModaNet ----------------------------------------------------------------------------------
        W, H = MODANET_SIZE
        md_root = out / "modanet"
        (md_root / "annotations").mkdir(parents=True, exist_ok=True)
        truth_md = out / "truth" / "modanet"
        truth_md.mkdir(parents=True, exist_ok=True)
        id_rng = _rng(seed, _STREAM_IDS)
        ids = _MODANET_ID_RANGE[0] + id_rng.choice(n_ids, modanet_train + modanet_val, replace=False)
        train_ids = sorted(int(i) for i in ids[:modanet_train])
        val_ids = sorted(int(i) for i in ids[modanet_train:])
        blobs: dict[int, bytes] = {}
        anns: list = []
        n_multi = 0
        for split_ids, annotate in ((train_ids, True), (val_ids, False)):
            for pid in split_ids:
                rng, rng_bg = _rng(seed, _STREAM_MODANET, pid, 0), _rng(seed, _STREAM_MODANET, pid, 1)
                outfit = _sample_outfit(rng, int(rng.integers(len(FS14_STYLES))), boost_accessories=True)
                spec = _bg_spec(rng_bg, None, 0.0)
                img, mask, P = _render_image(rng, rng_bg, W, H, outfit, spec, clutter,
                                             zoom=rng.random() < 0.05)
                blobs[pid] = _jpeg_bytes(img)
                _png_write(mask, truth_md / f"{pid:07d}.png")
                if not annotate:
                    continue
                lab = np.asarray(P.label)
                for ins in P.inst:  # draw order: back to front, so painting in order gives the map
                    if ins["cat"] is None:
                        continue
                    a = _visible_annotation(lab, ins["id"], W, H, min_area=30)
                    if a is None:
                        continue
                    n_multi += len(a["segmentation"]) > 1
                    anns.append({"area": a["area"], "bbox": a["bbox"], "segmentation": a["segmentation"],
                                 "image_id": pid, "id": len(anns) + 1, "category_id": _CAT_ID[ins["cat"]],
                                 "iscrowd": 0})

        def image_entries(id_list):
            return [{"file_name": "%07d.jpg" % i, "width": W, "id": i, "license": 3, "height": H}
                    for i in id_list]

        for name, doc in (("train", _coco(image_entries(train_ids), anns)),
                          ("val", _coco(image_entries(val_ids), []))):
            (md_root / "annotations" / f"modanet2018_instances_{name}.json").write_text(
                json.dumps(doc), encoding="utf-8")
        total = sum(len(b) for b in blobs.values())
        env = lmdb.open(str(md_root / "photos.lmdb"), map_size=max(1 << 24, 4 * total + (1 << 22)),
                        subdir=True, lock=False, meminit=True)
        try:
            with env.begin(write=True) as txn:
                for pid in sorted(blobs, key=lambda i: str(i).encode("ascii")):
                    txn.put(str(pid).encode("ascii"), blobs[pid])
        finally:
            env.close()

        # --- saliency training set (DUTS stand-in) --------------------------------------------------
        sod_img = out / "sod_train" / "images"
        sod_msk = out / "sod_train" / "masks"
        sod_img.mkdir(parents=True, exist_ok=True)
        sod_msk.mkdir(parents=True, exist_ok=True)
        for k in range(sod_train):
            rng, rng_bg = _rng(seed, _STREAM_SOD, k, 0), _rng(seed, _STREAM_SOD, k, 1)
            shape = rng.random()
            if shape < 0.5:
                w = int(rng.integers(150, 261))
                h = int(round(1.5 * w))
            elif shape < 0.8:
                w, h = 300, 450
            else:
                w, h = int(rng.integers(300, 401)), 300
            outfit = _sample_outfit(rng, int(rng.integers(len(FS14_STYLES))), boost_accessories=shape >= 0.5)
            spec = _bg_spec(rng_bg, None, 0.0)
            img, mask, _ = _render_image(rng, rng_bg, w, h, outfit, spec, clutter,
                                         zoom=rng.random() < 0.1)
            (sod_img / f"{k:05d}.jpg").write_bytes(_jpeg_bytes(img))
            _png_write(mask, sod_msk / f"{k:05d}.png")

    counts = {
        "fashionstyle14": {"styles": len(FS14_STYLES), "per_class": fs14_per_class,
                           "images": fs14_per_class * len(FS14_STYLES),
                           **{sp: len(v) for sp, v in splits.items()}},
        "modanet": {"train_images": len(train_ids), "val_images": len(val_ids),
                    "annotations": len(anns), "multi_polygon_annotations": int(n_multi),
                    "lmdb_entries": len(blobs)},
        "sod_train": sod_train,
    }
    info = {"generator": "fashion_rembg.datasets.demo", "format_version": 1,
            "args": {"seed": seed, "fs14_per_class": fs14_per_class, "modanet_train": modanet_train,
                     "modanet_val": modanet_val, "sod_train": sod_train, "clutter": clutter,
                     "bg_label_correlation": bg_label_correlation, "style_signal": style_signal,
                     "style_overlap": style_overlap, "only_fashionstyle14": only_fashionstyle14,
                     "jpeg_quality": JPEG_QUALITY},
            "counts": counts}
    (out / "demo_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return counts
