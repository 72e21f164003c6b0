"""Instance targets from COCO annotations: polygons, RLE (compressed and not), crowd, fit geometry,
drops with reasons, the store file pair and torchvision targets."""
import io
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from fashion_rembg.datasets.coco import ClassMapping
from fashion_rembg.datasets.instances import (
    INDEX_FILE,
    INSTANCES_FILE,
    VANISHED,
    InstanceStore,
    InstanceStoreWriter,
    fit_instances,
    instance_rows,
)
from fashion_rembg.datasets.store import fit_image
from fashion_rembg.errors import DataError

from raw_fixtures import rle_of

H, W = 40, 60  # photo frame (annotations)
MAPPING = ClassMapping({1: 1, 2: 2}, known=[1, 2, 3])  # category 3 is known but left out


def box_mask(y0, y1, x0, x1, h=H, w=W):
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def polygon_of(y0, y1, x0, x1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def compressed(m):
    return rle_of(m, compressed=True)


def uncompressed(m):
    return rle_of(m, compressed=False)


def decoded(inst, size):
    return mask_utils.decode({"size": list(size), "counts": inst[3].encode()})


@pytest.mark.parametrize("fit", ["cover", "contain"])
@pytest.mark.parametrize("encoding", ["polygon", "compressed", "uncompressed"])
def test_instance_masks_follow_the_image_geometry(fit, encoding):
    m = box_mask(10, 30, 20, 40)
    segm = {"polygon": polygon_of(10, 30, 20, 40), "compressed": compressed(m), "uncompressed": uncompressed(m)}[
        encoding
    ]
    store_size = (24, 24)
    instances, drops = fit_instances(
        [{"id": 1, "category_id": 2, "segmentation": segm}], H, W, MAPPING, store_size, fit
    )
    assert not drops and len(instances) == 1
    label, iscrowd, bbox, _ = instances[0]
    assert (label, iscrowd) == (2, 0)
    # The reference: the mask drawn at photo size, fitted as class maps are.
    ref_source = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(segm, H, W))) if encoding == "polygon" else m
    ref = np.asarray(fit_image(Image.fromarray(ref_source * 255), store_size, Image.Resampling.NEAREST, fit)) > 127
    got = decoded(instances[0], store_size)
    assert np.array_equal(got.astype(bool), ref)
    ys, xs = np.nonzero(got)
    assert bbox == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_crowd_flag_kept_left_out_and_vanished_counted():
    anns = [
        {"id": 1, "category_id": 1, "segmentation": polygon_of(5, 35, 25, 35)},
        {"id": 2, "category_id": 2, "iscrowd": 1, "segmentation": uncompressed(box_mask(0, 40, 0, 20))},
        {"id": 3, "category_id": 3, "segmentation": polygon_of(5, 10, 5, 10)},  # garment part: left out
        {"id": 4, "category_id": 1, "segmentation": polygon_of(5, 10, 0, 8)},  # cropped away by cover (60→40 wide)
        {"id": 5, "category_id": 1, "segmentation": [[1, 2, 3, 4]]},  # degenerate polygon
        {"id": 6, "category_id": 1, "segmentation": []},
    ]
    instances, drops = fit_instances(anns, H, W, MAPPING, (40, 40), "cover")
    assert [(i[0], i[1]) for i in instances] == [(1, 0), (2, 1)]
    assert drops == {
        "left out (category not in the class list)": 1,
        VANISHED: 1,
        "only degenerate polygons": 1,
        "annotation without polygons": 1,
    }


def test_unknown_category_and_bad_rle_are_data_errors():
    with pytest.raises(DataError, match="unknown category_id 9"):
        fit_instances([{"id": 1, "category_id": 9, "segmentation": polygon_of(1, 5, 1, 5)}], H, W, MAPPING, (20, 20))
    wrong = compressed(box_mask(0, 5, 0, 5, h=20, w=20))
    with pytest.raises(DataError, match="RLE size"):
        fit_instances([{"id": 1, "category_id": 1, "segmentation": wrong}], H, W, MAPPING, (20, 20))


def _jpeg(w, h, exif_orientation=None):
    img = Image.new("RGB", (w, h), (200, 30, 30))
    buf = io.BytesIO()
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        img.save(buf, "JPEG", exif=exif)
    else:
        img.save(buf, "JPEG")
    return buf.getvalue()


