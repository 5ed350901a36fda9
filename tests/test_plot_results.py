"""The figures command on small result tables written by the tests."""

import contextlib
import io

import numpy as np
import pandas as pd
import pytest

import distributions
import plot_results

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
               remedy=remedy, seed=seed, data_seed=0, epochs=epochs)
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


def run_main(results, out):
    """Run the command at a low resolution, which is faster; returns its
    exit status and what it printed."""
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, \
            contextlib.redirect_stdout(printed):
        patch.setattr(plot_results, "DPI", 40)
        status = plot_results.main(
            ["--results", str(results), "--out", str(out)])
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
                            drop=("init", "remedy"))
    runs, per_class = plot_results.load_results(results)
    for table in (runs, per_class):
        assert set(table["init"]) == {"default"}
        assert set(table["remedy"]) == {"none"}
    assert set(per_class["status"]) == {"ok"}


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
