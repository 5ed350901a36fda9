"""Train a CNN on each class distribution of CIFAR-10 and record per-class
accuracy on the full, balanced test set.

    python main.py                                  # paper suite, baseline
    python main.py --model dla --suite paper small extreme --seeds 0 1 2
    python main.py --dry-run                        # tiny smoke run

Every run writes its own result file under ``<out-dir>/runs/``; the tables
``per_class.csv`` and ``runs.csv`` are assembled from those files. A run whose
result file exists is skipped, so the same command continues after a crash.
"""

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import data
import distributions
import metrics
import models
import parallel

KEY_COLUMNS = ["suite", "distribution", "model", "init", "remedy",
               "dtype", "order", "seed", "data_seed", "epochs"]
RUN_COLUMNS = KEY_COLUMNS + [
    "lr", "batch_size", "train_images", "steps", "test_images",
    "imbalance_ratio", *metrics.RUN_METRICS, "train_loss", "train_accuracy",
    "status", "wall_seconds", "device", "threads", "torch_version",
    "data_source", "finished_at", "run_file",
]
CLASS_COLUMNS = KEY_COLUMNS + [
    "class_index", "class", "train_count", "test_count", "correct",
    "accuracy", *metrics.CLASS_METRICS,
]
# Remedies that train a network; "threshold" is computed from the logits of
# every run without a remedy.
TRAINED_REMEDIES = ("none", "oversample", "undersample", "weighted-loss",
                    "two-phase")
REMEDIES = TRAINED_REMEDIES + ("threshold",)
# remedies whose epoch has as many steps as one without a remedy
SAME_LENGTH_REMEDIES = ("none", "weighted-loss", "threshold")
# two-phase: fine-tune the final layer for this share of the recipe's epochs
# (at least one), at a tenth of the recipe's learning rate
FINE_TUNE_FRACTION = 0.2
# the order training images are served in: shuffled every epoch, or class by
# class in one fixed order (a database written per class and not shuffled)
ORDERS = ("shuffled", "by-class")


class UsageError(ValueError):
    """A flag value that cannot be used."""


