"""Test images for the SDK examples: the first N brain MRI test images of ../shared/data,
preprocessed to the bundle's size as ddad_rt does (ddad_rt.load_image) and written as 8-bit
grayscale files - PNG, and every third one as binary PGM (the examples' two readers) - into
OUT (a temporary folder: the real images are never copied into the repository).

    python tests/sdk/prepare_images.py BUNDLE OUT [N]
"""

from __future__ import annotations

import sys
from pathlib import Path

import ddad_rt
from ddad_rt import datasets
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def main(bundle: str, out: str, n: int = 40) -> None:
    size = ddad_rt.Engine(bundle, device="cpu").image_size
    test = datasets.test_set(SHARED_DATA / "brain_tumor")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(test.paths[:n]):
        image = Image.fromarray(ddad_rt.load_image(path, size), mode="L")
        image.save(folder / f"{i:03d}_{Path(path).stem}.{'pgm' if i % 3 == 2 else 'png'}")
    print(f"{min(n, len(test.paths))} brain MRI test images at {size[0]}x{size[1]} in {folder}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:4]))
