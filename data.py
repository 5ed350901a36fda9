"""Loading the dataset once, cutting distributions from it, and batching.

The whole dataset is held as uint8 tensors (N, 3, H, W). A distribution is an
index into the training tensor, so no run copies images. Decoded arrays are
cached beside the data, or in a user cache folder when the data folder is
read-only; a later start maps them into memory in a fraction of a second, and
worker processes share the mapped pages.

Two sources are understood:

- CIFAR-10 through ``torchvision.datasets.CIFAR10`` (downloaded when missing);
- an ImageFolder-style directory, ``train/<class>/*`` and ``test/<class>/*``:
  a user's own dataset, or a JPEG copy of CIFAR-10.
"""

import hashlib
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

IMAGE_SIZE = 32
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff",
                  ".webp", ".ppm"}
CACHE_VERSION = 2
ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")


class DataError(RuntimeError):
    """The data folder is missing, incomplete or holds unreadable files."""


@dataclass
class Dataset:
    train_images: torch.Tensor   # uint8 (N, 3, H, W)
    train_labels: torch.Tensor   # int64 (N,)
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple
    source: str                  # a short description for the result files
    _on_device: dict = field(default_factory=dict, repr=False)

    def training_set_on(self, device):
        """The training images and labels on ``device``, copied there once
        and kept for every later run of the same process."""
        key = str(device)
        if key not in self._on_device:
            self._on_device[key] = (self.train_images.to(device),
                                    self.train_labels.to(device))
        return self._on_device[key]

    def class_counts(self, split="train"):
        labels = self.train_labels if split == "train" else self.test_labels
        return tuple(torch.bincount(labels, minlength=len(self.classes))
                     .tolist())


def load_dataset(data_dir, download=True, log=print, use_cache=True):
    """The dataset in ``data_dir``: an ImageFolder tree when ``train/`` and
    ``test/`` exist there, otherwise CIFAR-10 through torchvision.
    ``use_cache=False`` decodes an ImageFolder tree even when a cache
    exists (the benchmark times a first start this way)."""
    data_dir = Path(data_dir).expanduser()
    if (data_dir / "train").is_dir() or (data_dir / "test").is_dir():
        return _load_image_folder(data_dir, log, use_cache)
    return _load_cifar10(data_dir, download, log)


def _load_cifar10(data_dir, download, log):
    from torchvision.datasets import CIFAR10

    arrays = {}
    try:
        for split in ("train", "test"):
            ds = CIFAR10(str(data_dir), train=split == "train",
                         download=download)
            arrays[split] = (ds.data, np.asarray(ds.targets))
            classes = tuple(ds.classes)
    except Exception as error:
        raise DataError(
            f"Could not find or download CIFAR-10 in {data_dir.resolve()} "
            f"({type(error).__name__}: {error}). Looked for torchvision's "
            f"'cifar-10-batches-py' folder there and for an ImageFolder tree "
            f"('train/<class>/*' and 'test/<class>/*'). Without network "
            f"access, point --data-dir at a folder that holds either one, "
            f"for example an unpacked copy of the JPEG archive."
        ) from None
    source = f"torchvision CIFAR10 at {data_dir.resolve()}"
    log(f"data: {source}")
    return Dataset(*_to_tensors(*arrays["train"]),
                   *_to_tensors(*arrays["test"]), classes, source)


def _to_tensors(images_nhwc, labels):
    images = torch.from_numpy(np.ascontiguousarray(
        images_nhwc.transpose(0, 3, 1, 2)))
    return images, torch.from_numpy(labels.astype(np.int64))


