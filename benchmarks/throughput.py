"""Training throughput of the runner, against its ceiling and the usual way.

    python benchmarks/throughput.py --data-dir ~/cifar10-jpeg
    python benchmarks/throughput.py --data-dir ~/cifar10-jpeg --model dla \\
        --device cuda --repeats 5

For each model, training images per second of:

1. the ceiling: forward, backward and optimiser step repeated on one batch
   already on the device (same model, batch size and memory layout);
2. the runner: the project's own epoch loop over the images of a
   distribution (indexing, normalisation, augmentation, everything but
   evaluation);
3. the usual way: the same model and recipe fed by a torchvision
   ``ImageFolder`` with per-image transforms through a ``DataLoader`` with
   worker processes;

then runner/ceiling and runner/usual, as the median and range of several
repeats. For the baseline it also reports the start-up time (first start and
with the decoded cache), the evaluation time, the peak resident memory of a
run, and a projection of the whole ``paper`` suite's wall time from the
measured throughput.
"""

import argparse
import itertools
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import data  # noqa: E402
import distributions  # noqa: E402
import main  # noqa: E402
import models  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=main._HelpFormatter)
    parser.add_argument("--data-dir", required=True,
                        help="ImageFolder copy of CIFAR-10 (train/, test/)")
    parser.add_argument("--model", nargs="+", default=["baseline"],
                        choices=list(models.RECIPES),
                        help="networks to measure, one after the other")
    parser.add_argument("--device", default="auto",
                        choices=["auto", "cpu", "cuda", "mps"],
                        help="as main.py's --device")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="training batch (default: each model's recipe)")
    parser.add_argument("--suite", default="paper",
                        help="suite of --dist, and the suite whose start-up, "
                             "memory and wall time are reported")
    parser.add_argument("--dist", default="Dist.1",
                        help="distribution whose images the runner and the "
                             "usual way train on")
    parser.add_argument("--steps", type=int, default=None,
                        help="optimiser steps per measurement (default: one "
                             "epoch of the distribution; 20 for dla on a CPU)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="measurements of each kind, reported as median, "
                             "range and best")
    parser.add_argument("--workers", type=int, default=2,
                        help="DataLoader worker processes for the usual way")
    parser.add_argument("--dtype", choices=["bf16", "fp32"],
                        default="bf16", help="as main.py's --dtype")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: all cores)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model in all three")
    parser.add_argument("--skip-suite", action="store_true",
                        help="skip the start-up, memory and suite report")
    parser.add_argument("--full-suite", action="store_true",
                        help="run the whole suite with the default workers "
                             "and report its wall time and memory, instead "
                             "of a projection (about 10 minutes on 2 cores)")
    return parser.parse_args()


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def setup(model_name, device, compile_model):
    torch.manual_seed(0)
    model = models.build_model(model_name).to(
        device, memory_format=torch.channels_last)
    recipe = models.RECIPES[model_name]
    run = main.Run("bench", "bench", (), model_name, "default", "none", 0, 0,
                   recipe["epochs"], recipe["lr"], recipe["batch_size"])
    optimizer = main.make_optimizer(model, run, recipe, phase=0)
    forward = torch.compile(model) if compile_model else model
    return model, forward, optimizer, recipe


def timed(fn, device):
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def sgd_step(forward, optimizer, x, y, device, dtype):
    """One training step as the runner takes it, without the data."""
    with main.autocast(device, dtype):
        loss = F.cross_entropy(forward(x).float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def ceiling(model_name, device, batch_size, steps, compile_model, dtype):
    model, forward, optimizer, _ = setup(model_name, device, compile_model)
    x = torch.randn(batch_size, 3, 32, 32, device=device).contiguous(
        memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,), device=device)

    def loop(n):
        for _ in range(n):
            sgd_step(forward, optimizer, x, y, device, dtype)

    loop(5)
    return steps * batch_size / timed(lambda: loop(steps), device)


class _Capped:
    """The first ``steps`` batches of each epoch of a Batches object."""

    def __init__(self, batches, steps):
        self.batches, self.steps = batches, steps

    def epoch(self, epoch):
        return itertools.islice(self.batches.epoch(epoch), self.steps)


def runner(model_name, device, batch_size, steps, compile_model, dtype,
           dataset, indices):
    model, forward, optimizer, recipe = setup(model_name, device,
                                              compile_model)
    normalise = data.Normalise(recipe["input"], dataset.train_images,
                               indices, device)
    batches = data.Batches(
        dataset.train_images.to(device), dataset.train_labels.to(device),
        indices, batch_size, normalise, recipe["augment"], 0, device,
        torch.channels_last)
    model.train()

    def epoch(e, n):
        main.train_epoch(forward, optimizer, _Capped(batches, n), e, 0,
                         lambda step: recipe["lr"], None, device, dtype)

    epoch(0, 5)
    return steps * batch_size / timed(lambda: epoch(1, steps), device)


