"""The demo's people: a skeleton (``Figure``), a label-image painter, and one painter per body part or
garment, applied in draw order (``PAINTERS``)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw


# ----------------------------------------------------------------------------------------------
# Outline helpers (local coordinates)
# ----------------------------------------------------------------------------------------------
def ellipse(cx, cy, rx, ry, n=20, a0=0.0, a1=2 * math.pi):
    a = np.linspace(a0, a1, n, endpoint=(a1 - a0) < 2 * math.pi - 1e-9)
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], 1)


def chain(points, widths, frac=1.0):
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


# ----------------------------------------------------------------------------------------------
# Figure geometry: local coordinates in head units u (y down, 0 = top of head, feet at ~7.45)
# ----------------------------------------------------------------------------------------------
_SKIRT_HEM = {"mini": (4.3, 4.7), "knee": (5.45, 5.85), "midi": (6.2, 6.6), "maxi": (7.05, 7.3)}
_TOP_HEM = {"crop": (2.55, 2.8), "tucked": (3.3, 3.5), "regular": (3.75, 4.0), "long": (4.2, 4.5)}
_SLEEVE = {"none": 0.0, "short": 0.28, "elbow": 0.55, "long": 0.97}
_OUTER_HEM = {"hip": (3.7, 4.1), "thigh": (4.4, 4.9), "long": (5.8, 6.6)}


class Figure:
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


class Painter:
    """Draws instances into an 8-bit label image; keeps per-instance colour/pattern records."""

    def __init__(self, fig: Figure, W: int, H: int):
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
        self.skin = self.hair = 0  # instance ids of skin and hair (set by draw_figure)

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




# ----------------------------------------------------------------------------------------------
# Painters: one a body part or garment, each drawing into the painter in its turn
# ----------------------------------------------------------------------------------------------
def paint_back_hair(P: Painter, rng, o: dict) -> None:
    """Long hair behind the shoulders."""
    if o["hair_len"] not in ("medium", "long"):
        return
    hr = P.fig.head_r
    ly = rng.uniform(1.55, 1.9) if o["hair_len"] == "medium" else rng.uniform(2.4, 3.2)
    hw = rng.uniform(0.46, 0.58)
    back = np.vstack([ellipse(0, 0.5, hr[0] + 0.07, hr[1] + 0.03, 12, math.pi, 2 * math.pi),
                      [[hw, ly - 0.2]], ellipse(0, ly - 0.2, hw, 0.2, 8, 0, math.pi),
                      [[-hw, ly - 0.2]]])
    P.poly(P.hair, back)


def torso_outline(fig: Figure) -> list:
    """Shoulders to hips (local units); garment parts are told from the torso by it too."""
    return [[-fig.sw, 1.45], [fig.sw, 1.45], [fig.sw - 0.12, 2.1], [fig.waist, 3.0],
            [fig.hip, 3.75], [fig.hip * 0.9, 4.15], [-fig.hip * 0.9, 4.15], [-fig.hip, 3.75],
            [-fig.waist, 3.0], [-(fig.sw - 0.12), 2.1]]


def paint_body(P: Painter, rng, o: dict) -> None:
    """Body skin: neck, torso, legs, arms (garments cover most of it later)."""
    fig, skin = P.fig, P.skin
    P.poly(skin, [[-0.14, 0.85], [0.14, 0.85], [0.16, 1.5], [-0.16, 1.5]])
    P.poly(skin, torso_outline(fig))
    for side in (-1, 1):
        P.poly(skin, chain([fig.hipj[side], fig.knee[side], fig.ankle[side]], [0.6, 0.36, 0.24]))
        P.poly(skin, ellipse(*fig.knee[side], 0.18, 0.16, 10))
        P.poly(skin, chain([fig.sh[side], fig.el[side], fig.wr[side]], [0.34, 0.26, 0.2]))
        P.poly(skin, ellipse(*fig.el[side], 0.13, 0.13, 10))
        P.poly(skin, ellipse(*fig.sh[side], 0.2, 0.2, 12))
        a = fig.ankle[side]
        P.poly(skin, ellipse(a[0] + side * 0.05, a[1] + 0.14, 0.15, 0.14, 12))


def paint_shoes(P: Painter, rng, o: dict) -> None:
    """Shoes or boots (both feet = one instance, as in ModaNet)."""
    fig, sh = P.fig, o["shoes"]
    sid = P.new("boots" if sh["boots"] else "footwear", sh["col"])
    for side in (-1, 1):
        a = fig.ankle[side]
        rx = 0.16 if sh["heel"] else 0.21
        P.poly(sid, ellipse(a[0] + side * 0.06, a[1] + 0.17, rx, 0.15, 14))
        if sh["boots"]:
            k = fig.knee[side]
            t = sh["boot_top"]
            topp = k + t * (a - k)
            P.poly(sid, chain([topp, a + [0, 0.1]], [0.44 - 0.1 * t, 0.32]))
        elif sh["heel"]:
            P.poly(sid, [[a[0] - 0.1, a[1] + 0.02], [a[0] + 0.1, a[1] + 0.02],
                         [a[0] + 0.13, a[1] + 0.14], [a[0] - 0.13, a[1] + 0.14]])


def _top_outline(fig: Figure, hem, neck, loose, narrow_shoulder):
    sw = fig.sw * (0.72 if narrow_shoulder else 1.0)
    pts_l = [[-0.2, 1.22], [-(sw + 0.02), 1.42], [-(fig.sw - 0.1) * min(loose, 1.1), 2.1]]
    ys = [y for y in (3.0, 3.75) if y < hem] + [hem]
    pts_l += [[-fig.body_hw(y) * loose - 0.03, y] for y in ys]
    pts_r = [[-x, y] for x, y in pts_l[::-1]]
    return pts_l + pts_r + [[0.0, 1.22 + neck]]  # closes through the neckline dip


def _sleeves(P: Painter, iid, frac, width) -> None:
    if frac <= 0:
        return
    fig = P.fig
    for side in (-1, 1):
        P.poly(iid, chain([fig.sh[side] + [0, -0.05], fig.el[side], fig.wr[side]],
                          [0.44 * width, 0.34 * width, 0.28 * width], frac))
        P.poly(iid, ellipse(*fig.sh[side], 0.22 * width, 0.2 * width, 12))


def _skirt(P: Painter, rng, iid, length, flare, waist_y):
    fig = P.fig
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
    for _k in range(int(rng.integers(2, 6))):  # folds
        x0 = rng.uniform(-0.7, 0.7)
        P.line_shade(iid, [[x0 * fig.waist, waist_y + 0.3], [x0 * hem_hw * 1.05, hem - 0.05]],
                     rng.uniform(185, 225), 0.05)
    return hem


def _pants(P: Painter, rng, iid, p) -> None:
    fig = P.fig
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
        P.poly(iid, chain([fig.hipj[side] + [side * 0.02, -0.05], fig.knee[side], a], w, frac))
        if frac > 0.5:  # crease
            P.line_shade(iid, [fig.hipj[side] + [0, 0.4], fig.knee[side] + [0, 0.3]], 215, 0.035)


def _belt(P: Painter, o: dict, y, hw_scale) -> None:
    fig = P.fig
    bid = P.new("belt", o["belt"]["col"])
    P.poly(bid, [[-fig.body_hw(y) * hw_scale - 0.03, y - 0.09],
                 [fig.body_hw(y) * hw_scale + 0.03, y - 0.09],
                 [fig.body_hw(y + 0.18) * hw_scale + 0.03, y + 0.09],
                 [-fig.body_hw(y + 0.18) * hw_scale - 0.03, y + 0.09]])
    P.line_shade(bid, [[-0.07, y - 0.06], [0.07, y - 0.06], [0.07, y + 0.06], [-0.07, y + 0.06],
                  [-0.07, y - 0.06]], 120, 0.03)


def paint_dress(P: Painter, rng, o: dict) -> None:
    d = o["dress"]
    did = P.new("dress", d["col"], d["pat"])
    P.poly(did, _top_outline(P.fig, 3.1, d["neck"], min(d["loose"], 1.05), d["sleeve"] == "none"))
    _sleeves(P, did, _SLEEVE[d["sleeve"]], 1.15 if d["flare"] < 1.8 else 1.45)
    _skirt(P, rng, did, d["len"], d["flare"], 2.95)
    if "belt" in o:
        _belt(P, o, 3.0, 1.05)


def paint_separates(P: Painter, rng, o: dict) -> None:
    """Top with skirt, trousers or shorts (+ belt): a tucked top goes under the bottom, a loose one over."""
    t = o["top"]
    tucked = t["hem"] == "tucked" or (t["hem"] == "crop")
    hem = rng.uniform(*_TOP_HEM[t["hem"]])

    def draw_top():
        tid = P.new("top", t["col"], t["pat"])
        P.poly(tid, _top_outline(P.fig, hem, t["neck"], t["loose"], t["sleeve"] == "none"))
        _sleeves(P, tid, _SLEEVE[t["sleeve"]], 1.1 * t["loose"])

    if tucked:
        draw_top()
    if "skirt" in o:
        sk = o["skirt"]
        bottom = P.new("skirt", sk["col"], sk["pat"])
        _skirt(P, rng, bottom, sk["len"], sk["flare"], rng.uniform(2.85, 3.05))
    else:
        pn = o["pants"]
        bottom = P.new("shorts" if pn["len"] == "shorts" else "pants", pn["col"], pn["pat"])
        _pants(P, rng, bottom, pn)
    if not tucked:
        draw_top()
    if "belt" in o and (tucked or rng.random() < 0.3):
        _belt(P, o, 3.0 if tucked else hem - 0.25, 1.06 if tucked else 1.12 * t["loose"])


def paint_tie(P: Painter, rng, o: dict) -> None:
    tie = P.new("scarf/tie", o["tie"]["col"], o["tie"]["pat"])
    P.poly(tie, [[-0.07, 1.3], [0.07, 1.3], [0.05, 1.42], [0.13, 2.75], [0.0, 2.9],
                 [-0.13, 2.75], [-0.05, 1.42]])


def paint_outer(P: Painter, rng, o: dict) -> None:
    fig, ot = P.fig, o["outer"]
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
    _sleeves(P, oid, rng.uniform(0.9, 1.0), 1.35 * lo)


def paint_scarf(P: Painter, rng, o: dict) -> None:
    sc = P.new("scarf/tie", o["scarf"]["col"], o["scarf"]["pat"])
    P.poly(sc, [[-0.32, 1.12], [0.32, 1.12], [0.36, 1.5], [-0.36, 1.5]])
    side = 1 if rng.random() < 0.5 else -1
    ln = rng.uniform(2.2, 3.4)
    P.poly(sc, chain([[side * 0.12, 1.4], [side * 0.2, ln]], [0.28, 0.24]))
    if rng.random() < 0.5:
        P.poly(sc, chain([[side * 0.0, 1.4], [-side * 0.05, ln - 0.3]], [0.24, 0.22]))


def paint_head(P: Painter, rng, o: dict) -> None:
    """Hands, head, face details, hair on top of the head (+ fringe, bun)."""
    fig, skin, hr = P.fig, P.skin, P.fig.head_r
    for side in (-1, 1):
        w, e = fig.wr[side], fig.el[side]
        d = (w - e) / max(np.linalg.norm(w - e), 1e-9)
        c = w + 0.14 * d
        P.poly(skin, ellipse(c[0], c[1], 0.13, 0.16, 12))
    P.poly(skin, ellipse(0, 0.55, hr[0], hr[1], 24))
    # face details go into the shade layer (they are skin pixels, not separate instances)
    for side in (-1, 1):
        P.line_shade(skin, [[side * 0.2, 0.52], [side * 0.09, 0.52]], 70, 0.05)
        P.line_shade(skin, [[side * 0.21, 0.42], [side * 0.08, 0.41]], 120, 0.035)
    P.line_shade(skin, [[-0.09, 0.8], [0.09, 0.8]], 150, 0.04)
    cap = ellipse(0, 0.5, hr[0] + 0.04, hr[1] + 0.02, 16, math.pi - 0.35, 2 * math.pi + 0.35)
    fringe_y = rng.uniform(0.28, 0.4)
    cap = np.vstack([cap, [[hr[0] * 0.6, fringe_y], [0.0, fringe_y + 0.03],
                           [-hr[0] * 0.6, fringe_y]]])
    P.poly(P.hair, cap)
    if o["hair_len"] == "bun":
        P.poly(P.hair, ellipse(0, 0.02, 0.2, 0.17, 12))


def paint_sunglasses(P: Painter, rng, o: dict) -> None:
    gid = P.new("sunglasses", o["sunglasses"]["col"])
    for side in (-1, 1):
        P.poly(gid, ellipse(side * 0.15, 0.53, 0.12, 0.085, 12))
    P.poly(gid, [[-0.05, 0.5], [0.05, 0.5], [0.05, 0.53], [-0.05, 0.53]])


def paint_hat(P: Painter, rng, o: dict) -> None:
    h = o["hat"]
    hid = P.new("headwear", h["col"])
    k = h["kind"]
    if k == "brim":
        P.poly(hid, ellipse(0, 0.24, rng.uniform(0.62, 0.92), 0.13, 20))
        P.poly(hid, np.vstack([ellipse(0, 0.0, 0.37, 0.28, 12, math.pi, 2 * math.pi),
                               [[0.4, 0.25], [-0.4, 0.25]]]))
        P.line_shade(hid, [[-0.38, 0.17], [0.38, 0.17]], 150, 0.06)
    elif k == "cap":
        P.poly(hid, ellipse(0, 0.34, 0.41, 0.34, 14, math.pi, 2 * math.pi))
        side = rng.choice([-1, 1])
        P.poly(hid, ellipse(side * 0.12, 0.35, 0.36, 0.07, 14))
    elif k == "beanie":
        P.poly(hid, np.vstack([ellipse(0, 0.33, 0.41, 0.36, 14, math.pi, 2 * math.pi),
                               [[0.42, 0.42], [-0.42, 0.42]]]))
        P.line_shade(hid, [[-0.4, 0.3], [0.4, 0.3]], 170, 0.04)
    elif k == "beret":
        P.poly(hid, ellipse(rng.uniform(-0.1, 0.1), 0.12, 0.46, 0.16, 16))
    else:  # bow
        side = rng.uniform(-0.15, 0.15)
        P.poly(hid, [[side, 0.08], [side - 0.32, -0.1], [side - 0.3, 0.24]])
        P.poly(hid, [[side, 0.08], [side + 0.32, -0.1], [side + 0.3, 0.24]])
        P.poly(hid, ellipse(side, 0.08, 0.08, 0.07, 10))


def paint_bag(P: Painter, rng, o: dict) -> None:
    fig, b = P.fig, o["bag"]
    bid = P.new("bag", b["col"], b["pat"])
    sz = b["size"]
    side = 1 if rng.random() < 0.5 else -1
    if b["kind"] != "shoulder" and fig.pose[side] != "down":
        side = -side
    if b["kind"] == "shoulder" or fig.pose[side] != "down":
        cross = rng.random() < 0.5
        s0 = np.array([(-side if cross else side) * (fig.sw - 0.3), 1.35])
        c = np.array([side * (fig.hip + 0.18 * sz), rng.uniform(3.5, 4.3)])
        P.poly(bid, chain([s0, c + [0, -0.25]], [0.06, 0.06]))
        wv, hv = 0.62 * sz, 0.5 * sz
    else:
        w = fig.wr[side]
        wv, hv = (0.6 * sz, 0.3 * sz) if b["kind"] == "clutch" else (0.75 * sz, 0.6 * sz)
        c = w + np.array([side * 0.05, hv / 2 + (0.0 if b["kind"] == "clutch" else 0.25)])
        if b["kind"] == "hand":
            P.poly(bid, chain(ellipse(c[0], c[1] - hv / 2, wv * 0.35, 0.3, 9, math.pi,
                                      2 * math.pi), np.full(9, 0.05)))
    rect = [[c[0] - wv / 2, c[1] - hv / 2], [c[0] + wv / 2, c[1] - hv / 2],
            [c[0] + wv / 2 * 1.05, c[1] + hv / 2], [c[0] - wv / 2 * 1.05, c[1] + hv / 2]]
    P.poly(bid, rect)
    P.line_shade(bid, [[c[0] - wv / 2, c[1] - hv / 4], [c[0] + wv / 2, c[1] - hv / 4]], 185, 0.03)


# Body part or garment -> painter, in draw order (back to front): later parts cover earlier ones,
# and ModaNet's visible masks follow that order. Garments are painted when the outfit has them
# ("top" paints the separates: top and skirt/trousers), body parts always.
PAINTERS = {
    "back_hair": paint_back_hair, "body": paint_body, "shoes": paint_shoes, "dress": paint_dress,
    "top": paint_separates, "tie": paint_tie, "outer": paint_outer, "scarf": paint_scarf,
    "head": paint_head, "sunglasses": paint_sunglasses, "hat": paint_hat, "bag": paint_bag,
}
BODY_PARTS = ("back_hair", "body", "head")


def draw_figure(rng, fig: Figure, outfit: dict, W: int, H: int) -> Painter:
    """The figure wearing ``outfit``, drawn part by part into a label image."""
    P = Painter(fig, W, H)
    P.skin = P.new(None, outfit["skin"], {"kind": "skin"})
    P.hair = P.new(None, outfit["hair"], {"kind": "hair"})
    for part, paint in PAINTERS.items():
        if part in BODY_PARTS or part in outfit:
            paint(P, rng, outfit)
    return P
