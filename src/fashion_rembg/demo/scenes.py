"""The demo's scenes: street/room/park/studio backdrops whose clutter is a knob, and one full image
(figure composited on its backdrop, with the true foreground mask)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from .figures import Figure, draw_figure
from .styles import BG_FLOORS, BG_STYLE, BG_WALLS, COLOURS, FS14_STYLES, SCENE_WEIGHTS, SCENES, jitter
from .textures import quantised_grain, render_figure_rgb


# ----------------------------------------------------------------------------------------------
# Backgrounds
# ----------------------------------------------------------------------------------------------
def background_spec(rng, style_idx, corr: float) -> dict:
    if style_idx is not None and rng.random() < corr:
        scene, wall, floor, acc = BG_STYLE[FS14_STYLES[style_idx]]
        if rng.random() > 0.85:
            scene = SCENES[int(rng.choice(4, p=SCENE_WEIGHTS))]
        accents = [jitter(rng, COLOURS[a], 18.0) for a in acc]
        return {"scene": scene, "wall": jitter(rng, wall, 9.0, (0.95, 1.05)),
                "floor": jitter(rng, floor, 9.0, (0.95, 1.05)), "accents": accents, "specific": True}
    names = list(COLOURS)
    accents = [jitter(rng, COLOURS[names[int(rng.integers(len(names)))]], 18.0) for _ in range(2)]
    return {"scene": SCENES[int(rng.choice(4, p=SCENE_WEIGHTS))],
            "wall": jitter(rng, BG_WALLS[int(rng.integers(len(BG_WALLS)))], 10.0),
            "floor": jitter(rng, BG_FLOORS[int(rng.integers(len(BG_FLOORS)))], 10.0),
            "accents": accents, "specific": False}


def _rand_col(rng, spec):
    r = rng.random()
    if r < 0.35:
        return tuple(int(v) for v in jitter(rng, spec["wall"], 25.0, (0.6, 1.3)))
    if r < 0.6:
        return tuple(int(v) for v in jitter(rng, spec["accents"][int(rng.integers(2))], 20.0))
    if r < 0.75:
        return tuple(int(v) for v in jitter(rng, spec["floor"], 20.0, (0.7, 1.3)))
    return tuple(int(v) for v in rng.integers(20, 240, 3))


# The backdrop every image shares at clutter 0 (a plain studio wall): with no clutter the background
# varies not at all, so it carries nothing that background removal could take away.
_PLAIN_WALL = np.array((214, 210, 204), np.float32)
_PLAIN_FLOOR = np.array((176, 172, 166), np.float32)


class _Backdrop:
    """One backdrop being drawn: the canvas, its random stream and the scene's geometry."""

    def __init__(self, img, rng, spec: dict, W: int, H: int, floor_y: float, clutter: float, wall, floor,
                 vx: float):
        self.d, self.rng, self.spec, self.W, self.H = ImageDraw.Draw(img), rng, spec, W, H
        self.fy, self.lam, self.wall = int(floor_y), clutter, wall
        self.f_top = tuple(int(v) for v in np.clip(floor * 1.08, 0, 255))
        self.f_bot = tuple(int(v) for v in np.clip(floor * 0.85, 0, 255))
        self.vx = vx  # vanishing point (x) of street/path lines

    def floor_fill(self, c0, c1):
        d, W, H, fy = self.d, self.W, self.H, self.fy
        for k in range(8):  # banded vertical gradient (cheap)
            t = k / 7
            c = tuple(int(c0[i] * (1 - t) + c1[i] * t) for i in range(3))
            d.rectangle([0, fy + (H - fy) * k / 8, W, fy + (H - fy) * (k + 1) / 8 + 1], fill=c)

    def rect(self, x0, y0, x1, y1, **kw):
        self.d.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], **kw)