def usual(model_name, device, batch_size, steps, compile_model, dtype,
          data_dir, indices, workers, mean_image):
    """The per-image way: torchvision ImageFolder, transforms per image in
    DataLoader workers, batches copied to the device."""
    from torchvision import datasets, transforms

    model, forward, optimizer, recipe = setup(model_name, device,
                                              compile_model)
    if recipe["input"] == "mean-image":
        steps_in = [transforms.PILToTensor(),
                    transforms.Lambda(lambda t: t.float() - mean_image)]
    else:
        steps_in = [transforms.ToTensor(),
                    transforms.Normalize((0.49, 0.48, 0.45),
                                         (0.25, 0.24, 0.26))]
    if recipe["augment"]:
        steps_in = [transforms.RandomCrop(32, padding=4),
                    transforms.RandomHorizontalFlip()] + steps_in
    folder = datasets.ImageFolder(str(Path(data_dir) / "train"),
                                  transforms.Compose(steps_in))
    subset = torch.utils.data.Subset(folder, indices.tolist())
    loader = torch.utils.data.DataLoader(
        subset, batch_size=batch_size, shuffle=True, num_workers=workers,
        pin_memory=device.type == "cuda", drop_last=True)
    model.train()

    def endless():
        while True:
            yield from loader

    batches = endless()

    def loop(n):
        for _ in range(n):
            x, y = next(batches)
            x = x.to(device, non_blocking=True).contiguous(
                memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True)
            sgd_step(forward, optimizer, x, y, device, dtype)

    loop(5)
    speed = steps * batch_size / timed(lambda: loop(steps), device)
    # stop the worker processes before the next measurement starts
    batches.close()
    return speed


def describe(values):
    return (f"{statistics.median(values):8.0f} img/s "
            f"(range {min(values):.0f}-{max(values):.0f}, n={len(values)}; "
            f"best {max(values):.0f})")


# The start-up, memory and suite report: the command-line tool itself,
# ``main.main`` on one distribution for one epoch, in a fresh process, with
# its epoch loop and its evaluation wrapped to note the time.

CHILD = r"""
import resource, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, {root!r})
import data, main
if not {use_cache!r}:
    # a first start: decode the images and write the cache somewhere fresh
    fresh = Path(tempfile.mkdtemp(dir={out_dir!r}))
    data.cache_dirs = lambda data_dir: [fresh]
train_epoch, evaluate = main.train_epoch, main.evaluate
def first_epoch(*args, **kwargs):
    print("first_step", time.time(), flush=True)
    main.train_epoch = train_epoch
    return train_epoch(*args, **kwargs)
def timed_evaluate(*args, **kwargs):
    start = time.perf_counter()
    logits = evaluate(*args, **kwargs)
    print("evaluate", time.perf_counter() - start, flush=True)
    return logits
main.train_epoch, main.evaluate = first_epoch, timed_evaluate
code = main.main({argv!r})
print("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
sys.exit(code)
"""
KEYS = ("first_step", "evaluate", "peak_rss_mb")
RUN_LINE = re.compile(r"\] run \d+/\d+: ")


def child_report(args, device, use_cache, out_dir):
    argv = ["--data-dir", str(args.data_dir), "--suite", args.suite,
            "--dist", args.dist, "--epochs", "1", "--jobs", "1",
            "--threads", str(torch.get_num_threads()), "--dtype", args.dtype,
            "--device", device.type, "--out-dir", str(out_dir), "--force"]
    code = CHILD.format(root=str(ROOT), use_cache=use_cache, argv=argv,
                        out_dir=str(out_dir))
    launched = time.time()
    output = subprocess.run([sys.executable, "-c", code], check=True,
                            capture_output=True, text=True).stdout
    values = dict(line.split(maxsplit=1) for line in output.splitlines()
                  if line.split(maxsplit=1)[0] in KEYS)
    return {"startup": float(values["first_step"]) - launched,
            "evaluate": float(values["evaluate"]),
            "peak_rss_mb": float(values["peak_rss_mb"])}


def tree_report(args, device, dists, epochs):
    """Run the command-line tool with its default workers and sample, every
    0.2 s, the proportional set size (PSS) summed over it and its worker
    processes: pages that processes share, such as the mapped images and
    library code, count once. Returns the wall time, the time to the first
    line announcing a run (a worker's start-up, 0.2 s before its first
    step) and the peak; the peak is None where /proc has no PSS (not
    Linux)."""
    with tempfile.TemporaryDirectory() as out_dir:
        command = [sys.executable, str(ROOT / "main.py"),
                   "--data-dir", str(args.data_dir), "--suite", args.suite,
                   "--dist", *dists, "--dtype", args.dtype,
                   "--device", device.type, "--out-dir", out_dir]
        if epochs is not None:
            command += ["--epochs", str(epochs)]
        launched = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        peaks = []
        sampler = threading.Thread(target=_sample_pss, args=(process, peaks),
                                   daemon=True)
        sampler.start()
        first_run, tail = None, []
        for line in process.stdout:
            tail = (tail + [line])[-20:]
            if first_run is None and RUN_LINE.search(line):
                first_run = time.perf_counter() - launched
        process.wait()
        wall = time.perf_counter() - launched
        sampler.join()
        if process.returncode:
            raise RuntimeError("main.py failed:\n" + "".join(tail))
    peak = max(peaks, default=None)
    return {"wall": wall, "first_run": first_run,
            "peak_pss_mb": peak}