@dataclass(frozen=True)
class Run:
    """One training run: a distribution, a model and its settings, a seed."""
    suite: str
    distribution: str
    counts: tuple
    model: str
    init: str
    remedy: str
    seed: int
    data_seed: int
    epochs: int
    lr: float
    batch_size: int
    dtype: str = "bf16"
    order: str = "shuffled"

    @property
    def label(self):
        init = "" if self.init == "default" else f" init={self.init}"
        remedy = "" if self.remedy == "none" else f" {self.remedy}"
        order = "" if self.order == "shuffled" else f" {self.order}"
        return (f"{self.suite}/{self.distribution} {self.model}{init}{remedy}"
                f"{order} seed {self.seed}")

    @property
    def name(self):
        """File name stem: every setting that changes the result, except the
        counts, which are checked against the table when resuming. The
        default order adds nothing, so files from before the setting existed
        keep their names."""
        order = "" if self.order == "shuffled" else f"-{self.order}"
        return (f"{self.model}-{self.init}-{self.remedy}-e{self.epochs}"
                f"-lr{self.lr:g}"
                f"-bs{self.batch_size}-{self.dtype}-seed{self.seed}"
                f"-data{self.data_seed}{order}")

    @property
    def recipe(self):
        """The model's recipe with this run's overrides."""
        return dict(models.RECIPES[self.model], epochs=self.epochs,
                    lr=self.lr, batch_size=self.batch_size)

    def result_path(self, out_dir):
        return Path(out_dir) / "runs" / self.suite / self.distribution / (
            self.name + ".json")

    def checkpoint_path(self, out_dir):
        return Path(out_dir) / "checkpoints" / self.suite / (
            f"{self.distribution}-{self.name}.pt")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """States each default, except where the help text already does."""

    def _get_help_string(self, action):
        # "in (None, False)" would also hide a default of 0
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=_HelpFormatter)
    parser.add_argument("--model", choices=list(models.RECIPES),
                        default="baseline", help="network to train")
    parser.add_argument("--init", choices=models.INITS, default="default",
                        help="weight initialisation: PyTorch's default, or "
                             "Caffe's CIFAR-10 example (baseline only)")
    parser.add_argument("--suite", nargs="+", default=["paper"],
                        help="suites of distributions.py to run: "
                             f"{', '.join(distributions.SUITES)} or all")
    parser.add_argument("--dist", nargs="+", default=None,
                        help="run only the distributions with these names "
                             "(default: every distribution of the suites)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per run (default: the model's recipe: "
                             + ", ".join(f"{m} {r['epochs']}"
                                         for m, r in models.RECIPES.items())
                             + ")")
    parser.add_argument("--lr", type=float, default=None,
                        help="peak learning rate (default: the recipe's: "
                             + ", ".join(f"{m} {r['lr']:g}"
                                         for m, r in models.RECIPES.items())
                             + ")")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="training batch size (default: the recipe's: "
                             + ", ".join(f"{m} {r['batch_size']}"
                                         for m, r in models.RECIPES.items())
                             + ")")
    parser.add_argument("--remedy", nargs="+", choices=REMEDIES,
                        default=["none"],
                        help="remedies for imbalance, each a run of its own; "
                             "threshold is derived from the runs without a "
                             "remedy")
    parser.add_argument("--order", choices=ORDERS, default="shuffled",
                        help="training order: shuffled every epoch, or "
                             "class by class in one fixed order, as a "
                             "database written per class and read without "
                             "shuffling")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="training seeds; each is a run of its own")
    parser.add_argument("--data-seed", type=int, default=0,
                        help="seed that draws each distribution's images")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"],
                        default="auto",
                        help="training device; auto picks cuda, then mps, "
                             "then cpu")
    parser.add_argument("--data-dir", default="./data",
                        help="CIFAR-10 (downloaded here when missing) or an "
                             "ImageFolder tree with train/ and test/")
    parser.add_argument("--out-dir", default="./results",
                        help="folder for result files and tables")
    parser.add_argument("--dtype", choices=["bf16", "fp32"],
                        default="bf16",
                        help="bf16 autocast (CUDA and CPU) or float32")
    parser.add_argument("--jobs", default="auto",
                        help="runs at once on this machine: a number, or "
                             "auto (one per GPU, or one per CPU core)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of each run; results repeat "
                             "exactly for the same seeds and threads")
    parser.add_argument("--shard", default=None,
                        help="I/N: take only runs I, I+N, I+2N, ... of the "
                             "grid (0 <= I < N), for array jobs (default: "
                             "every run)")
    parser.add_argument("--assemble", action="store_true",
                        help="only rebuild the tables in --out-dir from the "
                             "result files")
    slurm = parser.add_argument_group("SLURM (through submitit)")
    slurm.add_argument("--slurm", action="store_true",
                       help="submit the runs as a SLURM job array")
    slurm.add_argument("--partition", default=None,
                       help="SLURM partition (default: the cluster's)")
    slurm.add_argument("--gpus-per-task", type=int, default=1,
                       help="GPUs of each array task")
    slurm.add_argument("--cpus-per-task", type=int, default=4,
                       help="CPU cores of each array task")
    slurm.add_argument("--time", type=int, default=240,
                       help="time limit of each array task, in minutes")
    slurm.add_argument("--array-size", type=int, default=8,
                       help="number of array tasks; the runs are split "
                            "between them")
    parser.add_argument("--compile", action="store_true",
                        help="compile the model with torch.compile")
    parser.add_argument("--force", action="store_true",
                        help="rerun runs that already have results")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny smoke run of the whole loop: a few images "
                             "per distribution, one epoch, results in a "
                             "temporary folder; synthetic data when none is "
                             "found")
    args = parser.parse_args(argv)
    _check_flags(args)
    return args


