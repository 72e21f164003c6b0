"""Input fidelity: the store fit (cover / contain) and masks computed on the raw photo (mask_input photo).

Photos are portrait with coloured head and feet bands, so a square store shows what each fit keeps.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
import yaml
from PIL import Image
from snakemake.utils import validate

from fashion_rembg.datasets.coco import segmentation_rows
from fashion_rembg.datasets.fashionstyle14 import STYLES, prepare_fashionstyle14
from fashion_rembg.datasets.photos import StorePhotos, photo_decode_size
from fashion_rembg.datasets.store import PAD_RGB, fit_image
from fashion_rembg.datasets.truth import prepare_truth
from fashion_rembg.errors import DataError
from fashion_rembg.saliency.masks import MaskPredictor, write_photo_masks
from fashion_rembg.saliency.sessions import open_session
from fashion_rembg.saliency.stage import run_mask_shard

from test_saliency_contracts import conv_model
from workflow_helpers import ROOT

RED, GREEN, BLUE = (220, 30, 30), (30, 200, 60), (40, 40, 230)


def portrait(w=30, h=60, seed=0) -> np.ndarray:
    """Head band (red, top sixth), body (green), feet band (blue, bottom sixth) on a textured background."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 90, (h, w, 3)).astype(np.uint8)
    img[: h // 6] = RED
    img[h // 6 : h - h // 6, w // 4 : w - w // 4] = GREEN
    img[h - h // 6 :] = BLUE
    return img


def near(pixels: np.ndarray, colour, tol=40) -> np.ndarray:
    return (np.abs(pixels.astype(int) - np.asarray(colour)) <= tol).all(-1)


# ---------------------------------------------------------------- fit modes


def test_cover_crops_head_and_feet_contain_keeps_them_with_aspect():
    img = Image.fromarray(portrait())
    cover = np.asarray(fit_image(img, (32, 32), fit="cover"))
    contain = np.asarray(fit_image(img, (32, 32), fit="contain"))
    assert cover.shape == contain.shape == (32, 32, 3)
    assert not near(cover, RED).any() and not near(cover, BLUE).any()  # head and feet cut off
    assert near(contain[0, 8:24], RED).all() and near(contain[-1, 8:24], BLUE).all()
    pad = (contain == PAD_RGB).all(-1)
    assert pad[:, :8].all() and pad[:, 24:].all() and not pad[:, 8:24].any()  # 16 wide: 30/60 = 16/32
    # default is cover (stores made before the option stay byte-identical)
    assert np.array_equal(np.asarray(fit_image(img, (32, 32))), cover)
    with pytest.raises(ValueError, match="fill"):
        fit_image(img, (32, 32), fit="fill")


def test_contain_landscape_pads_rows_and_labels_pad_with_background():
    label = Image.fromarray(np.full((20, 60), 7, np.uint8))  # landscape class map, class 7 everywhere
    fitted = np.asarray(fit_image(label, (30, 30), Image.Resampling.NEAREST, "contain"))
    assert (fitted[:10] == 0).all() and (fitted[20:] == 0).all() and (fitted[10:20] == 7).all()


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("fit", ["cover", "contain"])
def test_class_maps_stay_aligned_with_images(fit):
    photo = portrait(40, 80)
    # annotations: the red head band = class 1, the blue feet band = class 2, the green body = class 3
    anns = [{"id": 1, "category_id": 3, "area": 3, "segmentation": [[10, 13, 30, 13, 30, 67, 10, 67]]},
            {"id": 2, "category_id": 1, "area": 2, "segmentation": [[0, 0, 40, 0, 40, 13, 0, 13]]},
            {"id": 3, "category_id": 2, "area": 1, "segmentation": [[0, 67, 40, 67, 40, 80, 0, 80]]}]
    rows, _ = segmentation_rows(_png(photo), 40, 80, anns, None, (32, 32), fit)
    image, classes = rows["images"], rows["classmaps"]
    for cls, colour in ((1, RED), (2, BLUE), (3, GREEN)):
        inner = near(image, colour, tol=10)  # away from the bilinear edges
        assert (classes[inner] == cls).mean() > 0.95 if inner.any() else cls != 3, (fit, cls)
    if fit == "contain":
        pad = (image == PAD_RGB).all(-1)
        assert pad[:, :8].all() and (classes[pad] == 0).all()
        assert {1, 2, 3} <= set(np.unique(classes))
    else:
        assert 1 not in classes and 2 not in classes  # cover lost head and feet in the image and the map


def make_fs14(root, photos: dict[str, np.ndarray]):
    """FashionStyle14_v1 with one PNG per style (every style folder must exist)."""
    lines = []
    for k, style in enumerate(STYLES):
        folder = root / "dataset" / style
        folder.mkdir(parents=True)
        Image.fromarray(photos.get(style, portrait(seed=k))).save(folder / f"p{k:02d}.png")
        lines.append(f"dataset/{style}/p{k:02d}.png")
    for split, part in (("train", lines[:10]), ("val", lines[10:12]), ("test", lines[12:])):
        (root / f"{split}.csv").write_text("\n".join(part) + "\n")
    return root


@pytest.fixture
def fs14(tmp_path):
    return make_fs14(tmp_path / "FashionStyle14_v1", {"street": portrait(60, 30)})  # one landscape photo


def test_prepare_fit_is_byte_stable_and_truth_follows(fs14, tmp_path):
    for name, kwargs in (("default", {}), ("cover", {"fit": "cover"}), ("contain", {"fit": "contain"}),
                         ("contain2", {"fit": "contain", "workers": 2})):
        prepare_fashionstyle14(fs14, tmp_path / name, (32, 32), **kwargs)
    read = lambda name: (tmp_path / name / "images.npy").read_bytes()  # noqa: E731
    assert read("default") == read("cover")  # the default is today's behaviour
    assert read("contain") == read("contain2") != read("cover")
    images = np.load(tmp_path / "contain" / "images.npy")
    street = STYLES.index("street")
    assert (np.delete(images, street, 0)[:, :, :8] == PAD_RGB).all()  # portraits: pad columns
    assert (images[street, :8] == PAD_RGB).all() and not (images[street, :, :8] == PAD_RGB).all()
    # true masks: the same geometry (here the green body), padded with background
    truth_dir = tmp_path / "truth"
    for k, style in enumerate(STYLES):
        photo = portrait(60, 30) if style == "street" else portrait(seed=k)
        (truth_dir / "dataset" / style).mkdir(parents=True)
        Image.fromarray(np.where(near(photo, GREEN, 0), 255, 0).astype(np.uint8)).save(
            truth_dir / "dataset" / style / f"p{k:02d}.png")
    prepare_truth(tmp_path / "contain" / "manifest.tsv", truth_dir, tmp_path / "truth.npy", (32, 32), "contain")
    truth = np.load(tmp_path / "truth.npy") >= 128
    green = near(images, GREEN, tol=10)
    assert (truth[green]).mean() > 0.95 and not truth[(images == PAD_RGB).all(-1)].any()


# ---------------------------------------------------------------- masks on the photo


@pytest.fixture
def session(tmp_path, monkeypatch):
    home = tmp_path / "models"
    home.mkdir()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    conv_model(home / "mine.onnx", 320, seed=1)
    return open_session("mine", home, custom_model_path=home / "mine.onnx")[0], home


@pytest.mark.parametrize("options", [{}, {"post_process": True}])
def test_photo_masks_equal_rembg_remove_on_the_photo(session, options):
    from rembg import remove

    session, _ = session
    photos = [portrait(30, 60), portrait(50, 20, seed=1), portrait(33, 41, seed=2)]  # sizes differ in a batch
    got = MaskPredictor(session, "u2net_custom", batch_size=3, options=options).photo_masks(photos)
    for photo, mask in zip(photos, got):
        ref = np.asarray(remove(Image.fromarray(photo), session=session, only_mask=True,
                                post_process_mask=options.get("post_process", False)))
        assert mask.shape == photo.shape[:2]
        assert np.abs(mask.astype(int) - ref).max() <= 1  # batched onnxruntime may round differently


@pytest.mark.parametrize("fit", ["cover", "contain"])
def test_photo_input_shard_fits_rembg_masks_like_the_images(session, fs14, tmp_path, fit):
    from rembg import remove

    session, home = session
    out = tmp_path / "store"
    prepare_fashionstyle14(fs14, out, (32, 32), fit=fit)
    inputs = {"fashionstyle14": [str(fs14 / "train.csv"), str(fs14 / "val.csv"), str(fs14 / "test.csv")]}
    photos = {"dataset": "fashionstyle14", "inputs": inputs, "manifest": str(out / "manifest.tsv"),
              "store_size": [32, 32], "fit": fit}
    spec = {"name": "mine-bin", "kind": "custom", "model": "mine", "file": "mine.onnx", "contract": "u2net",
            "session": "u2net_custom", "options": {"threshold": 128}}
    info = run_mask_shard(out / "images.npy", tmp_path / "m.npy", tmp_path / "m.json", start=2, stop=9, spec=spec,
                          model_home=home, threads=1, device="cpu", batch_size=4, verify_checksums=False,
                          photos=photos)
    assert info["mask_input"] == "photo"
    got = np.load(tmp_path / "m.npy")
    assert got.shape == (7, 32, 32) and set(np.unique(got)) <= {0, 255}
    with StorePhotos("fashionstyle14", inputs, out / "manifest.tsv") as source:
        for i in range(2, 9):
            photo = source.photo(i)
            assert photo.shape == (60, 30, 3)  # the whole photo, not the 32×32 store image
            soft = remove(Image.fromarray(photo), session=session, only_mask=True)
            ref = np.asarray(fit_image(soft, (32, 32), fit=fit))
            # same mask up to onnxruntime's ±1 rounding, which may flip a pixel sitting at the threshold
            assert (got[i - 2] == np.where(ref >= 128, 255, 0)).mean() > 0.99
            if fit == "contain":
                assert not got[i - 2][:, :8].any()  # the pad is background
    # store input: rembg sees the cropped store image, which gives other masks
    store_info = run_mask_shard(out / "images.npy", tmp_path / "s.npy", tmp_path / "s.json", start=2, stop=9,
                                spec=spec, model_home=home, threads=1, device="cpu", verify_checksums=False)
    assert store_info["mask_input"] == "store" and not np.array_equal(np.load(tmp_path / "s.npy"), got)


@pytest.mark.parametrize("workers", [1, 3])
def test_photo_masks_stream_one_batch_and_threads_change_nothing(session, fs14, tmp_path, workers):
    session, _ = session
    out = tmp_path / "store"
    prepare_fashionstyle14(fs14, out, (32, 32))
    seen = []

    class Counting(MaskPredictor):
        def photo_masks(self, photos):
            seen.append(len(photos))
            return super().photo_masks(photos)

    predictor = Counting(session, "u2net_custom", batch_size=4, workers=workers)
    with StorePhotos("fashionstyle14", {"fashionstyle14": str(fs14 / "train.csv")}, out / "manifest.tsv") as source:
        write_photo_masks(source, tmp_path / f"m{workers}.npy", predictor, start=0, stop=14, store_size=(32, 32),
                          fit="cover")
        one_by_one = MaskPredictor(session, "u2net_custom", batch_size=1)
        serial = [np.asarray(fit_image(Image.fromarray(m), (32, 32)))
                  for m in one_by_one.photo_masks([source.photo(i) for i in range(14)])]
    assert seen == [4, 4, 4, 2]
    assert np.abs(np.load(tmp_path / f"m{workers}.npy").astype(int) - np.stack(serial)).max() <= 1


def test_changed_raw_photo_is_a_clear_error(fs14, tmp_path):
    out = tmp_path / "store"
    prepare_fashionstyle14(fs14, out, (32, 32))
    (fs14 / "dataset" / STYLES[0] / "p00.png").unlink()
    with StorePhotos("fashionstyle14", {"fashionstyle14": str(fs14 / "train.csv")}, out / "manifest.tsv") as source:
        with pytest.raises(DataError, match=r"row 0 \(dataset/conservative/p00.png\).*rerun the prepare step"):
            source.photo(0)
    with pytest.raises(DataError, match="no photo reader"):
        StorePhotos("imagenet", {}, out / "manifest.tsv")


def test_decode_size_covers_model_and_twice_the_store():
    assert photo_decode_size((96, 64), 320) == (320, 320)
    assert photo_decode_size((384, 256), 320) == (512, 768)


# ---------------------------------------------------------------- schema


def test_schema_fit_and_mask_input():
    schema = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    validate(config, schema)
    assert config["datasets"]["fashionstyle14"]["fit"] == "cover" and config["saliency"]["mask_input"] == "store"
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    validate(paper, schema)
    assert {d["fit"] for d in paper["datasets"].values()} == {"contain"}
    assert paper["saliency"]["mask_input"] == "photo"
    config["datasets"]["modanet"]["fit"] = "stretch"
    with pytest.raises(Exception, match="stretch"):
        validate(config, schema)
    config["datasets"]["modanet"]["fit"] = "contain"
    config["saliency"]["mask_input"] = "crop"
    with pytest.raises(Exception, match="crop"):
        validate(config, schema)


# ---------------------------------------------------------------- photo readers: row i is the photo of store row i


def _stores(kind, tmp_path, fs14_root):
    """(dataset, prepare-rule inputs, store dir) of a contain store prepared from raw fixtures."""
    from fashion_rembg.datasets.fashionpedia import prepare_fashionpedia
    from fashion_rembg.datasets.modanet import extract_images, prepare_modanet

    from raw_fixtures import make_fashionpedia, make_modanet

    out = tmp_path / "store"
    if kind == "fashionstyle14":
        prepare_fashionstyle14(fs14_root, out, (24, 24), fit="contain")
        return kind, {"fashionstyle14": [str(fs14_root / "train.csv")]}, out
    if kind.startswith("modanet"):
        ann, lmdb_dir = make_modanet(tmp_path / "raw")
        images = lmdb_dir
        if kind == "modanet-extracted":  # the %07d.jpg files taken out of the LMDB, which is then deleted
            images = tmp_path / "extracted" / "modanet_images"
            extract_images(ann, lmdb_dir, images)
            for f in lmdb_dir.iterdir():
                f.unlink()
        prepare_modanet(ann, images, out, (24, 24), 0.2, 0.2, 0, fit="contain")
        marker = images / "extracted.json" if kind == "modanet-extracted" else lmdb_dir / "data.mdb"
        return "modanet", {"annotations": str(ann), "images": str(marker)}, out
    paths = make_fashionpedia(tmp_path / "raw", as_folders=kind == "fashionpedia-folders")
    prepare_fashionpedia(paths, out, (24, 24), val_fraction=0.25, fit="contain")
    return "fashionpedia", paths, out


@pytest.mark.parametrize("kind", ["fashionstyle14", "modanet", "modanet-extracted", "fashionpedia",
                                  "fashionpedia-folders"])
def test_store_photos_are_the_photos_of_the_store_rows(kind, fs14, tmp_path):
    dataset, inputs, out = _stores(kind, tmp_path, fs14)
    images = np.load(out / "images.npy")
    # decoded at the store's own JPEG draft scale (2× the store), the fitted photo is the store row, byte for byte
    with StorePhotos(dataset, inputs, out / "manifest.tsv", min_size=(48, 48)) as photos:
        assert len(photos) == len(images) > 2
        for i in range(len(images)):
            fitted = np.asarray(fit_image(Image.fromarray(photos.photo(i)), (24, 24), fit="contain"))
            assert np.array_equal(fitted, images[i]), (kind, i)
