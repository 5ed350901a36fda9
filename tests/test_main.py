"""The command end to end, on small image folders made by the fixtures."""

import json

import pandas as pd
import pytest
import torch

import main


def run_cli(*args):
    return main.main([str(a) for a in args])


def tiny_args(image_folder, out_dir, *extra):
    return ("--suite", "tiny", "--data-dir", image_folder, "--out-dir",
            out_dir, "--epochs", 2, "--batch-size", 16, "--device", "cpu",
            "--jobs", 1, *extra)


def read_tables(out_dir, remedy="none"):
    """The run and per-class tables, keeping one remedy's rows."""
    runs = pd.read_csv(out_dir / "runs.csv")
    per_class = pd.read_csv(out_dir / "per_class.csv")
    return (runs[runs["remedy"] == remedy].reset_index(drop=True),
            per_class[per_class["remedy"] == remedy].reset_index(drop=True))


def test_results_hold_one_row_per_run_and_class(image_folder, tiny_suites,
                                                tmp_path):
    out = tmp_path / "out"
    assert run_cli(*tiny_args(image_folder, out, "--seeds", 0, 1)) == 0
    runs, per_class = read_tables(out)
    assert len(runs) == 4 and (runs["status"] == "ok").all()
    assert len(per_class) == 4 * 10
    assert set(runs["test_images"]) == {40}
    # the last digits depend on the processor and the thread count: each
    # run names both
    capability = torch.backends.cpu.get_cpu_capability()
    assert all(d.startswith("cpu (") and capability in d
               and d.endswith(", 1 threads)") for d in runs["device"])
    for (dist, seed), rows in per_class.groupby(["distribution", "seed"]):
        assert tuple(rows["train_count"]) == tiny_suites["tiny"][dist]
        assert (rows["test_count"] == 4).all()
        assert (rows["accuracy"] == rows["correct"] / rows["test_count"]).all()
    overall = per_class.groupby(["distribution", "seed"])["correct"].sum()
    assert (overall.values / 40 == runs.sort_values(
        ["distribution", "seed"])["accuracy"].values).all()


def test_same_seeds_give_identical_results(image_folder, tiny_suites,
                                           tmp_path):
    for name in ("a", "b"):
        assert run_cli(*tiny_args(image_folder, tmp_path / name)) == 0
    a, b = (read_tables(tmp_path / n)[1] for n in ("a", "b"))
    assert a["correct"].tolist() == b["correct"].tolist()
    result = "runs/tiny/balanced/baseline-default-none-e2-lr0.001-bs16-bf16-seed0-data0"
    loss = [json.loads((tmp_path / n / f"{result}.json").read_text())
            ["history"][-1]["train_loss"] for n in ("a", "b")]
    assert loss[0] == loss[1]


def test_rerun_skips_finished_runs_and_force_reruns(image_folder,
                                                   tiny_suites, tmp_path,
                                                   capsys):
    out = tmp_path / "out"
    run_cli(*tiny_args(image_folder, out))
    capsys.readouterr()
    run_cli(*tiny_args(image_folder, out))
    assert "0 trained, 2 already had results" in capsys.readouterr().out
    run_cli(*tiny_args(image_folder, out, "--force"))
    assert "2 trained, 0 already had results" in capsys.readouterr().out
    assert len(read_tables(out)[0]) == 2


def test_an_edited_table_row_is_rerun(image_folder, tiny_suites, tmp_path,
                                      capsys):
    out = tmp_path / "out"
    run_cli(*tiny_args(image_folder, out))
    tiny_suites["tiny"]["one-rare"] = (3,) + (8,) * 9
    capsys.readouterr()
    run_cli(*tiny_args(image_folder, out))
    printed = capsys.readouterr().out
    assert "table row changed" in printed and "1 trained" in printed
    per_class = read_tables(out)[1]
    rare = per_class[per_class["distribution"] == "one-rare"]
    assert rare["train_count"].iloc[0] == 3 and len(rare) == 10


def test_interrupted_run_resumes_to_the_same_result(image_folder,
                                                    tiny_suites, tmp_path,
                                                    monkeypatch):
    straight = tmp_path / "straight"
    run_cli(*tiny_args(image_folder, straight, "--epochs", 3))

    # stop the second distribution after its first epoch, as Ctrl-C would
    resumed = tmp_path / "resumed"
    real_log = print

    def interrupting_log(line):
        real_log(line)
        if "one-rare" in line and "epoch 2/3" in line:
            raise KeyboardInterrupt

    original = main.run_all
    monkeypatch.setattr(main, "run_all",
                        lambda args: original(args, log=interrupting_log))
    assert run_cli(*tiny_args(image_folder, resumed, "--epochs", 3)) == 130
    monkeypatch.setattr(main, "run_all", original)
    runs, _ = read_tables(resumed)
    assert runs["distribution"].tolist() == ["balanced"]
    assert list((resumed / "checkpoints").rglob("*.pt"))

    assert run_cli(*tiny_args(image_folder, resumed, "--epochs", 3)) == 0
    a, b = read_tables(straight)[1], read_tables(resumed)[1]
    assert len(b) == 20
    assert a["correct"].tolist() == b["correct"].tolist()
    assert not list((resumed / "checkpoints").rglob("*.pt"))


