"""What the demo's people wear: the FashionStyle14 styles as distributions over garments, palettes and
patterns (overlapping between styles on purpose), the ModaNet categories, the background palettes, and
the sampling of one outfit from them."""

from __future__ import annotations

import numpy as np

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


STYLE_OVERLAP = 0.22  # probability that an attribute group is drawn from another style (inter-class overlap)

# ----------------------------------------------------------------------------------------------
# Colours and style profiles
# ----------------------------------------------------------------------------------------------
COLOURS = {
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
SIGNATURE = {
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
BG_STYLE = {
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
BG_WALLS = [(236, 234, 228), (222, 218, 208), (200, 200, 198), (214, 206, 190),
            (180, 196, 214), (226, 222, 214), (172, 170, 166), (206, 214, 222),
            (232, 224, 208), (150, 150, 150), (196, 186, 170), (188, 204, 190),
            (240, 240, 240), (120, 120, 126), (210, 196, 200), (230, 214, 186)]
BG_FLOORS = [(160, 150, 140), (130, 128, 126), (176, 160, 130), (110, 104, 98),
             (190, 186, 180), (140, 120, 96), (100, 100, 104), (170, 170, 165)]
SCENES = ("street", "room", "park", "studio")
SCENE_WEIGHTS = (0.35, 0.3, 0.15, 0.2)


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------
def pick(rng, weights: dict):
    keys = list(weights)
    p = np.array([weights[k] for k in keys], np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def jitter(rng, c, amount=14.0, scale=(0.9, 1.1)):
    c = np.asarray(c, np.float32) * rng.uniform(*scale) + rng.normal(0.0, amount, 3)
    return np.clip(c, 0, 255).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Outfit sampling (what the figure wears)
# ----------------------------------------------------------------------------------------------
def sample_outfit(rng, style_idx: int, *, boost_accessories: bool = False, signal: float = 0.0,
                   overlap: float = STYLE_OVERLAP) -> dict:
    own = _STYLES[FS14_STYLES[style_idx]]

    def st():
        # inter-class overlap: each attribute group may follow another style's distribution
        if rng.random() < overlap:
            return _STYLES[FS14_STYLES[int(rng.integers(len(FS14_STYLES)))]]
        return own

    pal_style = st()
    palette = [COLOURS[n] for n in pal_style["palette"]]
    if rng.random() < 0.15:  # occasional off-palette colour
        palette = palette + [COLOURS[list(COLOURS)[int(rng.integers(len(COLOURS)))]]]
    pat_style = st()
    order = rng.permutation(len(palette))
    used = iter(list(order) * 4)

    def colour():
        return jitter(rng, palette[next(used)], 10.0)

    def pattern(main: bool):
        kind = pick(rng, pat_style["pattern"])
        if not main and rng.random() < 0.55:
            kind = "plain"
        cols = [jitter(rng, palette[int(rng.integers(len(palette)))], 10.0) for _ in range(2)]
        if rng.random() < 0.35:
            cols[0] = jitter(rng, COLOURS["white"] if rng.random() < 0.6 else COLOURS["black"], 6.0)
        return {"kind": kind, "c2": cols[0], "c3": cols[1], "scale": rng.uniform(0.7, 1.4),
                "angle": float(rng.choice([0.0, 90.0, 45.0, -45.0], p=[.45, .3, .125, .125]))}

    s_out = st()
    kind = pick(rng, s_out["outfit"])
    main_piece = "top" if rng.random() < 0.5 else "bottom"
    # drawn only when asked for, so signal 0 keeps the random stream (and older demos) unchanged
    signature = signal > 0 and rng.random() < signal

    def main_colour(is_main: bool):
        if signature and is_main:
            return jitter(rng, SIGNATURE[FS14_STYLES[style_idx]], 10.0)
        return colour()
    o: dict = {"kind": kind, "style": style_idx}
    s_shape = st()
    loose = rng.uniform(*s_shape["loose"])
    if kind == "dress":
        s_sk = st()
        o["dress"] = {"col": main_colour(True), "pat": pattern(True), "len": pick(rng, s_sk["skirt_len"]),
                      "flare": rng.uniform(*s_sk["flare"]), "sleeve": pick(rng, s_shape["sleeve"]),
                      "neck": rng.uniform(*s_shape["neck"]), "loose": loose}
    else:
        o["top"] = {"col": main_colour(main_piece == "top"), "pat": pattern(main_piece == "top"),
                    "hem": pick(rng, s_shape["top_hem"]), "sleeve": pick(rng, s_shape["sleeve"]),
                    "neck": rng.uniform(*s_shape["neck"]), "loose": loose}
        if kind == "top_skirt":
            s_sk = st()
            o["skirt"] = {"col": main_colour(main_piece == "bottom"), "pat": pattern(main_piece == "bottom"),
                          "len": pick(rng, s_sk["skirt_len"]), "flare": rng.uniform(*s_sk["flare"])}
        else:
            s_p = st()
            pat = pattern(main_piece == "bottom")
            col = main_colour(main_piece == "bottom")
            if not (signature and main_piece == "bottom") and rng.random() < 0.3:  # jeans: every style
                pat = dict(pat, kind="denim")
                col = jitter(rng, COLOURS["denimblue"] if rng.random() < 0.75 else COLOURS["charcoal"], 12.0)
            o["pants"] = {"col": col, "pat": pat, "fit": pick(rng, s_p["pants_fit"]),
                          "len": "shorts" if kind == "top_shorts" else pick(rng, s_p["pants_len"]),
                          "tight": kind == "top_shorts" and rng.random() < 0.5}
    s_acc = st()
    boost = 1.6 if boost_accessories else 1.0
    if rng.random() < s_acc["outer"]:
        oc = colour()
        opat = pattern(False)
        if FS14_STYLES[style_idx] == "rock" and rng.random() < 0.6:
            oc, opat = jitter(rng, COLOURS["black"], 5.0), dict(opat, kind="leather")
        o["outer"] = {"col": oc, "pat": opat, "len": pick(rng, s_acc["outer_len"]),
                      "gap": rng.uniform(0.0, 0.35) if rng.random() < 0.8 else 0.0,
                      "loose": loose * rng.uniform(1.0, 1.12)}
    shoe_cols = [COLOURS["black"], COLOURS["brown"], COLOURS["white"], COLOURS["beige"], COLOURS["darkbrown"]]
    sc = shoe_cols[int(rng.integers(len(shoe_cols)))] if rng.random() < 0.7 else \
        palette[int(rng.integers(len(palette)))]
    o["shoes"] = {"boots": rng.random() < s_acc["boots"], "col": jitter(rng, sc, 8.0),
                  "heel": rng.random() < s_acc["heel"], "boot_top": rng.uniform(0.05, 0.75)}
    if rng.random() < min(0.95, s_acc["bag"] * boost):
        o["bag"] = {"col": jitter(rng, palette[int(rng.integers(len(palette)))] if rng.random() < .5
                                else shoe_cols[int(rng.integers(len(shoe_cols)))], 10.0),
                    "pat": pattern(False), "kind": pick(rng, {"hand": .45, "shoulder": .35,
                                                              "clutch": .2}),
                    "size": rng.uniform(0.8, 1.25)}
    if rng.random() < min(0.9, s_acc["belt"] * boost):
        o["belt"] = {"col": jitter(rng, shoe_cols[int(rng.integers(len(shoe_cols)))], 8.0)}
    if rng.random() < min(0.9, max(s_acc["hat"], 0.08 if boost_accessories else 0.0) * boost):
        o["hat"] = {"col": colour(), "kind": pick(rng, s_acc["hat_kind"])}
    if rng.random() < min(0.9, max(s_acc["sunglasses"], 0.1 if boost_accessories else 0.0) * boost):
        o["sunglasses"] = {"col": jitter(rng, (18, 18, 20) if rng.random() < .7 else (90, 60, 40), 6.)}
    if rng.random() < min(0.9, max(s_acc["scarf"], 0.06 if boost_accessories else 0.0) * boost):
        o["scarf"] = {"col": colour(), "pat": pattern(False)}
    elif kind != "dress" and rng.random() < max(s_acc["tie"], 0.06 if boost_accessories else 0.0):
        o["tie"] = {"col": colour(), "pat": pattern(False)}
    s_body = st()
    o["skin"] = _SKINS[int(rng.choice(6, p=_SKIN_W_TAN if own["tan"] else _SKIN_W))]
    o["skin"] = jitter(rng, o["skin"], 4.0, (0.96, 1.04))
    o["hair_len"] = pick(rng, s_body["hair_len"])
    o["hair"] = jitter(rng, _HAIRS[pick(rng, s_body["hair_col"])], 6.0)
    return o

