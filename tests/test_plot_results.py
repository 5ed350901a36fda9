"""The figures command on small result tables written by the tests."""

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import distributions
import metrics
import plot_results
from test_main import run_cli, tiny_args

TABLE_FILES = [f"table_{suite}_{kind}.png"
               for suite in distributions.SUITES
               for kind in ("percent", "counts")]
RESULT_FILES = [
    "accuracy_paper_baseline.png", "accuracy_small_baseline.png",
    "accuracy_paper_baseline_caffe.png", "overall_paper.png",
    "overall_small.png", "accuracy_vs_count.png", "paper_vs_small.png",
]


def result_rows(suite, dist, seed, init="default", status="ok",
                epochs=10, remedy="none", accuracy=0.7):
    """One run row and its ten per-class rows, as main.py writes them."""
    counts = distributions.SUITES[suite][dist]
    key = dict(suite=suite, distribution=dist, model="baseline", init=init,
               remedy=remedy, dtype="bf16", order="shuffled", seed=seed,
               data_seed=0, epochs=epochs)
    ok = status == "ok"
    # a little spread over classes and seeds, as real runs have
    per_class = [accuracy + 0.02 * (c % 3) + 0.01 * seed for c in range(10)]
    classes = [dict(key, class_index=c, **{"class": name},
                    train_count=counts[c], test_count=1000,
                    correct=round(1000 * per_class[c]) if ok else None,
                    accuracy=per_class[c] if ok else np.nan)
               for c, name in enumerate(distributions.CLASSES)]
    run = dict(key, train_images=sum(counts), test_images=10000,
               accuracy=float(np.mean(per_class)) if ok else np.nan,
               status=status)
    return run, classes


def write_results(folder, specs, drop=()):
    """Write runs.csv and per_class.csv for ``specs`` (argument tuples of
    result_rows), without the columns in ``drop``."""
    folder.mkdir(parents=True, exist_ok=True)
    runs, per_class = [], []
    for spec in specs:
        run, classes = result_rows(*spec)
        runs.append(run)
        per_class += classes
    for rows, name in ((runs, "runs.csv"), (per_class, "per_class.csv")):
        table = pd.DataFrame(rows).drop(columns=list(drop))
        table.to_csv(folder / name, index=False)
    return folder


STANDARD_SPECS = (
    [(suite, dist, seed) for suite in ("paper", "small")
     for dist in ("Dist.1", "Dist.2") for seed in (0, 1)]
    + [("paper", "Dist.2", 2, "default", "diverged"),
       ("paper", "Dist.1", 0, "caffe")])


def run_main(results, out, *extra):
    """Run the command at a low resolution, which is faster; returns its
    exit status and what it printed."""
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, \
            contextlib.redirect_stdout(printed):
        patch.setattr(plot_results, "DPI", 40)
        status = plot_results.main(
            ["--results", str(results), "--out", str(out), *extra])
    return status, printed.getvalue()


@pytest.fixture(scope="module")
def plotted(tmp_path_factory):
    """The command run once on the standard results; (out folder, output)."""
    root = tmp_path_factory.mktemp("plots")
    results = write_results(root / "results", STANDARD_SPECS)
    status, printed = run_main(results, root / "assets")
    assert status == 0
    return root / "assets", printed


def test_every_figure_is_written_and_not_empty(plotted):
    out, printed = plotted
    for name in TABLE_FILES + RESULT_FILES:
        assert (out / name).stat().st_size > 0, name
        assert f"wrote {out / name}" in printed


