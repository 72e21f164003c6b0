"""Stand-in salient-object model exported as a rembg ``u2net_custom`` ONNX file.

The demo cannot download rembg's real weights, so the pipeline trains a small
mini U-Net on a generated salient-object set and exports it with U^2-Net's
tensor contract (see docs of rembg ``u2net_custom``):

* input  ``[N, 3, 320, 320]`` float32, preprocessed by rembg's
  ``BaseSession.normalize`` (RGB, 320x320 LANCZOS, divide by the image max,
  ImageNet mean/std);
* output 0 ``[N, 1, 80, 80]`` saliency in [0, 1] (rembg uses ``out[0][:, 0]``,
  min-max normalises it and resizes it to the image size), output 1 a coarser
  side output, like U^2-Net's d1..d6 (ignored by rembg).

The network's first op is a fixed ``AvgPool2d(4)``, so training runs on the
pooled 80x80 tensors, which are computed once up front.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from .u2net_arch import export_batched_onnx

# rembg's u2net / u2net_custom preprocessing constants (sessions/u2net_custom.py).
U2NET_MEAN = (0.485, 0.456, 0.406)
U2NET_STD = (0.229, 0.224, 0.225)
U2NET_SIZE = (320, 320)
POOL = 4  # fixed first op: 320x320 -> 80x80
OUT_SIZE = (U2NET_SIZE[0] // POOL, U2NET_SIZE[1] // POOL)


def rembg_normalize(
    img: Image.Image,
    mean: tuple[float, float, float] = U2NET_MEAN,
    std: tuple[float, float, float] = U2NET_STD,
    size: tuple[int, int] = U2NET_SIZE,
) -> np.ndarray:
    """Mirror of ``rembg.sessions.base.BaseSession.normalize`` (rembg 2.0.86).

    Returns the float32 ``(1, 3, H, W)`` array rembg feeds to the ONNX model.
    Kept operation-for-operation identical (float64 maths, cast at the end) so
    the training inputs match inference inputs bit for bit.
    """
    im = img.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    im_ary = np.array(im)
    # rembg divides by the image's own max, not by 255.
    im_ary = im_ary / max(np.max(im_ary), 1e-6)
    tmp = np.zeros((im_ary.shape[0], im_ary.shape[1], 3))
    for c in range(3):
        tmp[:, :, c] = (im_ary[:, :, c] - mean[c]) / std[c]
    tmp = tmp.transpose((2, 0, 1))
    return np.expand_dims(tmp, 0).astype(np.float32)


def _pooled_input(img: Image.Image) -> np.ndarray:
    """rembg-normalised image after the model's fixed AvgPool2d(4): (3, 80, 80)."""
    x = rembg_normalize(img)[0]
    c, h, w = x.shape
    # Non-overlapping 4x4 mean == AvgPool2d(4) (float32 like the model).
    return x.reshape(c, h // POOL, POOL, w // POOL, POOL).mean(axis=(2, 4), dtype=np.float32)


def _target(mask: Image.Image) -> np.ndarray:
    """Soft 80x80 target in [0, 1] (area average of the binary truth mask)."""
    m = mask.convert("L").resize((OUT_SIZE[1], OUT_SIZE[0]), Image.Resampling.BOX)
    return (np.asarray(m, dtype=np.float32) / 255.0)[None]


def load_sod_dir(sod_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Load ``sod_dir/images/*.jpg`` + ``sod_dir/masks/<stem>.png``.

    Returns pooled inputs ``(N, 3, 80, 80)`` float32, targets ``(N, 1, 80, 80)``
    float32 in [0, 1] and the sorted stems.
    """
    sod_dir = Path(sod_dir)
    img_dir, mask_dir = sod_dir / "images", sod_dir / "masks"
    paths = sorted(img_dir.glob("*.jpg"))
    if not paths:
        raise FileNotFoundError(
            f"no training images found: expected {img_dir}/*.jpg (with masks in {mask_dir}/<stem>.png)"
        )
    xs, ys, stems = [], [], []
    for p in paths:
        mp = mask_dir / f"{p.stem}.png"
        if not mp.is_file():
            raise FileNotFoundError(f"mask missing for training image {p}: expected {mp}")
        with Image.open(p) as im, Image.open(mp) as mk:
            if im.size != mk.size:
                raise ValueError(f"size mismatch: {p} is {im.size}, {mp} is {mk.size}")
            xs.append(_pooled_input(im))
            ys.append(_target(mk))
        stems.append(p.stem)
    return np.stack(xs), np.stack(ys), stems


def _build_model():
    """Mini U-Net (~80k params) working on the pooled 80x80 input."""
    import torch
    from torch import nn

    def block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    class MiniUNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pool = nn.AvgPool2d(POOL)  # fixed: 320 -> 80, no parameters
            self.e1 = nn.Sequential(block(3, 16, 2), block(16, 16))  # 40x40
            self.e2 = nn.Sequential(block(16, 32, 2), block(32, 32))  # 20x20
            # Dilated bottleneck at 10x10 gives a receptive field covering the
            # whole image, so "salient" can mean "differs from the rest".
            self.e3 = nn.Sequential(block(32, 48, 2), block(48, 48, dilation=2))
            self.d2 = block(48 + 32, 32)  # 20x20
            self.d1 = block(32 + 16, 16)  # 40x40
            self.head = nn.Conv2d(16, 1, 1)
            self.side = nn.Conv2d(32, 1, 1)

        def forward_pooled(self, x):
            f = nn.functional
            e1 = self.e1(x)
            e2 = self.e2(e1)
            e3 = self.e3(e2)
            d2 = self.d2(torch.cat([f.interpolate(e3, scale_factor=2.0, mode="nearest"), e2], 1))
            d1 = self.d1(torch.cat([f.interpolate(d2, scale_factor=2.0, mode="nearest"), e1], 1))
            out = f.interpolate(self.head(d1), size=OUT_SIZE, mode="bilinear", align_corners=False)
            side = f.interpolate(self.side(d2), size=OUT_SIZE, mode="bilinear", align_corners=False)
            return out, side  # logits

        def forward(self, x):
            out, side = self.forward_pooled(self.pool(x))
            return torch.sigmoid(out), torch.sigmoid(side)

    return MiniUNet()


def _loss(logits, target):
    """BCE + soft IoU (per image, averaged)."""
    import torch

    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2, 3))
    union = (p + target - p * target).sum(dim=(1, 2, 3))
    iou = (inter + 1.0) / (union + 1.0)
    return bce + (1.0 - iou).mean()


def _binary_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean per-image IoU of two boolean (N, ...) arrays; two empties -> 1."""
    pred = pred.reshape(len(pred), -1)
    truth = truth.reshape(len(truth), -1)
    inter = (pred & truth).sum(1)
    union = (pred | truth).sum(1)
    return float(np.mean(np.where(union == 0, 1.0, inter / np.maximum(union, 1))))


def train_standin_sod(
    sod_dir: Path,
    onnx_path: Path,
    *,
    seed: int = 0,
    epochs: int = 30,
    threads: int = 1,
    batch_size: int = 16,
    lr: float = 3e-3,
) -> dict:
    """Train the stand-in SOD network on ``sod_dir`` and export it to ``onnx_path``.

    ``sod_dir/images/*.jpg`` and ``sod_dir/masks/<stem>.png`` (L, 0/255).
    Deterministic for a given seed and thread count. The ONNX file is written
    atomically (tmp + rename) and follows rembg's ``u2net_custom`` contract.
    Returns training statistics (loss, IoU on the training set at 80x80).
    """
    import torch

    if epochs < 1 or batch_size < 1 or threads < 1:
        raise ValueError(f"epochs, batch_size and threads must be >= 1 (got {epochs}, {batch_size}, {threads})")
    t0 = time.perf_counter()
    x_np, y_np, stems = load_sod_dir(Path(sod_dir))
    t_load = time.perf_counter() - t0

    # Global torch state is restored afterwards: callers (tests, other stages)
    # should not inherit our thread count or determinism flag.
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = _build_model()
        n_params = sum(p.numel() for p in model.parameters())
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        total_steps = epochs * ((len(x_np) + batch_size - 1) // batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=total_steps, pct_start=0.2
        )
        x = torch.from_numpy(x_np)
        y = torch.from_numpy(y_np)
        n = len(x)
        epoch_losses: list[float] = []
        model.train()
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen)
            tot, cnt = 0.0, 0
            for i in range(0, n, batch_size):
                idx = order[i : i + batch_size]
                xb, yb = x[idx], y[idx]
                # Random horizontal flip: cheap augmentation, seeded.
                flip = torch.rand(len(idx), generator=gen) < 0.5
                xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
                yb = torch.where(flip[:, None, None, None], yb.flip(-1), yb)
                out, side = model.forward_pooled(xb)
                loss = _loss(out, yb) + 0.5 * _loss(side, yb)  # deep supervision
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                tot += float(loss.detach()) * len(idx)
                cnt += len(idx)
            epoch_losses.append(tot / cnt)

        model.eval()
        with torch.no_grad():
            probs = torch.cat(
                [torch.sigmoid(model.forward_pooled(x[i : i + 64])[0]) for i in range(0, n, 64)]
            ).numpy()
        truth = y_np >= 0.5
        train_iou = _binary_iou(probs >= 0.5, truth)
        baseline = _binary_iou(np.ones_like(truth), truth)
        t_train = time.perf_counter() - t0 - t_load

        export_batched_onnx(model, onnx_path, (3, *U2NET_SIZE), ["d0", "d1"], quiet=(DeprecationWarning,))
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det)

    return {
        "n_images": n,
        "n_params": int(n_params),
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "final_loss": epoch_losses[-1],
        "epoch_losses": epoch_losses,
        "train_iou": train_iou,
        "train_baseline_iou_all_foreground": baseline,
        "load_seconds": round(t_load, 3),
        "train_seconds": round(t_train, 3),
        "onnx_path": str(onnx_path),
    }