def _list_image_folder(data_dir):
    """Sorted class names and, per split, the (path, label) pairs.

    Names are handled as strings with ``os.scandir``: on a 60,000-file tree
    this lists and fingerprints in about a quarter of the time ``pathlib``
    takes, which is most of a cached start."""
    splits = {}
    for split in ("train", "test"):
        root = os.path.join(data_dir, split)
        if not os.path.isdir(root):
            raise DataError(f"{data_dir}: the ImageFolder layout needs both "
                            f"'train/' and 'test/'; '{split}/' is missing")
        with os.scandir(root) as entries:
            classes = sorted(e.name for e in entries if e.is_dir())
        if not classes:
            raise DataError(f"{root}: no class folders found")
        files = []
        for label, name in enumerate(classes):
            folder = os.path.join(root, name)
            found = sorted(
                n for n in os.listdir(folder)
                if os.path.splitext(n)[1].lower() in IMAGE_SUFFIXES)
            if split == "train" and not found:
                raise DataError(f"{folder}: no images found")
            files += [(os.path.join(folder, n), label) for n in found]
        splits[split] = (classes, files)
    train_classes, test_classes = splits["train"][0], splits["test"][0]
    if train_classes != test_classes:
        only_train = sorted(set(train_classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(train_classes))
        raise DataError(
            f"{data_dir}: class folders differ between train/ and test/ "
            f"(only in train: {only_train or 'none'}; "
            f"only in test: {only_test or 'none'})")
    return tuple(train_classes), splits["train"][1], splits["test"][1]


def _fingerprint(data_dir, files):
    """A key that changes when any file is added, removed, renamed, resized
    or rewritten, or changes class."""
    prefix = len(os.path.join(data_dir, ""))
    lines = [f"v{CACHE_VERSION}"]
    for path, label in files:
        stat = os.stat(path)
        lines.append(f"{path[prefix:]}|{label}|{stat.st_size}|"
                     f"{stat.st_mtime_ns}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()[:16]


def cache_dirs(data_dir):
    """Where decoded arrays may live: beside the data, then the user cache."""
    user = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return [data_dir / ".decoded", user / "imbalance-cifar"]


def _load_image_folder(data_dir, log, use_cache=True):
    classes, train_files, test_files = _list_image_folder(data_dir)
    key = _fingerprint(data_dir, train_files + test_files)
    name = f"{data_dir.resolve().name}-{key}"
    source = f"image folder {data_dir.resolve()}"

    damaged = set()
    for folder in cache_dirs(data_dir) if use_cache else []:
        cached = folder / name
        if cached.is_dir():
            try:
                arrays = [_map(cached / f"{array}.npy") for array in ARRAYS]
            except (OSError, ValueError) as error:
                log(f"data: ignoring the unreadable cache {cached} "
                    f"({type(error).__name__}: {error})")
                damaged.add(cached)
                continue
            log(f"data: {source} (decoded cache {cached})")
            return Dataset(*arrays, classes, source)

    log(f"data: decoding {len(train_files) + len(test_files)} images "
        f"from {data_dir.resolve()}")
    arrays = (*_decode(train_files), *_decode(test_files))
    _write_cache(cache_dirs(data_dir), name, arrays, log, damaged)
    return Dataset(*(torch.from_numpy(a) for a in arrays), classes, source)


def _map(path):
    """A cached array, memory-mapped copy-on-write: the pages come from the
    operating system's file cache, so every worker process of a machine
    shares one copy of the images instead of holding its own."""
    return torch.from_numpy(np.load(path, mmap_mode="c"))


def _decode(files):
    """Decode images to uint8 (N, 3, 32, 32), resizing where needed."""
    from PIL import Image

    def read(path):
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
                if image.size != (IMAGE_SIZE, IMAGE_SIZE):
                    image = image.resize((IMAGE_SIZE, IMAGE_SIZE),
                                         Image.BILINEAR)
                return np.asarray(image, dtype=np.uint8)
        except Exception as error:
            raise DataError(f"{path}: cannot read image "
                            f"({type(error).__name__}: {error})") from None

    images = np.empty((len(files), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for i, array in enumerate(pool.map(read, [p for p, _ in files])):
            images[i] = array
    labels = np.array([label for _, label in files], dtype=np.int64)
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)), labels


def _write_cache(folders, name, arrays, log, damaged=()):
    """Save one ``.npy`` file per array in a folder that appears at once,
    in the first writable cache folder, replacing a cache found ``damaged``
    there; a cache that cannot be written only costs the next start its
    decoding time."""
    for folder in folders:
        partial = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            partial = Path(tempfile.mkdtemp(dir=folder, prefix=".tmp-"))
            for array_name, array in zip(ARRAYS, arrays):
                np.save(partial / f"{array_name}.npy", array)
            if folder / name in damaged:
                shutil.rmtree(folder / name, ignore_errors=True)
            os.rename(partial, folder / name)
        except OSError:
            if partial is not None:
                shutil.rmtree(partial, ignore_errors=True)
            if (folder / name).is_dir():
                return      # another process wrote the same cache meanwhile
            continue
        log(f"data: cached decoded arrays in {folder / name}")
        return
    log("data: no writable cache folder; the next start decodes again")


def subset_indices(labels, counts, seed):
    """Indices of a training subset with ``counts[c]`` images of class c.

    Each class's images are shuffled by a generator seeded with (seed, class)
    and the first ``counts[c]`` kept, so with one data seed a class's images
    in a smaller distribution are a subset of those in a larger one, and the
    draw for one class does not depend on the counts of the others.
    """
    labels = np.asarray(labels)
    chosen = []
    for c, count in enumerate(counts):
        members = np.flatnonzero(labels == c)
        order = np.random.default_rng([seed, c]).permutation(len(members))
        chosen.append(members[order[:count]])
    return torch.from_numpy(np.sort(np.concatenate(chosen)))


def oversample(indices, labels, seed):
    """Repeat each class's images until it has as many as the largest class:
    whole copies first, then a random draw (without replacement, seeded with
    the data seed) for the remainder. Absent classes stay absent."""
    return _resample(indices, labels, seed, max)


def undersample(indices, labels, seed):
    """Cut every class down to the smallest non-empty class, by a random draw
    seeded with the data seed."""
    return _resample(indices, labels, seed, min)


def _resample(indices, labels, seed, pick):
    indices = np.asarray(indices)
    subset_labels = np.asarray(labels)[indices]
    present = np.unique(subset_labels)
    target = pick(int((subset_labels == c).sum()) for c in present)
    rng = np.random.default_rng([seed, 7919])
    parts = []
    for c in present:
        members = indices[subset_labels == c]
        copies, rest = divmod(target, len(members))
        parts.append(np.tile(members, copies))
        parts.append(members[rng.choice(len(members), rest, replace=False)])
    return torch.from_numpy(np.sort(np.concatenate(parts)))


def synthetic_dataset(num_classes=10, train_per_class=60, test_per_class=20,
                      seed=0):
    """A small random dataset whose classes differ in colour, so a model can
    learn them; used by --dry-run when no real data is at hand."""
    g = torch.Generator().manual_seed(seed)

    def make(per_class):
        labels = torch.arange(num_classes).repeat_interleave(per_class)
        base = torch.linspace(0, 255, num_classes)[labels]
        noise = torch.randint(-40, 41, (len(labels), 3, IMAGE_SIZE,
                                        IMAGE_SIZE), generator=g)
        tint = torch.tensor([1.0, 0.5, 0.25]).view(1, 3, 1, 1)
        images = (base.view(-1, 1, 1, 1) * tint + noise).clamp(0, 255)
        return images.to(torch.uint8), labels

    classes = tuple(f"class{c}" for c in range(num_classes))
    return Dataset(*make(train_per_class), *make(test_per_class), classes,
                   "synthetic (dry run)")


class Batches:
    """Shuffled mini-batches of a subset, assembled on the training device.

    Images stay uint8 on the device; each batch is gathered by index,
    converted to float, normalised and (optionally) augmented with a random
    crop from a 4-pixel zero padding and a horizontal flip, all as tensor
    operations. The order and augmentation of epoch e come from a generator
    seeded with (seed, e), so a run resumed at epoch e sees the same batches.

    ``shuffle=False`` keeps one fixed order instead, every epoch: all images
    of class 0, then class 1, and so on, as a database written class by class
    and read in stored order (Caffe's data layer does not shuffle) serves
    them. Augmentation stays random.
    """

    def __init__(self, images, labels, indices, batch_size, normalise,
                 augment, seed, device, memory_format=torch.contiguous_format,
                 shuffle=True):
        self.images = images
        self.labels = labels
        self.indices = indices.to(images.device)
        self.shuffle = shuffle
        if not shuffle:
            by_class = torch.argsort(labels[self.indices], stable=True)
            self.indices = self.indices[by_class]
        self.batch_size = batch_size
        self.normalise = normalise
        self.augment = augment
        self.seed = seed
        self.device = device
        self.memory_format = memory_format

    def __len__(self):
        return -(-len(self.indices) // self.batch_size)

    def epoch(self, epoch):
        g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        n = len(self.indices)
        order = self.indices
        if self.shuffle:
            order = order[torch.randperm(n, generator=g).to(order.device)]
        if self.augment:
            shifts = torch.randint(0, 9, (n, 2), generator=g).to(self.device)
            flips = (torch.rand(n, generator=g) < 0.5).to(self.device)
        for start in range(0, n, self.batch_size):
            rows = order[start:start + self.batch_size]
            x = self.normalise(self.images[rows].to(self.device,
                                                    non_blocking=True))
            if self.augment:
                part = slice(start, start + len(rows))
                x = crop_and_flip(x, shifts[part], flips[part])
            yield (x.contiguous(memory_format=self.memory_format),
                   self.labels[rows].to(self.device, non_blocking=True))


def crop_and_flip(x, shifts, flips, pad=4):
    """Random crop of a zero-padded batch and a horizontal flip, per image.

    ``shifts`` holds (dy, dx) in [0, 2 * pad] for each image, ``flips`` a
    boolean per image.
    """
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = shifts[:, 0:1] + torch.arange(h, device=x.device)   # (n, h)
    cols = shifts[:, 1:2] + torch.arange(w, device=x.device)   # (n, w)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # Gather rows then columns; channels ride along.
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None],
                                     cols[:, None, :]]
    return out.permute(0, 3, 1, 2)


class Normalise:
    """Input preparation of a recipe, fitted on the training subset.

    ``mean-image``: pixels on the 0-255 scale minus the mean training image
    (Caffe's convention). ``per-channel``: each channel standardised to zero
    mean and unit variance over the training subset.
    """

    def __init__(self, kind, images, indices, device, chunk=4096):
        if chunk * 255 >= 2 ** 24:
            raise ValueError("chunk too large for exact float32 sums")
        total = torch.zeros(images[0].numel(), dtype=torch.float64)
        square = torch.zeros(images.shape[1], dtype=torch.float64)
        ones = torch.ones(1, chunk)
        for start in range(0, len(indices), chunk):
            block = images[indices[start:start + chunk]].flatten(1).float()
            # a matrix product sums a block twice as fast as .sum(0); the
            # sums (at most 4096 x 255) are whole numbers below 2**24, so
            # float32 holds them exactly, in any order of addition
            total += (ones[:, :len(block)] @ block)[0]
            if kind == "per-channel":
                square += block.view(len(block), images.shape[1], -1) \
                    .square().sum((0, 2), dtype=torch.float64)
        mean_image = total.view(images.shape[1:]) / len(indices)
        if kind == "mean-image":
            shift, scale = mean_image, torch.ones(1)
        elif kind == "per-channel":
            pixels = len(indices) * images.shape[2] * images.shape[3]
            mean = mean_image.mean((1, 2))
            std = (square / pixels - mean ** 2).sqrt()
            shift, scale = mean.view(-1, 1, 1), std.view(-1, 1, 1)
        else:
            raise ValueError(f"unknown input preparation {kind!r}")
        self.shift = shift.float().to(device)
        self.scale = scale.float().to(device)

    def __call__(self, images):
        return (images.float() - self.shift) / self.scale