def test_suite_without_results_is_skipped_with_a_message(plotted):
    out, printed = plotted
    assert ("skip accuracy_extreme_baseline: no results for suite extreme, "
            "model baseline") in printed
    assert "skip overall_extreme: no results for suite extreme" in printed
    assert ("skip accuracy_small_baseline_caffe: no results for suite "
            "small, model baseline, init caffe") in printed
    assert not (out / "accuracy_extreme_baseline.png").exists()
    assert not (out / "overall_extreme.png").exists()
    # runs without a remedy and without result files
    assert ("skip remedies_paper_baseline: only remedy none has results for "
            "suite paper, model baseline") in printed
    assert "skip confusion_paper_baseline: no result file under" in printed
    assert not list(out.glob("remedies_*")) + list(out.glob("confusion_*"))


def test_diverged_runs_are_noted_and_left_out_of_the_means(tmp_path,
                                                           capsys):
    results = write_results(tmp_path, STANDARD_SPECS)
    runs, per_class = plot_results.select_runs(
        *plot_results.load_results(results))
    assert "note: 1 of 10 runs did not finish (diverged)" in (
        capsys.readouterr().out)
    assert (runs["status"] == "ok").all() and len(runs) == 9
    chosen = runs[(runs["suite"] == "paper") & (runs["init"] == "default")]
    stats = plot_results.overall_stats(chosen, ["Dist.1", "Dist.2"])
    assert stats.loc["Dist.2", "count"] == 2
    assert stats.loc["Dist.2", "mean"] == pytest.approx(
        100 * chosen[chosen["distribution"] == "Dist.2"]["accuracy"].mean())


def test_accuracy_cells_follow_table_and_class_order(tmp_path):
    results = write_results(tmp_path, STANDARD_SPECS)
    runs, per_class = plot_results.select_runs(
        *plot_results.load_results(results))
    keep = (runs["suite"] == "small") & (runs["init"] == "default")
    keep_class = ((per_class["suite"] == "small")
                  & (per_class["init"] == "default"))
    mean, std, count = plot_results.accuracy_cells(
        runs[keep], per_class[keep_class], ["Dist.1", "Dist.2"],
        list(distributions.CLASSES))
    assert list(mean.columns) == list(distributions.CLASSES) + ["overall"]
    assert list(mean.index) == ["Dist.1", "Dist.2"]
    assert (count.values == 2).all()
    # seeds 0 and 1 differ by one point in every cell
    assert mean.loc["Dist.1", "airplane"] == pytest.approx(70.5)
    assert std.loc["Dist.1", "airplane"] == pytest.approx(np.sqrt(0.5))


def test_older_tables_without_init_and_remedy_load(tmp_path):
    results = write_results(tmp_path, [("paper", "Dist.1", 0)],
                            drop=("init", "remedy", "dtype"))
    runs, per_class = plot_results.load_results(results)
    for table in (runs, per_class):
        assert set(table["init"]) == {"default"}
        assert set(table["remedy"]) == {"none"}
        assert set(table["dtype"]) == {"fp32"}
    assert set(per_class["status"]) == {"ok"}


def test_only_the_chosen_dtype_is_plotted(tmp_path, capsys):
    results = write_results(tmp_path / "r", [("paper", "Dist.1", 0),
                                             ("paper", "Dist.2", 0)])
    runs = pd.read_csv(results / "runs.csv")
    runs.loc[1, "dtype"] = "fp32"
    runs.to_csv(results / "runs.csv", index=False)
    per_class = pd.read_csv(results / "per_class.csv")
    per_class.loc[per_class["distribution"] == "Dist.2", "dtype"] = "fp32"
    per_class.to_csv(results / "per_class.csv", index=False)
    kept, kept_class = plot_results.keep_settings(
        *plot_results.load_results(results), dtype="bf16")
    assert list(kept["distribution"]) == ["Dist.1"]
    assert set(kept_class["distribution"]) == {"Dist.1"}
    assert "1 runs with another dtype than bf16" in capsys.readouterr().out