def _check_flags(args):
    for flag in ("epochs", "batch_size"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least "
                             f"1, got {value}")
    if args.lr is not None and not (args.lr > 0 and math.isfinite(args.lr)):
        raise UsageError(f"--lr must be a positive number, got {args.lr}")
    for seed in args.seeds + [args.data_seed]:
        if seed < 0:
            raise UsageError(f"seeds must not be negative, got {seed}")
    if args.init != "default" and args.model != "baseline":
        raise UsageError("--init caffe applies to --model baseline only")
    if args.jobs != "auto" and not (args.jobs.isdigit()
                                    and int(args.jobs) >= 1):
        raise UsageError(f"--jobs must be a positive number or auto, got "
                         f"{args.jobs!r}")
    for flag in ("threads", "array_size", "time", "cpus_per_task"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least "
                             f"1, got {getattr(args, flag)}")
    if args.shard is not None:
        try:
            args.shard = parallel.parse_shard(args.shard)
        except ValueError as error:
            raise UsageError(str(error)) from None


def pick_device(name):
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UsageError("--device mps: no MPS device is available")
    return torch.device(name)


def plan_runs(args, selected, device=None):
    """Every run of the command, in a fixed order: distributions in table
    order, then remedies, then seeds. The threshold remedy needs the run
    without a remedy, so asking for it plans that run."""
    recipe = models.RECIPES[args.model]
    epochs = args.epochs or recipe["epochs"]
    lr = args.lr or recipe["lr"]
    batch_size = args.batch_size or recipe["batch_size"]
    # MPS has no bf16 autocast here: record what the runs really use
    dtype = "fp32" if device is not None and device.type == "mps" else (
        args.dtype)
    remedies = [r for r in TRAINED_REMEDIES
                if r in args.remedy or (r == "none"
                                        and "threshold" in args.remedy)]
    return [Run(suite, dist, counts, args.model, args.init, remedy, seed,
                args.data_seed, epochs, lr, batch_size, dtype, args.order)
            for suite, dist, counts in selected
            for remedy in remedies for seed in args.seeds]


def dry_run_counts(counts, total=120):
    """A row shrunk to about ``total`` images, keeping every non-empty
    class."""
    small = distributions.scaled(counts, total)
    return tuple(max(s, 1) if c else 0 for s, c in zip(small, counts))


# Training.

def autocast(device, dtype):
    """bf16 autocast for ``dtype="bf16"`` on CUDA and on the CPU (where
    bf16 matrix units make the baseline 2.6x faster); float32 otherwise,
    and always on MPS."""
    enabled = dtype == "bf16" and device.type in ("cuda", "cpu")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def fine_tune_epochs(run):
    return max(1, round(FINE_TUNE_FRACTION * run.epochs))


def training_phases(run, indices, labels):
    """(indices, epochs) for each phase of a run's training. Oversampling
    makes every epoch as long as the largest class times the number of
    classes; undersampling makes it as short as the smallest class times it;
    two-phase trains on the oversampled set, then fine-tunes the final layer
    on the original one."""
    if run.remedy in ("oversample", "two-phase"):
        first = data.oversample(indices, labels, run.data_seed)
    elif run.remedy == "undersample":
        first = data.undersample(indices, labels, run.data_seed)
    else:
        first = indices
    phases = [(first, run.epochs)]
    if run.remedy == "two-phase":
        phases.append((indices, fine_tune_epochs(run)))
    return phases


def class_weights(counts, device):
    """Inverse class frequency, normalised so the weights of the classes
    present average 1; absent classes get weight 0."""
    counts = torch.tensor(counts, dtype=torch.float64)
    inverse = torch.where(counts > 0, 1 / counts.clamp(min=1),
                          torch.zeros(()))
    weights = inverse * (counts > 0).sum() / inverse.sum()
    return weights.float().to(device)


