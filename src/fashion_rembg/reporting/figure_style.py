"""What every report figure shares: dpi, a fixed style independent of the user's matplotlibrc, pixel-exact
sizes and PNGs without version metadata, so the same inputs give byte-identical files."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.style

# Agg canvas attached explicitly (no pyplot): headless, and no global backend switch.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 150
GRID_DPI = 100
# Independent of the user's matplotlibrc so output does not depend on the machine.
STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.alpha": 0.35,
    "grid.linewidth": 0.6,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "figure.constrained_layout.h_pad": 0.06,
    "figure.constrained_layout.w_pad": 0.06,
}


def snap_inches(inches: float, dpi: int) -> float:
    """Inches for a whole number of pixels. Matplotlib truncates figsize*dpi, so a
    quarter pixel is added to keep float error from dropping the last row."""
    return (round(inches * dpi) + 0.25) / dpi


def save_png(fig: Figure, out_png: Path | str, dpi: int) -> Path:
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)  # attach an Agg canvas explicitly (no pyplot)
    # No "Software" entry: the matplotlib version would otherwise change the bytes.
    fig.savefig(out, format="png", dpi=dpi, metadata={"Software": None})
    return out


def report_style():
    # "default" resets anything a matplotlibrc may have changed; STYLE then applies ours.
    return matplotlib.style.context(["default", STYLE])