def test_figures_keep_one_recipe_and_name_another_dtype(tmp_path, capsys):
    results = write_results(tmp_path / "r", [("paper", "Dist.1", 0),
                                             ("paper", "Dist.1", 1),
                                             ("paper", "Dist.2", 0)])
    runs = pd.read_csv(results / "runs.csv").assign(lr=0.001)
    runs.loc[2, "lr"] = 0.01
    # another model has a recipe of its own, and keeps it
    dla = runs.iloc[[0]].assign(model="dla", lr=0.1)
    pd.concat([runs, dla]).to_csv(results / "runs.csv", index=False)
    kept, kept_class = plot_results.keep_common_recipe(
        *plot_results.load_results(results))
    assert list(kept["distribution"]) == ["Dist.1", "Dist.1", "Dist.1"]
    assert list(kept["model"]) == ["baseline", "baseline", "dla"]
    assert len(kept_class) == 20
    assert set(kept_class["distribution"]) == {"Dist.1"}
    assert "1 runs with another lr than their model's most common" in (
        capsys.readouterr().out)
    runs.to_csv(results / "runs.csv", index=False)
    # float32 figures end in _fp32 and leave the bf16 names alone
    for name in ("runs.csv", "per_class.csv"):
        table = pd.read_csv(results / name).assign(dtype="fp32")
        table.to_csv(results / name, index=False)
    status, _ = run_main(results, tmp_path / "figures", "--dtype", "fp32")
    assert status == 0
    assert (tmp_path / "figures" / "accuracy_paper_baseline_fp32.png").exists()
    assert not (tmp_path / "figures" / "accuracy_paper_baseline.png").exists()


def test_shorter_runs_are_left_out(tmp_path, capsys):
    specs = [("paper", "Dist.1", 0),
             ("paper", "Dist.1", 1, "default", "ok", 2)]
    runs, per_class = plot_results.select_runs(
        *plot_results.load_results(write_results(tmp_path, specs)))
    assert set(runs["epochs"]) == {10} and set(per_class["epochs"]) == {10}
    assert "left out 1 runs with fewer epochs" in capsys.readouterr().out


@pytest.mark.parametrize("setup", ["missing", "empty", "other-remedy"])
def test_table_figures_are_written_without_results(tmp_path, setup):
    results = tmp_path / "results"
    if setup == "empty":
        write_results(results, [])
    elif setup == "other-remedy":
        write_results(results, [("paper", "Dist.1", 0, "default", "ok", 10,
                                 "oversample")])
    status, printed = run_main(results, tmp_path / "assets")
    assert status == 0
    for name in TABLE_FILES:
        assert (tmp_path / "assets" / name).stat().st_size > 0
    written = sorted(p.name for p in (tmp_path / "assets").iterdir())
    assert written == sorted(TABLE_FILES)
    assert "no results" in printed or "no finished runs" in printed


# The remedies and confusion figures.

def test_remedy_and_confusion_figures_of_a_real_run(image_folder, tiny_suites,
                                                    tmp_path):
    results = tmp_path / "results"
    assert run_cli(*tiny_args(image_folder, results, "--remedy",
                              "oversample", "threshold", "--seeds", 0, 1,
                              "--epochs", 1)) == 0
    status, printed = run_main(results, tmp_path / "assets")
    assert status == 0
    for name in ("remedies_tiny_baseline.png", "confusion_tiny_baseline.png"):
        path = tmp_path / "assets" / name
        assert path.stat().st_size > 0 and f"wrote {path}" in printed

    # two distributions, two seeds, three remedies
    confusions = plot_results.load_confusions(results)
    assert len(confusions) == 2 * 2 * 3
    assert plot_results.most_imbalanced("tiny", confusions) == ["one-rare"]
    # the diagonal is the recall that per_class.csv holds, over both seeds
    per_class = pd.read_csv(results / "per_class.csv")
    for remedy in ("none", "oversample", "threshold"):
        chosen = confusions[(confusions["distribution"] == "one-rare")
                            & (confusions["remedy"] == remedy)]
        percent = plot_results.confusion_percent(chosen["confusion"])
        assert np.allclose(percent.sum(axis=1), 100)
        rows = per_class[(per_class["distribution"] == "one-rare")
                         & (per_class["remedy"] == remedy)]
        by_class = rows.groupby("class_index")[["correct", "test_count"]].sum()
        assert np.allclose(np.diag(percent), 100 * by_class["correct"]
                           / by_class["test_count"])