def make_optimizer(model, run, recipe, phase):
    """SGD over the whole network; in the fine-tuning phase of two-phase,
    over the final layer alone, the rest frozen."""
    if phase == 0:
        bias_lr_mult = 2.0 if run.init == "caffe" else 1.0
        groups = models.parameter_groups(model, bias_lr_mult)
    else:
        for p in model.parameters():
            p.requires_grad_(False)
        head = list(model.classifier().parameters())
        for p in head:
            p.requires_grad_(True)
        groups = [{"params": head, "lr_mult": 1.0}]
    return models.SGD(groups, lr=run.lr, momentum=recipe["momentum"],
                      weight_decay=recipe["weight_decay"])


def train_run(run, dataset, device, out_dir, compile_model=False,
              log=print, progress=False, heartbeat=None):
    """Train one run and return its result record."""
    recipe = run.recipe
    started = time.perf_counter()
    num_classes = len(dataset.classes)

    # the subset: an index into the training images, drawn with the data
    # seed; inputs are normalised with statistics of its distinct images
    indices = data.subset_indices(dataset.train_labels, run.counts,
                                  run.data_seed)
    normalise = data.Normalise(recipe["input"], dataset.train_images,
                               indices, device)
    images, labels = dataset.training_set_on(device)
    plan = training_phases(run, indices, dataset.train_labels)
    phases = [data.Batches(images, labels, phase_indices, run.batch_size,
                           normalise, recipe["augment"], run.seed, device,
                           torch.channels_last,
                           shuffle=run.order == "shuffled")
              for phase_indices, _ in plan]
    phase_epochs = [epochs for _, epochs in plan]
    weights = (class_weights(run.counts, device)
               if run.remedy == "weighted-loss" else None)

    # model and optimiser, initialised from the training seed
    torch.manual_seed(run.seed)
    model = models.build_model(run.model, num_classes, run.init)
    model = model.to(device, memory_format=torch.channels_last)
    forward = torch.compile(model) if compile_model else model

    # resume from the last finished epoch, if a checkpoint exists
    checkpoint_path = run.checkpoint_path(out_dir)
    history, first_epoch = [], 0
    state = None
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=device,
                           weights_only=False)
        if tuple(state.get("counts", ())) != tuple(run.counts):
            log(f"[{run.label}] the table row changed since the checkpoint "
                f"was saved: starting afresh")
            state = None
    if state is not None:
        model.load_state_dict(state["model"])
        history, first_epoch = state["history"], state["epoch"]
        log(f"[{run.label}] resuming after epoch {first_epoch}")

    total_epochs = sum(phase_epochs)
    status, optimizer, phase = "ok", None, None
    for epoch in range(first_epoch, total_epochs):
        new_phase = 0 if epoch < phase_epochs[0] else 1
        if new_phase != phase:
            phase = new_phase
            optimizer = make_optimizer(model, run, recipe, phase)
            if state is not None and state.get("phase") == phase:
                optimizer.load_state_dict(state["optimizer"])
        batches = phases[phase]
        phase_epoch = epoch - (0 if phase == 0 else phase_epochs[0])
        epoch_start = time.perf_counter()
        # the fine-tuning phase keeps batch-norm statistics frozen
        model.train(phase == 0)
        total_steps = phase_epochs[phase] * len(batches)
        if phase == 0:
            def lr_at(step):
                return models.learning_rate(recipe, step, total_steps)
        else:
            def lr_at(step):
                return run.lr / 10
        bar = _progress(len(batches), f"epoch {epoch + 1}", progress)
        loss_sum, correct, lr = train_epoch(
            forward, optimizer, batches, epoch, phase_epoch * len(batches),
            lr_at, weights, device, run.dtype, bar)

        seen = len(batches.indices)
        train_loss = loss_sum / seen
        train_accuracy = correct / seen
        seconds = time.perf_counter() - epoch_start
        history.append({"epoch": epoch + 1, "phase": phase,
                        "images": seen, "steps": len(batches),
                        "train_loss": train_loss,
                        "train_accuracy": train_accuracy, "lr": lr,
                        "seconds": round(seconds, 3)})
        log(f"[{run.label}] epoch {epoch + 1}/{total_epochs}  "
            f"loss {train_loss:.4f}  train acc {100 * train_accuracy:.2f}%  "
            f"lr {lr:.3g}  {seconds:.1f} s")
        if not math.isfinite(train_loss):
            status = "diverged"
            log(f"[{run.label}] loss is {train_loss}: stopping this run as "
                f"diverged")
            break
        if heartbeat is not None:
            heartbeat()
        if epoch + 1 < total_epochs:
            _atomic_save({"model": model.state_dict(),
                          "optimizer": optimizer.state_dict(),
                          "phase": phase, "history": history,
                          "counts": list(run.counts),
                          "epoch": epoch + 1},
                         checkpoint_path)

    logits = evaluate(model, dataset.test_images, normalise, device,
                      run.dtype)
    return _record(run, dataset, recipe, history, logits, status,
                   time.perf_counter() - started, device)


