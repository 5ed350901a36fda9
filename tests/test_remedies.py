"""Remedies for imbalance, metrics from saved logits, and statistics."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

import data
import main
import metrics
import models
from test_main import read_tables, run_cli, tiny_args

LABELS = torch.arange(10).repeat_interleave(30)
COUNTS = (30, 20, 10, 5, 3, 30, 30, 1, 0, 12)


def subset():
    return data.subset_indices(LABELS, COUNTS, seed=0)


def test_oversampling_gives_every_class_the_largest_count():
    indices = subset()
    over = data.oversample(indices, LABELS, seed=0)
    counts = torch.bincount(LABELS[over], minlength=10).tolist()
    assert counts == [30] * 8 + [0, 30]
    # every original image is kept, and repeated images come from the class
    assert set(indices.tolist()) == set(over.tolist())
    assert torch.equal(over, data.oversample(indices, LABELS, seed=0))


def test_undersampling_cuts_every_class_to_the_smallest():
    under = data.undersample(subset(), LABELS, seed=0)
    counts = torch.bincount(LABELS[under], minlength=10).tolist()
    assert counts == [1] * 8 + [0, 1]
    assert set(under.tolist()) <= set(subset().tolist())


def test_class_weights_are_inverse_frequency_averaging_one():
    weights = main.class_weights(COUNTS, "cpu")
    present = torch.tensor(COUNTS) > 0
    assert weights[~present].tolist() == [0.0]
    assert weights[present].mean().item() == pytest.approx(1.0)
    assert (weights[0] * 30).item() == pytest.approx((weights[4] * 3).item())


def test_thresholding_with_equal_priors_changes_nothing():
    rng = np.random.default_rng(0)
    probabilities = metrics.softmax(rng.normal(size=(200, 10)))
    same = metrics.threshold_scores(probabilities, [7] * 10)
    assert np.allclose(same, probabilities)


def test_thresholding_never_predicts_a_class_without_training_images():
    probabilities = np.array([[0.7, 0.299, 0.001], [0.2, 0.2, 0.6]])
    adjusted = metrics.threshold_scores(probabilities, [5000, 5000, 0])
    assert adjusted[:, 2].tolist() == [0.0, 0.0]
    assert adjusted.argmax(1).tolist() == [0, 0]


def test_thresholding_favours_the_rare_class():
    # a model that slightly prefers the common class is corrected
    probabilities = np.array([[0.55, 0.45], [0.6, 0.4]])
    adjusted = metrics.threshold_scores(probabilities, [900, 100])
    assert adjusted.argmax(1).tolist() == [1, 1]
    assert np.allclose(adjusted.sum(1), 1)


def test_fine_tuning_phase_trains_only_the_final_layer():
    model = models.build_model("baseline")
    run = main.Run("s", "d", COUNTS, "baseline", "default", "two-phase", 0,
                   0, 10, 0.001, 100)
    optimizer = main.make_optimizer(model, run, models.RECIPES["baseline"],
                                    phase=1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"}
    assert sum(len(g["params"]) for g in optimizer.param_groups) == 2
    phases = main.training_phases(run, subset(), LABELS)
    assert [epochs for _, epochs in phases] == [10, 2]
    assert len(phases[0][0]) == 30 * 9 and len(phases[1][0]) == sum(COUNTS)


def test_metrics_match_a_hand_worked_example():
    labels = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    scores = np.eye(3)[predicted] * 0.7 + 0.1
    run, per_class, confusion = metrics.evaluate(scores, labels, [4, 2, 1])
    assert run["accuracy"] == pytest.approx(4 / 6)
    assert per_class["recall"].tolist() == [0.5, 1.0, 0.5]
    assert per_class["precision"].tolist() == pytest.approx([0.5, 2 / 3, 1])
    assert confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # classes below the average count (7/3): classes 1 and 2
    assert run["minority_recall"] == pytest.approx(0.75)
    assert run["rarest_recall"] == pytest.approx(0.5)
    assert run["top_class_share"] == pytest.approx(3 / 6)


def test_a_run_predicting_one_class_counts_as_collapsed():
    runs = pd.DataFrame({
        "suite": "s", "distribution": "d", "model": "m", "init": "i",
        "remedy": "none", "dtype": "bf16", "order": "shuffled", "epochs": 1,
        "seed": [0, 1, 2, 3],
        "status": ["ok", "ok", "ok", "diverged"],
        "imbalance_ratio": 2.0, "accuracy": [0.1, 0.5, 0.6, np.nan],
        "top_class_share": [0.95, 0.2, 0.89, np.nan]})
    runs["lr"], runs["batch_size"], runs["data_seed"] = 0.1, 10, 0
    row = metrics.summarise(runs).iloc[0]
    assert (row["seeds"], row["collapsed"], row["diverged"]) == (3, 1, 1)
    # a group whose every run diverged still shows up
    runs["status"] = "diverged"
    row = metrics.summarise(runs).iloc[0]
    assert (row["seeds"], row["diverged"]) == (0, 4)


def test_a_remedy_is_paired_with_no_remedy_trained_as_many_steps():
    # no remedy for 10 and 20 epochs (1,000 and 2,000 steps), undersampling
    # for 40 epochs of 49 steps (1,960 steps), oversampling for 10 epochs
    # of 1,500 steps
    specs = [("none", 10, 1000, 0.60), ("none", 20, 2000, 0.65),
             ("undersample", 40, 1960, 0.55), ("oversample", 10, 1500, 0.70)]
    runs = pd.DataFrame([
        dict(suite="s", distribution="d", model="m", init="i", remedy=remedy,
             dtype="bf16", order="shuffled", epochs=epochs, steps=steps,
             seed=seed, status="ok", imbalance_ratio=2.0,
             accuracy=accuracy + 0.01 * seed * (remedy == "undersample"),
             top_class_share=0.2, lr=0.1, batch_size=10, data_seed=0)
        for remedy, epochs, steps, accuracy in specs for seed in (0, 1, 2)])
    summary = metrics.summarise(runs).set_index(["remedy", "epochs"])
    under = summary.loc[("undersample", 40)]
    assert under["vs_none_steps_diff"] == pytest.approx(-0.09)
    assert under["vs_none_steps_pairs"] == 3
    assert under["vs_none_steps_ci_low"] < -0.09 < under[
        "vs_none_steps_ci_high"]
    assert np.isnan(under["vs_none_diff"])
    # 1,500 steps is not within 5% of 1,000 or 2,000: no equal-steps pair;
    # the same epochs still give the usual comparison
    over = summary.loc[("oversample", 10)]
    assert np.isnan(over["vs_none_steps_diff"])
    assert over["vs_none_diff"] == pytest.approx(0.10)
    # no remedy is never compared with itself
    assert summary.loc[("none", 20)][["vs_none_diff",
                                      "vs_none_steps_diff"]].isna().all()


def _steps_runs(specs, order="shuffled"):
    """Runs of one distribution: (remedy, epochs, steps, accuracy) for seeds
    0 to 2."""
    return pd.DataFrame([
        dict(suite="s", distribution="d", model="m", init="i", remedy=remedy,
             dtype="bf16", order=order, epochs=epochs, steps=steps,
             seed=seed, status="ok", imbalance_ratio=2.0, accuracy=accuracy,
             top_class_share=0.2, lr=0.1, batch_size=10, data_seed=0)
        for remedy, epochs, steps, accuracy in specs for seed in (0, 1, 2)])


def test_equal_steps_takes_the_closest_partner_of_the_same_recipe():
    # two runs without a remedy lie within 5% of the oversampled 2,000
    # steps; the closer (2,030 steps) is the partner, and a class-ordered
    # run of exactly 2,000 steps is another recipe and is ignored
    runs = pd.concat([
        _steps_runs([("none", 19, 1930, 0.60), ("none", 20, 2030, 0.65),
                     ("oversample", 10, 2000, 0.70)]),
        _steps_runs([("none", 21, 2000, 0.10)], order="by-class")])
    summary = metrics.summarise(runs)
    over = summary[summary["remedy"] == "oversample"].iloc[0]
    assert over["vs_none_steps_diff"] == pytest.approx(0.05)
    assert over["vs_none_steps_pairs"] == 3


def test_a_remedy_as_long_as_no_remedy_has_no_second_partner():
    # the weighted loss keeps the epoch's length: no remedy after the same
    # 40 epochs is its equal-steps comparison (vs_none), and a run of 42
    # epochs within 5% of its steps is not a second one
    runs = _steps_runs([("none", 40, 2000, 0.60), ("none", 42, 2100, 0.65),
                        ("weighted-loss", 40, 2000, 0.62)])
    summary = metrics.summarise(runs)
    weighted = summary[summary["remedy"] == "weighted-loss"].iloc[0]
    assert weighted["vs_none_diff"] == pytest.approx(0.02)
    assert np.isnan(weighted.get("vs_none_steps_diff", np.nan))


def test_equal_steps_skips_runs_without_recorded_steps():
    # result files older than the steps column are assembled with no steps;
    # they give no equal-steps pair instead of an error
    runs = _steps_runs([("none", 20, float("nan"), 0.65),
                        ("oversample", 10, 2000, 0.70)])
    summary = metrics.summarise(runs)
    over = summary[summary["remedy"] == "oversample"].iloc[0]
    assert np.isnan(over.get("vs_none_steps_diff", np.nan))


def test_interval_is_a_t_interval():
    mean, std, low, high = metrics.interval([1.0, 2.0, 3.0])
    assert (mean, std) == (2.0, 1.0)
    assert high - mean == pytest.approx(4.302653 / 3 ** 0.5, rel=1e-5)
    assert np.isnan(metrics.interval([1.0])[2])


def test_every_remedy_runs_from_the_command_line(image_folder, tiny_suites,
                                                 tmp_path):
    out = tmp_path / "out"
    assert run_cli(*tiny_args(image_folder, out, "--remedy", "oversample",
                              "undersample", "weighted-loss", "two-phase",
                              "threshold", "--seeds", 0, 1)) == 0
    runs = pd.read_csv(out / "runs.csv")
    rare = runs[runs["distribution"] == "one-rare"].set_index(
        ["remedy", "seed"])
    assert set(runs["remedy"]) == set(main.REMEDIES)
    assert len(runs) == 2 * 2 * len(main.REMEDIES)
    # 80 images per oversampled epoch, 20 undersampled, 74 as drawn
    steps = rare.xs(0, level="seed")["steps"]
    assert steps["oversample"] == 2 * 5 and steps["undersample"] == 2 * 2
    assert steps["none"] == 2 * 5 and steps["two-phase"] == 2 * 5 + 1 * 5
    for column in ("macro_f1", "roc_auc", "minority_recall"):
        assert rare[column].notna().all(), column
    # a balanced row has no minority classes
    assert runs[runs["distribution"] == "balanced"][
        "minority_recall"].isna().all()

    summary = pd.read_csv(out / "summary.csv")
    oversampled = summary[(summary["distribution"] == "one-rare")
                          & (summary["remedy"] == "oversample")].iloc[0]
    assert oversampled["seeds"] == 2
    assert oversampled["vs_none_pairs"] == 2
    assert oversampled["vs_balanced_pairs"] == 2
    # a remedy is measured against the balanced row without a remedy
    plain = runs[(runs["distribution"] == "balanced")
                 & (runs["remedy"] == "none")].set_index("seed")
    expected = (rare.xs("oversample")["accuracy"]
                - plain["accuracy"]).mean()
    assert oversampled["vs_balanced_diff"] == pytest.approx(expected)
    assert oversampled["accuracy_ci_low"] <= oversampled["accuracy_mean"]


def test_older_result_files_still_load(image_folder, tiny_suites, tmp_path):
    out = tmp_path / "out"
    run_cli(*tiny_args(image_folder, out))
    expected = read_tables(out)[1]["precision"].tolist()

    # strip the metrics, as a file from before they were recorded
    for path in (out / "runs").rglob("*.json"):
        result = json.loads(path.read_text())
        for key in ("confusion", "threshold"):
            result.pop(key)
        result["run"] = {k: v for k, v in result["run"].items()
                         if k not in metrics.RUN_METRICS}
        result["per_class"] = [
            {k: v for k, v in row.items() if k not in metrics.CLASS_METRICS}
            for row in result["per_class"]]
        path.write_text(json.dumps(result))
    main.assemble_tables(out)
    assert read_tables(out)[1]["precision"].tolist() == expected

    # without the logits the rows still load, with empty metric columns
    for path in (out / "runs").rglob("*.json"):
        result = json.loads(path.read_text())
        for key in ("confusion", "threshold"):
            result.pop(key)
        path.write_text(json.dumps(result))
    for path in (out / "runs").rglob("*.logits.npz"):
        path.unlink()
    runs, per_class = main.assemble_tables(out)
    assert len(runs) == 2 and len(per_class) == 20
    assert pd.read_csv(out / "runs.csv")["status"].eq("ok").all()
