"""Shared fixtures: small image folders made on the fly, and the real JPEG
copy of CIFAR-10 when the environment points at it."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import distributions  # noqa: E402

NUM_CLASSES = len(distributions.CLASSES)
REAL_DATA_ENV = "CIFAR10_JPEG_DIR"


def write_image_folder(root, train_per_class=12, test_per_class=4,
                       classes=distributions.CLASSES, size=32, seed=0):
    """An ImageFolder tree whose classes differ in colour, so a model can
    learn them in a few steps."""
    rng = np.random.default_rng(seed)
    for split, per_class in (("train", train_per_class),
                             ("test", test_per_class)):
        for c, name in enumerate(classes):
            folder = Path(root) / split / name
            folder.mkdir(parents=True, exist_ok=True)
            colour = np.array([(37 * c) % 256, (91 * c) % 256,
                               (151 * c) % 256])
            for i in range(per_class):
                noise = rng.integers(-30, 31, (size, size, 3))
                pixels = np.clip(colour + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return Path(root)


@pytest.fixture
def image_folder(tmp_path):
    return write_image_folder(tmp_path / "images")


@pytest.fixture
def tiny_suites(monkeypatch):
    """Replace the tables with a suite that fits the small image folders."""
    suites = {
        "tiny": {
            "balanced": (8,) * NUM_CLASSES,
            "one-rare": (2,) + (8,) * (NUM_CLASSES - 1),
        },
    }
    monkeypatch.setattr(distributions, "SUITES", suites)
    return suites


@pytest.fixture(scope="session")
def real_data_dir():
    path = os.environ.get(REAL_DATA_ENV)
    if not path:
        pytest.skip(f"real-data test: set {REAL_DATA_ENV} to an unpacked "
                    f"copy of the CIFAR-10 JPEG archive (.ci/run does)")
    if not (Path(path) / "train").is_dir():
        pytest.skip(f"real-data test: {REAL_DATA_ENV}={path} has no train/")
    return Path(path)