def train_epoch(forward, optimizer, batches, epoch, first_step, lr_at,
                weights, device, dtype, bar=None):
    """One epoch of optimiser steps; returns the summed loss, the number of
    correct training predictions and the last learning rate. Both sums stay
    on the device until the end, so the loop never waits for the device."""
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    step = first_step
    for x, y in batches.epoch(epoch):
        lr = lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_mult"]
        with autocast(device, dtype):
            logits = forward(x)
            loss = F.cross_entropy(logits.float(), y, weight=weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        step += 1
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return loss_sum.item(), correct.item(), lr


@torch.no_grad()
def evaluate(model, images, normalise, device, dtype, batch_size=1000):
    """Logits for every test image, in the test set's order."""
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        x = normalise(images[start:start + batch_size].to(device))
        with autocast(device, dtype):
            outputs.append(model(x.contiguous(
                memory_format=torch.channels_last)).float())
    return torch.cat(outputs).cpu()


def _record(run, dataset, recipe, history, logits, status, seconds, device):
    """The result of a run: one run row, one row per class, the recipe, the
    epoch history, and (for a finished run) metrics from the test logits."""
    labels = dataset.test_labels.numpy()
    test_counts = np.bincount(labels, minlength=len(dataset.classes))
    last = history[-1] if history else {}
    keys = {"suite": run.suite, "distribution": run.distribution,
            "model": run.model, "init": run.init, "remedy": run.remedy,
            "dtype": run.dtype, "order": run.order, "seed": run.seed,
            "data_seed": run.data_seed,
            "epochs": run.epochs}
    run_row = dict(
        keys, lr=run.lr, batch_size=run.batch_size,
        train_images=sum(run.counts),
        steps=sum(epoch["steps"] for epoch in history),
        test_images=len(labels),
        imbalance_ratio=round(distributions.imbalance_ratio(run.counts), 4),
        accuracy=float("nan"), train_loss=last.get("train_loss"),
        train_accuracy=last.get("train_accuracy"), status=status,
        wall_seconds=round(seconds, 2), device=_device_name(device),
        threads=torch.get_num_threads(), torch_version=torch.__version__,
        data_source=dataset.source,
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    class_rows = [dict(keys, class_index=c, train_count=run.counts[c],
                       test_count=int(test_counts[c]), correct=None,
                       accuracy=float("nan"), **{"class": name})
                  for c, name in enumerate(dataset.classes)]
    result = {"run": run_row, "per_class": class_rows, "recipe": recipe,
              "history": history}
    if status == "ok":
        result["logits"] = logits.half().numpy()
        result["labels"] = labels.astype(np.int16)
        add_metrics(result, result["logits"], labels)
    return result


def add_metrics(result, logits, labels):
    """Fill a result's metric columns and confusion matrix from its test
    logits; for a run without a remedy, add the threshold remedy too."""
    probabilities = metrics.softmax(logits)
    counts = [row["train_count"] for row in result["per_class"]]
    result.update(_scored(result, probabilities, labels, counts))
    if result["run"]["remedy"] == "none":
        adjusted = metrics.threshold_scores(probabilities, counts)
        result["threshold"] = _scored(result, adjusted, labels, counts,
                                      remedy="threshold")


def _scored(result, scores, labels, counts, remedy=None):
    run_metrics, per_class, confusion = metrics.evaluate(scores, labels,
                                                         counts)
    change = {} if remedy is None else {"remedy": remedy}
    run_row = dict(result["run"], **run_metrics, **change)
    class_rows = []
    for c, row in enumerate(result["per_class"]):
        scores_c = {m: float(per_class[m][c]) for m in metrics.CLASS_METRICS}
        class_rows.append(dict(row, **change, **scores_c,
                               correct=int(per_class["correct"][c]),
                               accuracy=scores_c["recall"]))
    return {"run": run_row, "per_class": class_rows,
            "confusion": confusion.tolist()}


def _device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        # kernels, and so the order of floating-point sums, differ between
        # processors: the processor belongs with the numbers it produced
        return (f"cpu ({_cpu_model()}, {_cpu_features()}, "
                f"{torch.get_num_threads()} threads)")
    return device.type


def _cpu_features():
    """The vector instructions torch dispatches to, and whether the
    processor has bf16 matrix (AMX) or bf16 vector instructions."""
    features = [torch.backends.cpu.get_cpu_capability()]
    for check, name in (("_is_amx_tile_supported", "AMX"),
                        ("_is_avx512_bf16_supported", "AVX512-BF16")):
        supported = getattr(torch.cpu, check, None)  # private, may go
        if supported is not None and supported():
            features.append(name)
    return " ".join(features)


def _cpu_model():
    """The processor's model name where the system tells it (Linux), else
    its architecture."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _progress(total, description, enabled):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=description, leave=False, unit="batch")


# Result files.

_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic_write(path, write):
    """Write through a temporary file in the same folder, then rename, so a
    killed process leaves either the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    # mkstemp makes the file private; results are for everyone who may read
    # the folder, as with any file this user creates
    os.fchmod(fd, 0o666 & ~_UMASK)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_save(obj, path):
    _atomic_write(Path(path), lambda f: torch.save(obj, f))


def save_result(result, path):
    """The logits first, then the JSON record: a run counts as finished only
    once its JSON exists."""
    logits, labels = result.pop("logits", None), result.pop("labels", None)
    if logits is not None:
        _atomic_write(path.with_suffix(".logits.npz"),
                      lambda f: np.savez_compressed(f, logits=logits,
                                                    labels=labels))
    _write_json(result, path)


def _write_json(result, path):
    text = json.dumps(result, indent=1, allow_nan=True)
    _atomic_write(path, lambda f: f.write(text.encode()))


def load_result(path):
    with open(path) as f:
        return json.load(f)


def _upgrade(result, path):
    """Give a result file written before metrics were recorded its metric
    columns, when its logits and test labels are at hand."""
    logits_path = Path(path).with_suffix(".logits.npz")
    complete = all(m in result["run"] for m in metrics.RUN_METRICS)
    if complete or not logits_path.exists():
        return result
    with np.load(logits_path) as saved:
        if "labels" not in saved:
            return result
        add_metrics(result, saved["logits"], saved["labels"])
    # keep the file's time: --force compares it with the command's start
    times = os.stat(path)
    _write_json(result, path)
    os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))
    return result


