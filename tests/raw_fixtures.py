"""Small look-alikes of the raw datasets in their real distribution formats (see
../shared/reference/datasets.md), built by the tests: FashionStyle14 folder/archive, ModaNet JSON +
PaperDoll LMDB (+ photos.lmdb.tar), Fashionpedia JSONs + zips."""
import io
import json
import tarfile
import unicodedata
import zipfile
from pathlib import Path

import lmdb
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from fashion_rembg.datasets.fashionpedia import CATEGORIES as FP_CATEGORIES
from fashion_rembg.datasets.fashionstyle14 import STYLES
from fashion_rembg.datasets.modanet import CATEGORIES as MODANET_CATEGORIES


def save_image(path, color, size=(40, 60), mode="RGB", **save):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, **save)


def jpeg_bytes(color, size=(400, 600), exif_orientation=None):
    buf = io.BytesIO()
    extra = {}
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        extra["exif"] = exif.tobytes()
    Image.new("RGB", size, color).save(buf, format="JPEG", quality=95, **extra)
    return buf.getvalue()


def make_fs14(root, per_split=("train", "train", "val", "test"), bad_cases=True):
    """FashionStyle14_v1/ with dataset/<style>/<32hex>.jpg and header-less split CSVs.

    Bad cases: zero-byte and truncated JPEGs, CMYK JPEG, RGBA/palette PNG, 16-bit PNG, EXIF-rotated
    JPEG, an NFD file name listed in NFC, a CSV line without file, an unknown style, a malformed line.
    """
    root = Path(root)
    lines = {"train": [], "val": [], "test": []}
    for k, style in enumerate(STYLES):
        for i, split in enumerate(per_split):
            name = f"{k:02d}{i:030x}.jpg"
            save_image(root / "dataset" / style / name, (k * 18, 100, 200 - k * 10))
            lines[split].append(f"dataset/{style}/{name}")
    if bad_cases:
        d = root / "dataset"
        (d / "gal" / "zero.jpg").write_bytes(b"")
        (d / "gal" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
        save_image(d / "rock" / "cmyk.jpg", (0, 50, 100, 0), mode="CMYK")
        save_image(d / "rock" / "rgba.png", (255, 0, 0, 0), mode="RGBA")
        save_image(d / "rock" / "palette.png", 3, mode="P")
        Image.fromarray(np.full((60, 40), 65535, dtype=np.uint16)).save(d / "mode" / "deep.png")
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90°: stored landscape, displayed portrait
        Image.new("RGB", (60, 40), (10, 20, 30)).save(d / "mode" / "rotated.jpg", exif=exif.tobytes())
        save_image(d / "fairy" / unicodedata.normalize("NFD", "café.jpg"), (1, 2, 3))
        lines["train"] += ["dataset/gal/zero.jpg", "dataset/gal/broken.jpg", "dataset/rock/cmyk.jpg",
                           "dataset/rock/rgba.png", "dataset/rock/palette.png", "dataset/mode/deep.png",
                           "dataset/mode/rotated.jpg", unicodedata.normalize("NFC", "dataset/fairy/café.jpg"),
                           "dataset/street/missing.jpg", "dataset/unknown/x.jpg", "not a path"]
    for split, rows in lines.items():
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root


def pack(folder, archive, fmt):
    """Pack `folder` (as its own top-level folder) into a zip or tar/tar.gz/tar.bz2/tar.xz."""
    folder, archive = Path(folder), Path(archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for path in sorted(folder.rglob("*")):
                zf.write(path, f"{folder.name}/{path.relative_to(folder)}")
    else:
        mode = {"tar": "w", "tar.gz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}[fmt]
        with tarfile.open(archive, mode) as tf:
            tf.add(folder, arcname=folder.name)
    return archive


def coco_json(images, annotations, categories):
    return {"info": {}, "images": images, "year": 2018, "licenses": [], "type": "instances",
            "annotations": annotations, "categories": categories}


MODANET_IDS = [31, 1007, 2048, 40960, 55555, 70001, 90000, 100014, 120000, 132670]


def make_modanet(folder, ids=MODANET_IDS, missing_key=90000, unannotated=2048):
    """modanet2018_instances_train.json + photos.lmdb (one id missing from the LMDB, one image
    without annotations, a two-polygon footwear annotation, a dress overlapped by it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    lmdb_dir = folder / "photos.lmdb"
    env = lmdb.open(str(lmdb_dir), map_size=2**26)
    with env.begin(write=True) as txn:
        for n, image_id in enumerate(ids):
            images.append(
                {"file_name": f"{image_id:07d}.jpg", "width": 400, "height": 600, "id": image_id, "license": 3}
            )
            if image_id != missing_key:
                txn.put(str(image_id).encode(), jpeg_bytes((n * 20, 80, 160)))
            if image_id == unannotated:
                continue
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 6,
                    "iscrowd": 0,
                    "area": 40000,
                    "bbox": [100, 100, 200, 200],
                    "segmentation": [[100, 100, 300, 100, 300, 300, 100, 300]],
                }
            )
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 4,
                    "iscrowd": 0,
                    "area": 800,
                    "bbox": [100, 500, 60, 40],
                    "segmentation": [
                        [100, 500, 130, 500, 130, 540, 100, 540],
                        [230, 500, 260, 500, 260, 540, 230, 540],
                    ],
                }
            )
    env.close()
    categories = [{"id": i, "name": n, "supercategory": "fashion"} for i, n in enumerate(MODANET_CATEGORIES, 1)]
    ann_path = folder / "modanet2018_instances_train.json"
    ann_path.write_text(json.dumps(coco_json(images, annotations, categories)))
    return ann_path, lmdb_dir


def rle_of(mask, compressed=True):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    if compressed:
        return {"size": rle["size"], "counts": rle["counts"].decode()}
    flat = mask.astype(np.uint8).flatten(order="F")
    counts, current, run = [], 0, 0
    for value in flat:
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


FP_SIZES = {1: (300, 450), 2: (450, 300), 3: (320, 480), 4: (300, 300)}


def fashionpedia_split(official, ids=(1, 2, 3, 4)):
    """Images of different sizes; annotations mixing polygons, compressed and uncompressed RLE,
    a garment part (sleeve) on a garment, empty attribute lists; ids restart per split."""
    images, annotations = [], []
    for image_id in ids:
        w, h = FP_SIZES[image_id]
        images.append(
            {
                "id": image_id,
                "width": w,
                "height": h,
                "file_name": f"{image_id + (100 if official == 'val' else 0):012d}.jpg",
                "license": 1,
                "time_captured": "",
                "original_url": "",
                "isstatic": 1,
                "kaggle_id": "",
            }
        )
        # shirt (cat 0): polygon covering the top half
        annotations.append(
            {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": 0,
                "attribute_ids": [115, 136],
                "segmentation": [[0, 0, w, 0, w, h // 2, 0, h // 2]],
                "bbox": [0, 0, w, h // 2],
                "area": w * h // 2,
                "iscrowd": 0,
            }
        )
        # sleeve (cat 31, a part) inside the shirt: compressed RLE
        sleeve = np.zeros((h, w), bool)
        sleeve[10:30, 10:40] = True
        annotations.append(
            {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": 31,
                "attribute_ids": [],
                "segmentation": rle_of(sleeve),
                "bbox": [10, 10, 30, 20],
                "area": 600,
                "iscrowd": 0,
            }
        )
        # shoe (cat 23): uncompressed RLE at the bottom
        shoe = np.zeros((h, w), bool)
        shoe[h - 40 : h - 10, w // 4 : w // 2] = True
        annotations.append(
            {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": 23,
                "attribute_ids": [],
                "segmentation": rle_of(shoe, compressed=False),
                "bbox": [w // 4, h - 40, w // 4, 30],
                "area": int(shoe.sum()),
                "iscrowd": 0,
            }
        )
    categories = [
        {"id": i, "name": n, "supercategory": "x", "level": 2, "taxonomy_id": ""} for i, n in enumerate(FP_CATEGORIES)
    ]
    doc = coco_json(images, annotations, categories)
    doc["attributes"] = [{"id": 115, "name": "regular (fit)", "supercategory": "length", "level": 1, "taxonomy_id": ""}]
    return doc


def make_fashionpedia(folder, as_folders=False):
    """instances_attributes_{train,val}2020.json, train2020.zip (train/) and val_test2020.zip (test/ with
    the val images plus test-only images). Train image 4 is missing from the zip."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    train, val = fashionpedia_split("train"), fashionpedia_split("val", ids=(1, 2, 3))
    (folder / "instances_attributes_train2020.json").write_text(json.dumps(train))
    (folder / "instances_attributes_val2020.json").write_text(json.dumps(val))
    members = {"train": [], "test": []}
    for im in train["images"]:
        if im["id"] != 4:
            members["train"].append((im["file_name"], jpeg_bytes((200, 30, 30), (im["width"], im["height"]))))
    for im in val["images"]:
        members["test"].append((im["file_name"], jpeg_bytes((30, 200, 30), (im["width"], im["height"]))))
    members["test"].append(("000000009999.jpg", jpeg_bytes((0, 0, 0), (100, 100))))  # a test-only image
    paths = {}
    for zip_name, folder_name in (("train2020.zip", "train"), ("val_test2020.zip", "test")):
        if as_folders:
            target = folder / zip_name.replace(".zip", "") / folder_name
            target.mkdir(parents=True, exist_ok=True)
            for name, data in members[folder_name]:
                (target / name).write_bytes(data)
            paths[zip_name] = target.parent
        else:
            with zipfile.ZipFile(folder / zip_name, "w") as zf:
                for name, data in members[folder_name]:
                    zf.writestr(f"{folder_name}/{name}", data)
            paths[zip_name] = folder / zip_name
    return {
        "train_annotations": str(folder / "instances_attributes_train2020.json"),
        "val_annotations": str(folder / "instances_attributes_val2020.json"),
        "train_images": str(paths["train2020.zip"]),
        "val_images": str(paths["val_test2020.zip"]),
    }


OWN_CLASSES = ("bags", "dresses", "shoes")


def make_imagefolder(root, per_class=10, size=(48, 64), classes=OWN_CLASSES):
    """<root>/<class>/<n>.jpg|png: a class-coloured garment blob on a seeded noisy background."""
    root = Path(root)
    rng = np.random.default_rng(0)
    width, height = size
    for k, cls in enumerate(classes):
        for i in range(per_class):
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            colour = np.array([(k * 90 + 40) % 256, 200 - k * 60, 60 + k * 80], dtype=np.uint8)
            pixels[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = colour
            path = root / cls / (f"{i:02d}.png" if i % 3 == 0 else f"{i:02d}.jpg")
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path)
    return root


OWN_COCO_CATEGORIES = [{"id": 3, "name": "shirt"}, {"id": 7, "name": "bag"}, {"id": 9, "name": "hat"}]


def make_own_coco(folder, n_images=10, size=(64, 48), zipped=False):
    """A COCO instances JSON with polygons (shirt), compressed and uncompressed RLE (bag) and a hat
    on every other image, and the images in a folder (or a zip with an images/ prefix-free layout)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    rng = np.random.default_rng(1)
    images, annotations, payloads = [], [], {}
    for i in range(1, n_images + 1):
        name = f"photos/img{i:03d}.jpg"
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        pixels[10:40, 15:45] = (200, 40, 40)
        pixels[30:44, 2:14] = (40, 40, 200)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=95)
        payloads[name] = buf.getvalue()
        images.append({"id": i, "file_name": name, "width": width, "height": height})
        annotations.append(
            {
                "id": 3 * i,
                "image_id": i,
                "category_id": 3,
                "area": 900,
                "iscrowd": 0,
                "segmentation": [[15, 10, 45, 10, 45, 40, 15, 40]],
            }
        )
        bag = np.zeros((height, width), dtype=bool)
        bag[30:44, 2:14] = True
        annotations.append(
            {
                "id": 3 * i + 1,
                "image_id": i,
                "category_id": 7,
                "area": 168,
                "iscrowd": 1,
                "segmentation": rle_of(bag, compressed=i % 2 == 0),
            }
        )
        if i % 2:
            annotations.append(
                {
                    "id": 3 * i + 2,
                    "image_id": i,
                    "category_id": 9,
                    "area": 40,
                    "iscrowd": 0,
                    "segmentation": [[50, 2, 60, 2, 60, 8, 50, 8]],
                }
            )
    ann_path = folder / "instances.json"
    ann_path.write_text(json.dumps(coco_json(images, annotations, OWN_COCO_CATEGORIES)))
    if zipped:
        images_path = folder / "images.zip"
        with zipfile.ZipFile(images_path, "w") as zf:
            for name, data in payloads.items():
                zf.writestr(name, data)
    else:
        images_path = folder / "images"
        for name, data in payloads.items():
            (images_path / name).parent.mkdir(parents=True, exist_ok=True)
            (images_path / name).write_bytes(data)
    return ann_path, images_path