def test_a_diverging_run_is_recorded_and_the_loop_goes_on(
        image_folder, tiny_suites, tmp_path):
    out = tmp_path / "out"
    assert run_cli(*tiny_args(image_folder, out, "--lr", 1e12)) == 0
    runs, per_class = read_tables(out)
    assert runs["status"].tolist() == ["diverged", "diverged"]
    assert runs["accuracy"].isna().all()
    assert per_class["correct"].isna().all()


@pytest.mark.parametrize("extra,message", [
    (("--dist", "nope"), "unknown distribution 'nope'"),
    (("--suite", "papers"), "unknown suite 'papers'"),
    (("--epochs", 0), "--epochs must be at least 1"),
    (("--lr", -1), "--lr must be a positive number"),
    (("--seeds", -3), "seeds must not be negative"),
])
def test_bad_flags_stop_before_training(image_folder, tiny_suites, tmp_path,
                                        capsys, extra, message):
    out = tmp_path / "out"
    assert run_cli(*tiny_args(image_folder, out), *extra) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_broken_table_is_named_before_training(image_folder, tiny_suites,
                                                 tmp_path, capsys):
    tiny_suites["tiny"]["one-rare"] = (2,) + (13,) * 9
    out = tmp_path / "out"
    assert run_cli(*tiny_args(image_folder, out)) == 2
    err = capsys.readouterr().err
    assert "suite 'tiny', distribution 'one-rare', class 1 (automobile)" in err
    assert "asks for 13 images but the dataset holds 12" in err
    assert not (out / "runs").exists()


def test_missing_data_folder_is_a_clear_error(tiny_suites, tmp_path,
                                              capsys, monkeypatch):
    import data

    # the same path as a failed download, without reaching for the network
    offline = data._load_cifar10
    monkeypatch.setattr(data, "_load_cifar10",
                        lambda d, download, log: offline(d, False, log))
    code = run_cli("--suite", "tiny", "--data-dir", tmp_path / "none",
                   "--out-dir", tmp_path / "out")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: Could not find")
    assert "Traceback" not in err


def test_malformed_data_folder_is_a_clear_error(image_folder, tiny_suites,
                                                tmp_path, capsys):
    (image_folder / "train" / "dog" / "0003.png").write_text("garbage")
    assert run_cli(*tiny_args(image_folder, tmp_path / "out")) == 2
    assert "0003.png: cannot read image" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["baseline", "dla"])
def test_dry_run_works_without_data(model, tmp_path, capsys):
    code = run_cli("--model", model, "--dry-run", "--dist", "Dist.1",
                   "Dist.5", "--data-dir", tmp_path / "empty", "--device",
                   "cpu")
    printed = capsys.readouterr().out
    assert code == 0
    assert "synthetic" in printed and "2 trained" in printed


def test_caffe_init_runs_end_to_end(image_folder, tiny_suites, tmp_path):
    out = tmp_path / "out"
    assert run_cli(*tiny_args(image_folder, out, "--init", "caffe")) == 0
    runs, _ = read_tables(out)
    assert set(runs["init"]) == {"caffe"}


def test_help_states_defaults(capsys):
    with pytest.raises(SystemExit):
        main.parse_args(["--help"])
    text = capsys.readouterr().out
    for default in ("default: baseline", "default: ['paper']",
                    "default: ./data", "default: ./results", "baseline 10",
                    "images (default: 0)", "(default: every run)"):
        assert default in " ".join(text.split())


def test_dtype_is_part_of_a_run_and_float32_is_available(
        image_folder, tiny_suites, tmp_path):
    out = tmp_path / "out"
    for dtype in ("bf16", "fp32"):
        assert run_cli(*tiny_args(image_folder, out, "--dtype", dtype)) == 0
    runs = pd.read_csv(out / "runs.csv")
    none = runs[runs["remedy"] == "none"]
    assert sorted(none["dtype"]) == ["bf16", "bf16", "fp32", "fp32"]
    per_class = pd.read_csv(out / "per_class.csv")
    assert per_class["precision"].between(0, 1).all()
    files = sorted(p.name for p in (out / "runs" / "tiny" / "balanced")
                   .glob("*.json"))
    assert [("-bf16-" in f, "-fp32-" in f) for f in files] == [
        (True, False), (False, True)]


def test_class_ordered_training_is_a_setting_of_its_own(
        image_folder, tiny_suites, tmp_path, capsys):
    out = tmp_path / "out"
    for order in ("shuffled", "by-class"):
        assert run_cli(*tiny_args(image_folder, out, "--order", order)) == 0
    runs = read_tables(out)[0]
    assert sorted(runs["order"]) == ["by-class"] * 2 + ["shuffled"] * 2
    # the default order keeps the file names of runs made before the flag
    stem = "baseline-default-none-e2-lr0.001-bs16-bf16-seed0-data0"
    files = [f"{stem}.json", f"{stem}-by-class.json"]
    folder = out / "runs" / "tiny" / "balanced"
    assert sorted(p.name for p in folder.glob("*.json")) == sorted(files)
    shuffled, by_class = (json.loads((folder / f).read_text())
                          for f in files)
    assert shuffled["history"] != by_class["history"]
    # each order is compared with the balanced row of the same order
    summary = pd.read_csv(out / "summary.csv")
    summary = summary[summary["remedy"] == "none"]
    assert sorted(summary["order"]) == sorted(runs["order"])
    assert (summary["vs_balanced_pairs"] == 1).all()
    capsys.readouterr()
    run_cli(*tiny_args(image_folder, out, "--order", "by-class"))
    assert "0 trained, 2 already had results" in capsys.readouterr().out