def assemble_tables(out_dir):
    """Rebuild ``runs.csv``, ``per_class.csv`` and ``summary.csv`` from every
    result file. Runs without a remedy also give the threshold remedy's
    rows."""
    import pandas as pd

    out_dir = Path(out_dir)
    run_rows, class_rows = [], []
    for path in sorted((out_dir / "runs").glob("*/*/*.json")):
        result = _upgrade(load_result(path), path)
        for part in (result, result.get("threshold")):
            if part is not None:
                # where the file is now, relative to the results folder
                part["run"]["run_file"] = str(path.relative_to(out_dir))
                # files from before a setting existed: its old value
                settings = {"dtype": _dtype(part["run"]),
                            "order": part["run"].get("order", "shuffled")}
                run_rows.append(dict(part["run"], **settings))
                class_rows += [dict(row, **settings)
                               for row in part["per_class"]]
    runs = pd.DataFrame(run_rows, columns=RUN_COLUMNS)
    per_class = pd.DataFrame(class_rows, columns=CLASS_COLUMNS)
    summary = metrics.summarise(runs) if len(runs) else pd.DataFrame()
    for frame, name in ((runs, "runs.csv"), (per_class, "per_class.csv"),
                        (summary, "summary.csv")):
        text = frame.to_csv(index=False)
        _atomic_write(out_dir / name, lambda f: f.write(text.encode()))
    return runs, per_class


