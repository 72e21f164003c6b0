"""U^2-Net (Qin et al., 2020) in torch, for ONNX exports with rembg's real compute cost.

The layer layout follows the published U2NET / U2NETP / RSU-L / RSU-4F design (the
networks behind rembg's ``u2net`` and ``u2netp`` weights); ``width`` scales every
channel count of U2NET, so ``width=1.0`` is the full 44M-parameter network and small
widths give cheap stand-ins with the same topology (ceil-mode pooling, dilations,
7 side outputs); ``small=True`` is U2NETP (1.1M parameters).
Weights are random: this is for timing and contract tests, not for quality.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from ..atomic import atomic_file


def build_u2net(width: float = 1.0, seed: int = 0, *, small: bool = False):
    """U^2-Net with channels scaled by ``width`` (``small``: U2NETP, rembg's u2netp layout);
    outputs ``(d0, d1, ..., d6)`` as sigmoids."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    def ch(c: int) -> int:
        return max(1, int(round(c * width)))

    def up_like(src, tar):
        return F.interpolate(src, size=tar.shape[2:], mode="bilinear", align_corners=False)

    class REBNCONV(nn.Module):
        def __init__(self, cin: int, cout: int, dirate: int = 1) -> None:
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, 3, padding=dirate, dilation=dirate)
            self.bn = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            return self.relu(self.bn(self.conv(x)))

    class RSU(nn.Module):
        """RSU-L: L-level U-block with (L-2) max-pools and a dilated bottom conv."""

        def __init__(self, depth: int, cin: int, mid: int, cout: int) -> None:
            super().__init__()
            self.depth = depth
            self.conv_in = REBNCONV(cin, cout)
            self.enc = nn.ModuleList([REBNCONV(cout, mid)] + [REBNCONV(mid, mid) for _ in range(depth - 2)])
            self.bottom = REBNCONV(mid, mid, dirate=2)
            self.dec = nn.ModuleList([REBNCONV(2 * mid, mid) for _ in range(depth - 2)] + [REBNCONV(2 * mid, cout)])
            self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        def forward(self, x):
            hxin = self.conv_in(x)
            feats = []
            hx = hxin
            for i, conv in enumerate(self.enc):
                hx = conv(hx if i == 0 else self.pool(hx))
                feats.append(hx)
            hx = self.bottom(hx)
            for i, conv in enumerate(self.dec):
                skip = feats[-1 - i]
                hx = conv(torch.cat([up_like(hx, skip) if i else hx, skip], 1))
            return hx + hxin

    class RSU4F(nn.Module):
        """RSU-4F: dilated convolutions instead of pooling (full resolution)."""

        def __init__(self, cin: int, mid: int, cout: int) -> None:
            super().__init__()
            self.conv_in = REBNCONV(cin, cout)
            self.c1 = REBNCONV(cout, mid, 1)
            self.c2 = REBNCONV(mid, mid, 2)
            self.c3 = REBNCONV(mid, mid, 4)
            self.c4 = REBNCONV(mid, mid, 8)
            self.c3d = REBNCONV(2 * mid, mid, 4)
            self.c2d = REBNCONV(2 * mid, mid, 2)
            self.c1d = REBNCONV(2 * mid, cout, 1)

        def forward(self, x):
            hxin = self.conv_in(x)
            hx1 = self.c1(hxin)
            hx2 = self.c2(hx1)
            hx3 = self.c3(hx2)
            hx4 = self.c4(hx3)
            hx3d = self.c3d(torch.cat([hx4, hx3], 1))
            hx2d = self.c2d(torch.cat([hx3d, hx2], 1))
            hx1d = self.c1d(torch.cat([hx2d, hx1], 1))
            return hx1d + hxin

    class U2NET(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if small:  # U2NETP: every stage 64 channels out, 16 inside
                enc = [(7, 3, 16, 64), (6, 64, 16, 64), (5, 64, 16, 64), (4, 64, 16, 64)]
                f5 = f6 = (64, 16, 64)
                f5d = (128, 16, 64)
                dec = [(4, 128, 16, 64), (5, 128, 16, 64), (6, 128, 16, 64), (7, 128, 16, 64)]
                side_in = [64] * 6
            else:
                enc = [(7, 3, ch(32), ch(64)), (6, ch(64), ch(32), ch(128)), (5, ch(128), ch(64), ch(256)),
                       (4, ch(256), ch(128), ch(512))]
                f5 = f6 = (ch(512), ch(256), ch(512))
                f5d = (2 * ch(512), ch(256), ch(512))
                dec = [(4, 2 * ch(512), ch(128), ch(256)), (5, 2 * ch(256), ch(64), ch(128)),
                       (6, 2 * ch(128), ch(32), ch(64)), (7, 2 * ch(64), ch(16), ch(64))]
                side_in = [ch(64), ch(64), ch(128), ch(256), ch(512), ch(512)]
            self.stage1, self.stage2, self.stage3, self.stage4 = (RSU(*a) for a in enc)
            self.stage5 = RSU4F(*f5)
            self.stage6 = RSU4F(*f6)
            self.stage5d = RSU4F(*f5d)
            self.stage4d, self.stage3d, self.stage2d, self.stage1d = (RSU(*a) for a in dec)
            self.sides = nn.ModuleList([nn.Conv2d(c, 1, 3, padding=1) for c in side_in])
            self.outconv = nn.Conv2d(6, 1, 1)
            self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        def forward(self, x):
            hx1 = self.stage1(x)
            hx2 = self.stage2(self.pool(hx1))
            hx3 = self.stage3(self.pool(hx2))
            hx4 = self.stage4(self.pool(hx3))
            hx5 = self.stage5(self.pool(hx4))
            hx6 = self.stage6(self.pool(hx5))
            hx5d = self.stage5d(torch.cat([up_like(hx6, hx5), hx5], 1))
            hx4d = self.stage4d(torch.cat([up_like(hx5d, hx4), hx4], 1))
            hx3d = self.stage3d(torch.cat([up_like(hx4d, hx3), hx3], 1))
            hx2d = self.stage2d(torch.cat([up_like(hx3d, hx2), hx2], 1))
            hx1d = self.stage1d(torch.cat([up_like(hx2d, hx1), hx1], 1))
            d1 = self.sides[0](hx1d)
            ds = [d1] + [up_like(side(h), d1) for side, h in zip(self.sides[1:], (hx2d, hx3d, hx4d, hx5d, hx6))]
            d0 = self.outconv(torch.cat(ds, 1))
            return tuple(torch.sigmoid(d) for d in [d0, *ds])

    torch.manual_seed(seed)
    model = U2NET()
    # Random BN statistics so that activations do not collapse with random weights.
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def export_batched_onnx(model, path, input_shape: tuple[int, ...], output_names: list[str], *,
                        quiet: tuple[type[Warning], ...] = (Warning,)) -> Path:
    """Export ``model`` with a dynamic batch axis (input ``input.1``) to ``path`` atomically.

    The legacy exporter is deliberate: the dynamo one needs onnxscript, which is not installed.
    """
    import torch

    path = Path(path)
    with atomic_file(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        for category in quiet:
            warnings.simplefilter("ignore", category)
        torch.onnx.export(
            model,
            torch.zeros(1, *input_shape),
            str(tmp),
            input_names=["input.1"],
            output_names=list(output_names),
            dynamic_axes={"input.1": {0: "batch"}, **{n: {0: "batch"} for n in output_names}},
            opset_version=17,
            dynamo=False,
        )
    return path


def export_u2net_onnx(path, *, width: float = 1.0, size: int = 320, seed: int = 0, small: bool = False) -> Path:
    """Export U^2-Net (dynamic batch, rembg's ``u2net`` contract) to ``path`` atomically."""
    model = build_u2net(width, seed, small=small)
    return export_batched_onnx(model, path, (3, size, size), [f"d{i}" for i in range(7)])
