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

Modules: ``styles`` (what people wear), ``figures`` (drawing them, one painter per garment),
``textures`` (colouring), ``scenes`` (backdrops, one full image), ``writers`` (the raw formats),
``fashionpedia`` (the Fashionpedia look-alike, ``generate_fashionpedia``, written into its own folder),
``arguments`` (argument checks).
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

from .arguments import check_int, check_unit
from .styles import FS14_STYLES, MODANET_CATEGORIES, MODANET_NAMES, STYLE_OVERLAP
from .writers import (
    FS14_DIR,
    JPEG_QUALITY,
    MODANET_ID_RANGE,
    write_fashionstyle14,
    write_info,
    write_modanet,
    write_sod_train,
)

__all__ = [
    "FS14_STYLES",
    "MODANET_CATEGORIES",
    "MODANET_NAMES",
    "JPEG_QUALITY",
    "demo_settings",
    "fashionpedia_settings",
    "generate_demo",
    "generate_fashionpedia",
]

_OUTPUT_ENTRIES = (FS14_DIR, "modanet", "truth", "sod_train", "demo_info.json")


# Keys of the config's `demo` block that are not generate_demo arguments.
_NOT_DEMO_ARGUMENTS = ("enabled", "out_dir", "fashionpedia")


def demo_settings(demo: dict) -> dict:
    """``generate_demo``'s keyword arguments from the config's ``demo`` block."""
    return {k: v for k, v in demo.items() if k not in _NOT_DEMO_ARGUMENTS}


def fashionpedia_settings(demo: dict) -> dict:
    """``generate_fashionpedia``'s keyword arguments: ``demo.fashionpedia``, whose seed and clutter
    default to the demo's."""
    shared = {k: demo[k] for k in ("seed", "clutter") if k in demo}
    return shared | dict(demo.get("fashionpedia") or {})


def __getattr__(name):
    # The Fashionpedia look-alike needs pycocotools and scipy (~1 s to import): loaded when used, so
    # that the Snakefile can import the settings helpers above at parse time.
    if name == "generate_fashionpedia":
        from .fashionpedia import generate_fashionpedia

        return generate_fashionpedia
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_check_int = functools.partial(check_int, "generate_demo")
_check_unit = functools.partial(check_unit, "generate_demo")


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


def generate_demo(out_dir: Path, *, seed: int = 0, fs14_per_class: int = 40,
                  modanet_train: int = 120, modanet_val: int = 20, sod_train: int = 200,
                  clutter: float = 0.7, bg_label_correlation: float = 0.0, style_signal: float = 0.0,
                  style_overlap: float = STYLE_OVERLAP, only_fashionstyle14: bool = False) -> dict:
    """Write the synthetic FashionStyle14 / ModaNet raw data, truth masks and SOD set.

    Returns a counts summary (also stored in ``out_dir/demo_info.json``).  Identical arguments give
    byte-identical files.  A previous demo in ``out_dir`` is replaced; anything else is refused.
    """
    if not isinstance(out_dir, (str, os.PathLike)):
        raise ValueError(f"generate_demo: out_dir must be a path, got {out_dir!r}")
    seed = _check_int("seed", seed, 0)
    fs14_per_class = _check_int("fs14_per_class", fs14_per_class, 3)  # >= 1 per split
    n_ids = MODANET_ID_RANGE[1] - MODANET_ID_RANGE[0] + 1
    modanet_train = _check_int("modanet_train", modanet_train, 1, n_ids)
    modanet_val = _check_int("modanet_val", modanet_val, 0, n_ids - modanet_train)
    sod_train = _check_int("sod_train", sod_train, 0)
    clutter = _check_unit("clutter", clutter)
    bg_label_correlation = _check_unit("bg_label_correlation", bg_label_correlation)
    style_signal = _check_unit("style_signal", style_signal)
    style_overlap = _check_unit("style_overlap", style_overlap)
    out = Path(out_dir)
    _prepare_out_dir(out)

    splits = write_fashionstyle14(out, seed=seed, per_class=fs14_per_class, clutter=clutter,
                                  bg_label_correlation=bg_label_correlation, style_signal=style_signal,
                                  style_overlap=style_overlap)
    modanet = dict.fromkeys(("train_images", "val_images", "annotations", "multi_polygon_annotations",
                             "lmdb_entries"), 0)
    if not only_fashionstyle14:  # a control variant of the FS14 look-alike: no ModaNet, no saliency set
        modanet = write_modanet(out, seed=seed, n_train=modanet_train, n_val=modanet_val, clutter=clutter)
        write_sod_train(out, seed=seed, n=sod_train, clutter=clutter)

    counts = {
        "fashionstyle14": {"styles": len(FS14_STYLES), "per_class": fs14_per_class,
                           "images": fs14_per_class * len(FS14_STYLES),
                           **{sp: len(v) for sp, v in splits.items()}},
        "modanet": modanet,
        "sod_train": sod_train,
    }
    args = {"seed": seed, "fs14_per_class": fs14_per_class, "modanet_train": modanet_train,
            "modanet_val": modanet_val, "sod_train": sod_train, "clutter": clutter,
            "bg_label_correlation": bg_label_correlation, "style_signal": style_signal,
            "style_overlap": style_overlap, "only_fashionstyle14": only_fashionstyle14}
    write_info(out, args, counts)
    return counts