def test_confusion_figure_is_skipped_for_files_without_matrices(tmp_path):
    specs = [("paper", "Dist.1", 0), ("paper", "Dist.3", 0)]
    results = write_results(tmp_path / "results", specs)
    # result files as written before confusion matrices were recorded
    for spec in specs:
        run, classes = result_rows(*spec)
        path = results / "runs" / run["suite"] / run["distribution"] / (
            "baseline-default-none-e10-seed0.json")
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"run": run, "per_class": classes}))
    assert plot_results.load_confusions(results).empty

    status, printed = run_main(results, tmp_path / "assets")
    assert status == 0
    assert (f"skip confusion_paper_baseline: no result file under {results}"
            f"/runs holds a confusion matrix for suite paper, model "
            f"baseline") in printed
    assert not list((tmp_path / "assets").glob("confusion_*"))


def test_remedy_stats_are_t_intervals_per_remedy_and_distribution():
    runs = pd.DataFrame({
        "remedy": ["none"] * 3 + ["oversample"],
        "distribution": ["Dist.2"] * 4, "seed": [0, 1, 2, 0],
        "accuracy": [0.70, 0.72, 0.71, 0.75]})
    stats = plot_results.remedy_stats(runs, "accuracy")
    mean, _, low, high = metrics.interval([70, 72, 71])
    none = stats.loc[("none", "Dist.2")]
    assert [none["mean"], none["low"], none["high"]] == pytest.approx(
        [mean, low, high])
    one = stats.loc[("oversample", "Dist.2")]
    assert one["mean"] == pytest.approx(75) and np.isnan(one["low"])
    assert one["seeds"] == 1


def test_remedies_are_compared_after_the_same_epochs():
    # none and threshold at 10 and 30 epochs, oversample only at 10
    rows = [dict(suite="paper", model="baseline", init="default",
                 remedy=remedy, epochs=epochs)
            for epochs in (10, 30) for remedy in ("none", "threshold")]
    rows.append(dict(rows[0], remedy="oversample"))
    kept = plot_results.comparable_runs(pd.DataFrame(rows))
    assert set(kept["epochs"]) == {10} and len(kept) == 3


def _remedy_summary(rows, steps=None):
    """The summary of runs given as (distribution, remedy, epochs, seed,
    accuracy); ``steps`` maps (remedy, epochs) to a run's steps (default:
    100 an epoch)."""
    runs = pd.DataFrame([result_rows("paper", dist, seed, remedy=remedy,
                                     epochs=epochs, accuracy=accuracy)[0]
                         for dist, remedy, epochs, seed, accuracy in rows])
    balanced = runs["distribution"] == "Dist.1"
    runs = runs.assign(lr=0.001, batch_size=100, top_class_share=0.1,
                       macro_f1=runs["accuracy"],
                       imbalance_ratio=np.where(balanced, 1.0, 2.0),
                       minority_recall=np.where(balanced, np.nan, 0.5),
                       steps=[(steps or {}).get((r, e), 100 * e)
                              for r, e in zip(runs["remedy"],
                                              runs["epochs"])])
    return metrics.summarise(runs)