def _sample_pss(process, peaks):
    while process.poll() is None:
        total = _tree_pss(process.pid)
        if total is None:
            return
        peaks.append(total)
        time.sleep(0.2)


def _tree_pss(root):
    """Summed PSS in MB of ``root`` and its descendants, or None."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        pending += children.get(pid, [])
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue        # ended since the listing, or not yet reaped
        except PermissionError:
            return None
        total += sum(int(line.split()[1]) for line in rollup.splitlines()
                     if line.startswith("Pss:"))
    return total / 1024


def suite_report(args, device, runner_speed):
    with tempfile.TemporaryDirectory() as out_dir:
        first = child_report(args, device, False, out_dir)
        starts = [child_report(args, device, True, out_dir)
                  for _ in range(args.repeats)]
    startups = [start["startup"] for start in starts]
    cached = min(starts, key=lambda start: start["startup"])
    recipe = models.RECIPES["baseline"]
    suite = distributions.SUITES[args.suite]
    if args.full_suite:
        tree = tree_report(args, device, list(suite), None)
    else:
        tree = tree_report(args, device, list(suite)[:2], 1)
    train_seconds = sum(recipe["epochs"] * sum(c) / runner_speed
                        for c in suite.values())
    projected = (statistics.median(startups) + train_seconds
                 + len(suite) * cached["evaluate"])
    print(f"\nbaseline, suite {args.suite} ({len(suite)} distributions, "
          f"{recipe['epochs']} epochs):")
    print(f"  one process (--jobs 1), start-up to first step, first start: "
          f"{first['startup']:6.2f} s")
    print(f"  one process (--jobs 1), start-up to first step, cache present:"
          f" {statistics.median(startups):6.2f} s (range "
          f"{min(startups):.2f}-{max(startups):.2f}, n={len(startups)})")
    print(f"  evaluation of the test set: {cached['evaluate']:6.2f} s")
    print(f"  peak resident memory of one process: "
          f"{cached['peak_rss_mb']:6.0f} MB")
    what = ("the whole suite" if args.full_suite
            else "two distributions, 1 epoch")
    print(f"  default workers, {what}: first run announced after "
          f"{tree['first_run']:.2f} s, wall {tree['wall']:.1f} s")
    if tree["peak_pss_mb"] is not None:
        print(f"  default workers, peak memory of all processes (PSS): "
              f"{tree['peak_pss_mb']:6.0f} MB")
    if not args.full_suite:
        print(f"  whole suite, projected from the runner's median "
              f"throughput: {projected / 60:.1f} min")


def main_():
    args = parse_args()
    device = main.pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = data.load_dataset(args.data_dir, log=lambda line: None)
    counts = distributions.SUITES[args.suite][args.dist]
    indices = data.subset_indices(dataset.train_labels, counts, 0)
    mean_image = dataset.train_images[indices].float().mean(0)

    print(f"device {main._device_name(device)}, torch {torch.__version__}, "
          f"numpy {np.__version__}, python {platform.python_version()}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} cores")
    print(f"dtype {args.dtype}; training images: "
          f"{args.suite}/{args.dist} "
          f"({len(indices)} images); usual way: {args.workers} workers")
    baseline_runner = None
    for model_name in args.model:
        recipe = models.RECIPES[model_name]
        batch_size = args.batch_size or recipe["batch_size"]
        steps = args.steps or (20 if model_name == "dla"
                               and device.type == "cpu"
                               else len(indices) // batch_size)
        measured = {"ceiling": [], "runner": [], "usual": []}
        for _ in range(args.repeats):
            common = (model_name, device, batch_size, steps, args.compile,
                      args.dtype)
            measured["ceiling"].append(ceiling(*common))
            measured["runner"].append(runner(*common, dataset, indices))
            measured["usual"].append(usual(*common, args.data_dir, indices,
                                           args.workers, mean_image))
        print(f"\n{model_name}, batch {batch_size}, {steps} steps per "
              f"measurement:")
        for name, values in measured.items():
            print(f"  {name:8s} {describe(values)}")
        # per repeat, the ceiling and the runner ran seconds apart; the
        # best of each is the figure least touched by other load
        ratios = {
            "runner/ceiling": ([r / c for r, c in zip(measured["runner"],
                                                      measured["ceiling"])],
                               max(measured["runner"])
                               / max(measured["ceiling"])),
            "runner/usual": ([r / u for r, u in zip(measured["runner"],
                                                    measured["usual"])],
                             max(measured["runner"]) / max(measured["usual"]))}
        for name, (values, best) in ratios.items():
            print(f"  {name:15s} {statistics.median(values):.2f} "
                  f"(range {min(values):.2f}-{max(values):.2f}; "
                  f"best to best {best:.2f})")
        if model_name == "baseline":
            baseline_runner = statistics.median(measured["runner"])
    if baseline_runner and not args.skip_suite:
        suite_report(args, device, baseline_runner)


if __name__ == "__main__":
    main_()