def test_instance_rows_image_and_exif_frame():
    anns = [{"id": 1, "category_id": 1, "segmentation": polygon_of(0, 10, 0, 60)}]  # top band of the stored pixels
    image, instances, _, _ = instance_rows(_jpeg(W, H), W, H, anns, MAPPING, (20, 30), "contain")
    assert image.shape == (20, 30, 3) and image.dtype == np.uint8 and len(instances) == 1
    # Stored 60×40 with EXIF 6 (rotate 90° clockwise to show): annotations on stored pixels are rotated too,
    # so the top band becomes the right-hand band of the shown 40×60 photo.
    image, instances, _, _ = instance_rows(_jpeg(W, H, 6), W, H, anns, MAPPING, (60, 40), "cover")
    got = decoded(instances[0], (60, 40))
    assert got[:, -5:].all() and not got[:, :25].any()
    with pytest.raises(DataError, match="annotations say"):
        instance_rows(_jpeg(W, H), 50, 50, anns, MAPPING, (20, 30))
    with pytest.raises(DataError, match="no usable instance"):
        instance_rows(
            _jpeg(W, H), W, H, [{"id": 1, "category_id": 3, "segmentation": polygon_of(1, 5, 1, 5)}], MAPPING, (20, 30)
        )


def test_store_round_trip_targets_and_coco_ground_truth(tmp_path):
    size = (24, 32)
    writer = InstanceStoreWriter(tmp_path, size, ["background", "a", "b"])
    row0, _ = fit_instances(
        [
            {"id": 1, "category_id": 1, "segmentation": polygon_of(4, 20, 4, 20)},
            {"id": 2, "category_id": 2, "segmentation": compressed(box_mask(0, 40, 30, 60))},
        ],
        H,
        W,
        MAPPING,
        size,
        "contain",
    )
    crowd, _ = fit_instances(
        [{"id": 3, "category_id": 2, "iscrowd": 1, "segmentation": compressed(box_mask(0, 40, 0, 30))}],
        H,
        W,
        MAPPING,
        size,
        "contain",
    )
    assert writer.put("img-a", row0, {VANISHED: 2}) == 0
    assert writer.put("img-b", crowd) == 1
    meta = writer.finish()
    assert meta["images"] == 2 and meta["instances"] == 2 and meta["crowd"] == 1 and meta["crowd_only_images"] == 1
    assert meta["dropped"] == {VANISHED: 2}
    assert not list(tmp_path.glob(".*partial"))

    store = InstanceStore(tmp_path)
    assert len(store) == 2 and not store.crowd_only(0) and store.crowd_only(1)
    t = store.target(0)
    assert t["boxes"].dtype.is_floating_point and t["boxes"].shape == (2, 4)
    assert t["labels"].tolist() == [1, 2] and str(t["labels"].dtype) == "torch.int64"
    assert t["masks"].shape == (2, 24, 32) and str(t["masks"].dtype) == "torch.uint8"
    x0, y0, x1, y1 = t["boxes"][0].tolist()
    ys, xs = np.nonzero(t["masks"][0].numpy())
    assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert store.target(1)["boxes"].shape == (0, 4) and store.target(1)["masks"].shape == (0, 24, 32)
    assert store.target(1, include_crowd=True)["iscrowd"].tolist() == [1]

    gt = store.coco_ground_truth([0, 1])
    assert [a["iscrowd"] for a in gt["annotations"]] == [0, 0, 1]
    assert [c["id"] for c in gt["categories"]] == [1, 2]
    json.dumps(gt)  # plain JSON types only
    with pytest.raises(IndexError):
        store.record(2)


def test_store_reader_detects_a_torn_index(tmp_path):
    writer = InstanceStoreWriter(tmp_path, (8, 8), ["background", "a"])
    writer.put("x", [])
    writer.finish()
    with open(tmp_path / INSTANCES_FILE, "ab") as fh:
        fh.write(b"{}\n")
    with pytest.raises(DataError, match="does not match"):
        InstanceStore(tmp_path)
    (tmp_path / INDEX_FILE).unlink()
    with pytest.raises(DataError, match="incomplete"):
        InstanceStore(tmp_path)