def test_remedy_table_shows_epochs_only_where_they_vary_per_row():
    same = _remedy_summary([("Dist.2", remedy, 10, seed, accuracy)
                            for remedy, accuracy in (("none", 0.7),
                                                     ("oversample", 0.75))
                            for seed in (0, 1)])
    text = plot_results._remedy_section("paper", "baseline", "default", same)
    assert "baseline, 10 epochs\n" in text and "| epochs |" not in text
    # an equal-steps control: no remedy trained longer than oversampling
    longer = _remedy_summary([("Dist.2", "none", 30, seed, 0.6)
                              for seed in (0, 1)])
    text = plot_results._remedy_section(
        "paper", "baseline", "default", pd.concat([same, longer]))
    assert "10 to 30 epochs (per row)" in text
    lines = [line for line in text.splitlines() if line.startswith("| Dist")]
    assert [line.split(" | ")[1:3] for line in lines] == [
        ["none", "10"], ["none", "30"], ["oversample", "10"]]
    # oversampling is paired with no remedy at its own 10 epochs, not at 30
    assert lines[2].split(" | ")[7] == "+5.0 [+5.0, +5.0] |"


def test_remedy_table_pairs_with_no_remedy_at_equal_steps_where_it_can():
    rows = [("Dist.2", remedy, epochs, seed, accuracy)
            for remedy, epochs, accuracy in (("none", 10, 0.7),
                                             ("none", 40, 0.72),
                                             ("undersample", 100, 0.62),
                                             ("oversample", 10, 0.75))
            for seed in (0, 1)]
    summary = _remedy_summary(rows, steps={("undersample", 100): 4000,
                                           ("oversample", 10): 4100})
    text = plot_results._remedy_section("paper", "baseline", "default",
                                        summary)
    assert "| vs none at equal steps, points [95% CI] |" in text
    cells = {tuple(line.split(" | ")[1:3]): line.strip("| ").split(" | ")
             for line in text.splitlines() if line.startswith("| Dist")}
    # undersampling: no pair at its epochs, one at its steps (4,000)
    assert cells[("undersample", "100")][7:9] == ["", "-10.0 [-10.0, -10.0]"]
    # oversampling (4,100 steps): both, each against its own reference
    assert cells[("oversample", "10")][7:9] == ["+5.0 [+5.0, +5.0]",
                                                "+3.0 [+3.0, +3.0]"]
    # without such pairs the column is left out
    plain = _remedy_summary([row for row in rows if row[1] != "undersample"
                             and row[2] == 10])
    assert "equal steps" not in plot_results._remedy_section(
        "paper", "baseline", "default", plain)


def test_remedy_gains_at_equal_epochs_and_at_equal_steps(tmp_path):
    def seeds(dist, remedy, epochs, accuracy):
        return [(dist, remedy, epochs, seed, accuracy) for seed in (0, 1)]

    # the main folder: every remedy after 10 epochs
    epochs = _remedy_summary(
        seeds("Dist.2", "none", 10, 0.70) + seeds("Dist.2", "oversample",
                                                  10, 0.75)
        + seeds("Dist.2", "weighted-loss", 10, 0.73),
        steps={("oversample", 10): 2000})
    # the control: no remedy and the weighted loss for as many steps as
    # oversampling took (20 epochs of 100 steps), and the oversampled runs
    steps = _remedy_summary(
        seeds("Dist.2", "none", 20, 0.74) + seeds("Dist.2", "oversample",
                                                  10, 0.75)
        + seeds("Dist.2", "weighted-loss", 20, 0.75),
        steps={("oversample", 10): 2000})
    gains = plot_results.remedy_gains(epochs, steps)["mean"]
    assert gains[("oversample", "Dist.2", "epochs")] == pytest.approx(5.0)
    assert gains[("oversample", "Dist.2", "steps")] == pytest.approx(1.0)
    assert gains[("weighted-loss", "Dist.2", "epochs")] == pytest.approx(3.0)
    assert gains[("weighted-loss", "Dist.2", "steps")] == pytest.approx(1.0)
    assert "none" not in gains.index.get_level_values("remedy")
    # oversampled and plain runs of the same epochs are not an equal-steps
    # pair, and a folder of remedy runs alone has no pairs at all
    same_epochs = _remedy_summary(
        seeds("Dist.2", "none", 10, 0.70) + seeds("Dist.2", "oversample",
                                                  10, 0.75),
        steps={("oversample", 10): 2000})
    alone = _remedy_summary(seeds("Dist.2", "oversample", 10, 0.75))
    for control in (same_epochs, alone):
        gains_of = plot_results.remedy_gains(epochs, control)
        assert "steps" not in gains_of.index.get_level_values("basis")

    for folder, summary in (("results", epochs),
                            ("results/equal-steps", steps)):
        (tmp_path / folder).mkdir(parents=True)
        summary.to_csv(tmp_path / folder / "summary.csv", index=False)
    plot_results.write_gain_figures(tmp_path / "results",
                                    tmp_path / "results/equal-steps",
                                    tmp_path)
    assert (tmp_path / "remedy_gains_paper_baseline.png").stat().st_size


