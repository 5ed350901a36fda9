"""A short real run on the JPEG copy of CIFAR-10 (skipped without it)."""

import pandas as pd

import distributions
import main
from data import load_dataset


def test_the_copy_holds_all_of_cifar10(real_data_dir):
    ds = load_dataset(real_data_dir, log=lambda line: None)
    assert ds.classes == distributions.CLASSES
    assert ds.class_counts("train") == (5000,) * 10
    assert ds.class_counts("test") == (1000,) * 10


def test_baseline_learns_and_a_100x_rare_class_is_missed(
        real_data_dir, tmp_path, monkeypatch):
    # 100x step imbalance at a tenth of the size: 1,500 images of each of the
    # first five classes, 15 of each of the last five
    step = distributions.step(10, 1500, 15, range(5, 10))
    monkeypatch.setattr(distributions, "SUITES", {"check": {"step": step}})
    out = tmp_path / "out"
    assert main.main(["--suite", "check", "--data-dir", str(real_data_dir),
                      "--out-dir", str(out), "--epochs", "4",
                      "--device", "cpu"]) == 0

    runs = pd.read_csv(out / "runs.csv").query("remedy == 'none'")
    per_class = pd.read_csv(out / "per_class.csv").query("remedy == 'none'")
    per_class = per_class.reset_index(drop=True)
    assert runs["test_images"].item() == 10000
    assert per_class["train_count"].tolist() == list(step)
    majority = per_class["accuracy"][:5].mean()
    minority = per_class["accuracy"][5:].mean()
    print(f"overall {runs['accuracy'].item():.3f}, majority recall "
          f"{majority:.3f}, minority recall {minority:.3f}")
    assert runs["accuracy"].item() > 0.25      # chance is 0.10
    assert majority > 0.5
    assert minority < majority - 0.3


def test_the_benchmark_prints_three_throughputs_and_both_ratios(
        real_data_dir):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / \
        "throughput.py"
    output = subprocess.run(
        [sys.executable, str(script), "--data-dir", str(real_data_dir),
         "--steps", "3", "--repeats", "1", "--skip-suite", "--workers", "1"],
        check=True, capture_output=True, text=True).stdout
    for name in ("ceiling", "runner", "usual", "runner/ceiling",
                 "runner/usual"):
        assert f"  {name} " in output, output
