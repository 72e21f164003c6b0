"""A prepared store's raw photos read again, row by row (saliency.mask_input: photo).

rembg then sees the whole decoded photo, as `rembg.remove` on the raw file would, instead of the
store's fitted image; the mask is fitted to the store afterwards with the image's geometry
(`store.fit_image`). The photo of manifest row i is found from its `source` with the same readers
the prepare step used, so it is the photo that store row i was made from.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .archives import path_inside
from .coco import FolderReader, LmdbReader, image_reader
from .fashionpedia import OFFICIAL
from .fashionstyle14 import find_root, index_files
from .imaging import DECODE_ERRORS, open_raw
from .modanet import image_source
from .store import read_manifest, to_rgb


class _FashionStyle14:
    def __init__(self, inputs: dict):
        first = inputs["fashionstyle14"]
        first = first[0] if isinstance(first, (list, tuple)) else first
        self.root = find_root(Path(first).parent)  # as the prepare script: the CSVs' (or marker's) folder
        self.files = index_files(self.root)

    def read(self, row) -> Path | None:
        return self.files.get(row.source)

    def close(self) -> None:
        pass


class _ModaNet:
    def __init__(self, inputs: dict):
        source, _ = image_source(Path(inputs["images"]).parent)
        self.lmdb = (Path(source) / "data.mdb").is_file()
        self.reader = LmdbReader(str(source)) if self.lmdb else FolderReader(str(source), "")

    def read(self, row) -> bytes | None:
        return self.reader.read(int(row.id) if self.lmdb else row.source)

    def close(self) -> None:
        self.reader.close()


class _Fashionpedia:
    def __init__(self, inputs: dict):
        self.readers = {folder: image_reader(str(inputs[images_key]), folder)
                        for _, images_key, folder in OFFICIAL.values()}

    def read(self, row) -> bytes | None:
        folder, _, file_name = row.source.partition("/")
        reader = self.readers.get(folder)
        return reader.read(file_name) if reader is not None else None

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()


class _ImageFolder:
    """Own ImageFolder data: the manifest source is `<class>/<file>` under the root."""

    def __init__(self, inputs: dict):
        self.root = Path(inputs["root"])

    def read(self, row) -> Path | None:
        path = path_inside(self.root, row.source, "manifest source")
        return path if path.is_file() else None

    def close(self) -> None:
        pass


class _Coco:
    """Own COCO data: the manifest source is the JSON's file_name in the image folder or zip."""

    def __init__(self, inputs: dict):
        self.reader = image_reader(str(inputs["images"]), "")

    def read(self, row) -> bytes | None:
        return self.reader.read(row.source)

    def close(self) -> None:
        self.reader.close()


# Keyed by the dataset's reader: its name, or for own data and control sets `datasets.<name>.reader`.
READERS = {"fashionstyle14": _FashionStyle14, "modanet": _ModaNet, "fashionpedia": _Fashionpedia,
           "imagefolder": _ImageFolder, "coco": _Coco}


class StorePhotos:
    """The decoded, upright RGB photos behind rows of a prepared store.

    `inputs` are the prepare rule's named inputs (`sources.plan(config)[dataset].inputs`).
    `min_size` (W, H): JPEGs may be decoded at a reduced scale (1/2..1/8) that stays at least
    this large (the saliency model's input size and twice the store size are enough).
    """

    def __init__(self, dataset: str, inputs: dict, manifest: Path, min_size: tuple[int, int] | None = None):
        if dataset not in READERS:
            raise DataError(f"saliency.mask_input photo: no photo reader for dataset {dataset!r} "
                            f"(known: {', '.join(READERS)}); use mask_input: store")
        self.dataset, self.manifest_path, self.min_size = dataset, Path(manifest), min_size
        self.rows = read_manifest(manifest)
        self.reader = READERS[dataset](inputs)

    def __len__(self) -> int:
        return len(self.rows)

    def photo(self, index: int) -> np.ndarray:
        """uint8 (h, w, 3) RGB of manifest row `index`, EXIF-rotated like the store image."""
        row = self.rows.iloc[index]
        where = f"{self.dataset} manifest row {index} ({row.source})"
        try:
            payload = self.reader.read(row)
            if payload is None:
                raise DataError("not found")
            rgb, _ = to_rgb(open_raw(payload, draft_size=self.min_size))
            return np.asarray(rgb, dtype=np.uint8)
        except (DataError, OSError, *DECODE_ERRORS) as err:
            raise DataError(f"{where}: the raw photo cannot be read again ({err}); the raw data changed since "
                            f"{self.manifest_path} was prepared: rerun the prepare step") from None

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> StorePhotos:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def photo_decode_size(store_size: tuple[int, int], model_size: int) -> tuple[int, int]:
    """(W, H) a photo must keep when decoded at reduced JPEG scale: the model input and 2× the store."""
    height, width = store_size
    return max(2 * width, model_size), max(2 * height, model_size)


__all__ = ["READERS", "StorePhotos", "photo_decode_size"]