def _paint_studio(b: _Backdrop) -> None:
    """Studio: a floor and a few stand or cable lines."""
    d, rng, W, fy, lam, wall, f_bot, floor_fill = b.d, b.rng, b.W, b.fy, b.lam, b.wall, b.f_bot, b.floor_fill
    floor_fill(tuple(int(v) for v in np.clip(wall * 0.95, 0, 255)), f_bot)
    for _ in range(rng.poisson(2 * lam)):
        x = rng.uniform(0, W)
        d.line([x, fy, x + rng.uniform(-20, 20), rng.uniform(0, fy)], fill=(60, 60, 60),
               width=max(1, W // 150))


def _paint_room(b: _Backdrop) -> None:
    """Room: floor planks, skirting, wallpaper, windows, frames, shelves, doors, plants, lamps."""
    d, rng, spec, W, H, fy, lam, wall, f_top, f_bot, rect, floor_fill = (
        b.d, b.rng, b.spec, b.W, b.H, b.fy, b.lam, b.wall, b.f_top, b.f_bot, b.rect, b.floor_fill
    )
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


def _paint_street(b: _Backdrop) -> None:
    """Street: pavement in perspective, facades with windows and shop fronts, poles, cars, people."""
    d, rng, spec, W, H, fy, lam, f_top, f_bot, vx, rect, floor_fill = (
        b.d, b.rng, b.spec, b.W, b.H, b.fy, b.lam, b.f_top, b.f_bot, b.vx, b.rect, b.floor_fill
    )
    floor_fill(f_top, f_bot)
    for _k in range(int(3 + 6 * lam)):  # perspective pavement lines
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


def _paint_park(b: _Backdrop) -> None:
    """Park: grass, a path, a tree line and trees."""
    d, rng, W, H, fy, lam, vx, floor_fill = b.d, b.rng, b.W, b.H, b.fy, b.lam, b.vx, b.floor_fill
    grass = tuple(int(v) for v in jitter(rng, (95, 140, 70), 12.0))
    floor_fill(grass, tuple(int(v * 0.8) for v in grass))
    if rng.random() < 0.6:
        d.polygon([(vx - 0.05 * W, fy), (vx + 0.05 * W, fy), (vx + 0.5 * W, H),
                   (vx - 0.5 * W, H)], fill=tuple(int(v) for v in jitter(rng, (190, 175, 145))))
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


def _paint_clutter(b: _Backdrop) -> None:
    """Generic clutter on every scene: random rectangles / ellipses / lines."""
    d, rng, spec, W, H, lam, rect = b.d, b.rng, b.spec, b.W, b.H, b.lam, b.rect
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


# Scene (``background_spec``'s "scene") -> painter of its detail.
SCENE_PAINTERS = {"studio": _paint_studio, "room": _paint_room, "street": _paint_street, "park": _paint_park}


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
    vx = W * rng.uniform(0.3, 0.7)
    b = _Backdrop(img, rng, spec, W, H, floor_y, clutter, wall, floor, vx)
    SCENE_PAINTERS[spec["scene"]](b)
    _paint_clutter(b)
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
        g = quantised_grain(amp, k)
        oy, ox = int(rng.integers(0, g.shape[0] - H + 1)), int(rng.integers(0, g.shape[1] - W + 1))
        noise = Image.fromarray(g[oy:oy + H, ox:ox + W], "RGB")
        img = ImageChops.add(img, noise, 1.0, -k)
    return img


# ----------------------------------------------------------------------------------------------
# One full image
# ----------------------------------------------------------------------------------------------
def render_image(rng, rng_bg, W, H, outfit, bg_spec, clutter, *, zoom):
    """Figure from `rng`, background from `rng_bg` (so background knobs never change the figure)."""
    fig = Figure(rng, W, H, zoom=zoom)
    P = draw_figure(rng, fig, outfit, W, H)
    (y0, y1, x0, x1), fig_rgb, fg, lab = render_figure_rgb(rng, P, W, H)
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