def test_remedy_table_leaves_metrics_that_do_not_apply_blank():
    summary = _remedy_summary([("Dist.1", remedy, 10, seed, 0.7)
                               for remedy in ("none", "oversample")
                               for seed in (0, 1)]
                              + [("Dist.2", "oversample", 10, 0, 0.7)])
    text = plot_results._remedy_section("paper", "baseline", "default",
                                        summary)
    cells = {tuple(line.split(" | ")[:2]): line.split(" | ")
             for line in text.splitlines() if line.startswith("| Dist")}
    balanced = cells[("| Dist.1", "oversample")]
    assert balanced[4] == "" and "[" in balanced[3]
    # one seed: a mean without an interval
    single = cells[("| Dist.2", "oversample")]
    assert single[3] == "71.8" and single[4] == "50.0"


def test_markdown_of_a_folder_without_results_says_so(tmp_path):
    assert plot_results.markdown_report(tmp_path / "missing") == (
        f"no summary.csv with rows in {tmp_path / 'missing'}")


def test_most_imbalanced_prefers_larger_ratios_then_table_order():
    confusions = pd.DataFrame({
        "distribution": ["Dist.1", "Dist.2", "Dist.8", "Dist.3"],
        "imbalance_ratio": [1.0, 1.5, 2.3, 2.3]})
    assert plot_results.most_imbalanced("paper", confusions) == [
        "Dist.3", "Dist.8"]
    balanced_only = confusions[confusions["distribution"] == "Dist.1"]
    assert plot_results.most_imbalanced("paper", balanced_only) == ["Dist.1"]


def test_markdown_tables_come_from_the_summary(image_folder, tiny_suites,
                                               tmp_path, capsys):
    results = tmp_path / "results"
    assert run_cli(*tiny_args(image_folder, results, "--remedy", "none",
                              "oversample", "--seeds", 0, 1)) == 0
    capsys.readouterr()
    assert plot_results.main(["--results", str(results), "--markdown"]) == 0
    text = capsys.readouterr().out
    summary = pd.read_csv(results / "summary.csv")
    balanced = summary[(summary["distribution"] == "balanced")
                       & (summary["remedy"] == "none")].iloc[0]
    assert "**tiny**, baseline, 2 epochs" in text
    assert f"| balanced | 1x | 2 | {100 * balanced['accuracy_mean']:.1f}" in text
    assert "**tiny, remedies**" in text and "| one-rare | oversample | 2 |" in text