def _dtype(run_row):
    """A run's training dtype; files from before bf16 training existed were
    float32, and some recorded it under the name "precision"."""
    for key in ("dtype", "precision"):
        if run_row.get(key) in ("bf16", "fp32"):
            return run_row[key]
    return "fp32"


def finished(run, out_dir, log, force_before=None):
    """Whether the run already has a result for the current table row (and,
    with ``force_before``, one written after that time)."""
    path = run.result_path(out_dir)
    if not path.exists():
        return False
    if force_before is not None and path.stat().st_mtime < force_before:
        return False
    stored = [row["train_count"] for row in load_result(path)["per_class"]]
    if tuple(stored) != tuple(run.counts):
        log(f"[{run.label}] the table row changed since this result was "
            f"made ({stored} -> {list(run.counts)}): rerunning")
        return False
    return True


# The command.

def main(argv=None):
    try:
        args = parse_args(argv)
        return run_all(args)
    except (UsageError, distributions.DistributionError,
            data.DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs are saved; run the same command "
              "to continue", file=sys.stderr)
        return 130


def run_all(args, log=None):
    log = log or (lambda line: print(line, flush=True))
    out_dir = Path(args.out_dir)
    if args.assemble:
        if not list((out_dir / "runs").glob("*/*/*.json")):
            raise UsageError(f"--assemble: no result files under "
                             f"{out_dir / 'runs'}")
        runs, _ = assemble_tables(out_dir)
        log(f"assembled {len(runs)} rows into {out_dir / 'runs.csv'}, "
            f"{out_dir / 'per_class.csv'} and {out_dir / 'summary.csv'}")
        return 0
    device = pick_device(args.device)
    selected = distributions.select(args.suite, args.dist)

    if args.dry_run:
        try:
            dataset = data.load_dataset(args.data_dir, log=log)
        except data.DataError as error:
            log(f"dry run: no data ({str(error).split('.')[0]}); "
                f"using a small synthetic dataset")
            dataset = data.synthetic_dataset()
        dataset = _shrink_test_set(dataset, per_class=20)
        selected = [(s, d, dry_run_counts(c)) for s, d, c in selected]
        args.epochs, args.jobs = 1, "1"
        out_dir = Path(tempfile.mkdtemp(prefix="imbalance-dry-run-"))
        args.out_dir = str(out_dir)
    else:
        dataset = data.load_dataset(args.data_dir, log=log)

    # every row is checked against the dataset before anything trains
    available = dataset.class_counts("train")
    for suite, dist, counts in selected:
        distributions.validate(suite, dist, counts, available,
                               dataset.classes)
    runs = plan_runs(args, selected, device)
    if args.shard is not None:
        runs = parallel.take_shard(runs, args.shard)
        if not runs:
            log(f"shard {args.shard[0]}/{args.shard[1]} of this grid is "
                f"empty: nothing to do")
            return 0
    # --force reruns what was finished before this command started, once
    args.force_before = time.time() if args.force else None

    recipe = runs[0].recipe
    log(f"model {args.model} (init {args.init}), recipe "
        f"{json.dumps(recipe)}")
    log(f"device {_device_name(device)}, torch {torch.__version__}, "
        f"{len(runs)} runs, results in {out_dir}")

    if args.slurm:
        pending = [r for r in runs
                   if not finished(r, out_dir, log, args.force_before)]
        if pending:
            parallel.submit_slurm(execute, args, pending, out_dir, log)
        else:
            log("every run already has results")
        return 0
    jobs = resolve_jobs(args.jobs, device, args.threads)
    if jobs > 1 and len(runs) > 1:
        code = parallel.run_workers(execute, args, runs, min(jobs, len(runs)),
                                    device.type, log, dataset)
    else:
        code = execute(args, runs, dataset=dataset, log=log)
    assemble_tables(out_dir)
    log(f"tables in {out_dir / 'runs.csv'}, {out_dir / 'per_class.csv'} "
        f"and {out_dir / 'summary.csv'}")
    return code


def resolve_jobs(jobs, device, threads):
    """``--jobs auto``: one worker per GPU, or as many CPU workers as the
    cores allow at ``threads`` threads each."""
    if jobs != "auto":
        return int(jobs)
    if device.type == "cuda":
        return max(1, parallel.available_gpus())
    if device.type == "cpu":
        cores = (len(os.sched_getaffinity(0))
                 if hasattr(os, "sched_getaffinity") else os.cpu_count())
        return max(1, (cores or 1) // threads)
    return 1


def execute(args, runs, worker=None, dataset=None, log=None):
    """Train every run of the list that has no result and that no other
    worker holds. Without a ``dataset`` it loads the data itself. A worker
    (``worker`` set) leaves assembling the tables to the command."""
    prefix = "" if worker is None else f"[worker {worker}] "
    if log is None:
        def log(line):
            print(prefix + line, flush=True)
    device = pick_device(args.device)
    if device.type == "cpu" or worker is not None:
        torch.set_num_threads(args.threads)
    if dataset is None:
        dataset = data.load_dataset(args.data_dir, log=lambda line: None)
    out_dir = Path(args.out_dir)
    progress = sys.stdout.isatty() and worker is None
    done = skipped = held = 0
    for i, run in enumerate(runs, 1):
        if finished(run, out_dir, log, args.force_before):
            skipped += 1
            continue
        lock = parallel.claim(run.result_path(out_dir).with_suffix(".lock"))
        if lock is None:
            held += 1
            continue
        try:
            # another worker may have finished it since the check above
            if finished(run, out_dir, log, args.force_before):
                skipped += 1
                continue
            log(f"[{run.label}] run {i}/{len(runs)}: {sum(run.counts)} "
                f"images, imbalance "
                f"{distributions.imbalance_ratio(run.counts):.1f}x")
            result = train_run(run, dataset, device, out_dir, args.compile,
                               log, progress, heartbeat=lock.heartbeat)
            path = run.result_path(out_dir)
            save_result(result, path)
            run.checkpoint_path(out_dir).unlink(missing_ok=True)
            row = result["run"]
            log(f"[{run.label}] {row['status']}: test accuracy "
                f"{100 * row['accuracy']:.2f}% in "
                f"{row['wall_seconds']:.0f} s")
            if worker is None:
                assemble_tables(out_dir)
            done += 1
        finally:
            lock.release()
    held_note = f", {held} held by other workers" if held else ""
    log(f"finished: {done} trained, {skipped} already had results"
        f"{held_note}")
    return 0


def _shrink_test_set(dataset, per_class):
    keep = torch.cat([torch.nonzero(dataset.test_labels == c)[:per_class, 0]
                      for c in range(len(dataset.classes))])
    dataset.test_images = dataset.test_images[keep]
    dataset.test_labels = dataset.test_labels[keep]
    return dataset


if __name__ == "__main__":
    sys.exit(main())