def test_each_training_order_has_its_own_tables_and_figures(
        image_folder, tiny_suites, tmp_path, capsys):
    results = tmp_path / "results"
    for order in ("shuffled", "by-class"):
        assert run_cli(*tiny_args(image_folder, results, "--order", order,
                                  "--seeds", 0, 1)) == 0
    summary = pd.read_csv(results / "summary.csv")
    capsys.readouterr()
    for order in ("shuffled", "by-class"):
        text = plot_results.markdown_report(results, order=order)
        row = summary[(summary["distribution"] == "one-rare")
                      & (summary["remedy"] == "none")
                      & (summary["order"] == order)].iloc[0]
        line = next(line for line in text.splitlines()
                    if line.startswith("| one-rare |"))
        assert f"| {100 * row['accuracy_mean']:.1f} (" in line
        assert (f"{100 * row['vs_balanced_diff']:+.1f} "
                f"[{100 * row['vs_balanced_ci_low']:+.1f}") in line
    status, printed = run_main(results, tmp_path / "figures", "--order",
                               "by-class")
    assert status == 0
    assert "runs with another order than by-class are left out" in printed
    written = {p.name for p in (tmp_path / "figures").glob("*_by-class.png")}
    assert {"accuracy_tiny_baseline_by-class.png",
            "remedies_tiny_baseline_by-class.png"} <= written
    assert not (tmp_path / "figures" / "accuracy_tiny_baseline.png").exists()


def test_accuracy_table_counts_diverged_runs_where_there_are_any(tmp_path):
    specs = [("paper", "Dist.1", 0), ("paper", "Dist.1", 1),
             ("paper", "Dist.2", 0), ("paper", "Dist.2", 1, "default",
                                      "diverged")]
    rows = [result_rows(*spec) for spec in specs]
    runs = pd.DataFrame([run for run, _ in rows]).assign(
        lr=0.001, batch_size=100, top_class_share=0.1, roc_auc=0.9,
        imbalance_ratio=lambda r: np.where(r["distribution"] == "Dist.1",
                                           1.0, 1.5))
    for metric in ("macro_f1", "minority_recall", "rarest_recall"):
        runs[metric] = runs["accuracy"]
    per_class = pd.DataFrame([c for _, classes in rows for c in classes])
    per_class.to_csv(tmp_path / "per_class.csv", index=False)
    metrics.summarise(runs).to_csv(tmp_path / "summary.csv", index=False)
    text = plot_results.markdown_report(tmp_path)
    assert "| collapsed | diverged |" in text
    line = next(line for line in text.splitlines()
                if line.startswith("| Dist.2 |"))
    assert line.startswith("| Dist.2 | 1.5x | 1 |")
    assert line.endswith("| 0/1 | 1/2 |")
    # without a diverged run the table keeps its usual columns
    ok = runs[runs["status"] == "ok"]
    metrics.summarise(ok).to_csv(tmp_path / "summary.csv", index=False)
    assert "diverged" not in plot_results.markdown_report(tmp_path)


def test_summaries_from_before_the_order_setting_count_as_shuffled(
        image_folder, tiny_suites, tmp_path, capsys):
    results = tmp_path / "results"
    assert run_cli(*tiny_args(image_folder, results)) == 0
    for name in ("summary.csv", "per_class.csv"):
        table = pd.read_csv(results / name)
        table.drop(columns="order").to_csv(results / name, index=False)
    assert "| one-rare |" in plot_results.markdown_report(results)
    assert "| one-rare |" not in plot_results.markdown_report(
        results, order="by-class")


# The README's results against the committed tables.

def test_every_result_row_of_the_readme_is_printed_from_the_committed_csvs():
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    results = readme[readme.index("\n## Results"):readme.index("\n## Speed")]
    # the rows of generated tables: those that start with a distribution
    names = {name for suite in distributions.SUITES.values()
             for name in suite}
    rows = [line for line in results.splitlines()
            if line.split("|")[1:2] and line.split("|")[1].strip() in names]
    assert len(rows) > 50
    printed = "\n".join(
        plot_results.markdown_report(root / folder, dtype, order)
        for folder, dtype, order in (
            ("results", "bf16", "shuffled"), ("results", "fp32", "shuffled"),
            ("results", "bf16", "by-class"),
            ("results/equal-steps", "bf16", "shuffled")))
    missing = [row for row in rows if row not in printed.splitlines()]
    assert not missing, "\n".join(missing)
