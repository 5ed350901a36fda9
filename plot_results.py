"""Figures of the class distributions and of the results, for the README.

    python plot_results.py                                # results/ -> assets/
    python plot_results.py --results /tmp/r1 --out /tmp/figures

Reads the tables of distributions.py, the result tables ``runs.csv`` and
``per_class.csv`` that main.py writes, and the confusion matrices in the
result files under ``runs/``, and writes PNG files whose names are the same
on every run:

    table_<suite>_percent.png   each class's share of each distribution
    table_<suite>_counts.png    the training images per class
    accuracy_<suite>_<model>[_<init>].png
                                per-class and overall accuracy, mean and
                                standard deviation over seeds
    overall_<suite>.png         overall accuracy per distribution, one series
                                per model and initialisation
    accuracy_vs_count.png       per-class accuracy against that class's
                                training images, every run a point
    paper_vs_small.png          per-class accuracy with the full-size and the
                                one-tenth training sets side by side
    remedies_<suite>_<model>[_<init>].png
                                overall accuracy and minority-class recall of
                                each remedy, mean and 95% interval over seeds
    remedy_gains_<suite>_<model>[_<init>].png
                                each remedy's accuracy gain over no remedy,
                                paired by seed, at equal epochs and, from
                                the equal-steps control, at equal steps
    confusion_<suite>_<model>[_<init>].png
                                confusion matrices of the two most imbalanced
                                distributions, without a remedy, oversampled
                                and thresholded, summed over seeds

Only finished runs (status ok) enter the means; diverged runs are counted in
a printed note. Where runs of one suite, model and initialisation differ in
epochs, only the longest are plotted, so a mean never mixes short runs with
full ones. Figures show the runs without a remedy unless ``--remedy`` names
one; their file names then end in ``_<remedy>``. The remedies and confusion
figures compare every remedy whatever ``--remedy`` says, each after the same
number of epochs: the number most remedies were run with. Runs of one
training dtype and order are shown (``--dtype``, ``--order``), of the most
common learning rate, batch size and data seed; figures of float32 runs end
in ``_fp32``, those of class-ordered runs in ``_by-class`` and say so above
the figure.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display is needed, and none may exist

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import colors, ticker  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

import distributions  # noqa: E402
import main as runner  # noqa: E402
import metrics  # noqa: E402

# the columns that identify a run, in both result tables
RUN_KEYS = ["suite", "distribution", "model", "init", "remedy", "dtype",
            "order", "seed", "data_seed", "epochs"]
# values for columns that tables written by older versions lack
COLUMN_DEFAULTS = {"init": "default", "remedy": "none", "dtype": "fp32",
                   "order": "shuffled"}
TEXT_COLUMNS = ["suite", "distribution", "model", "init", "remedy",
                "dtype", "order", "status", "class"]

WIDTH = 10          # inches; at DPI about 1,200 px, shown at ~900 in a README
DPI = 120
ANNOTATION_SIZE = 8
CLASS_COLOURS = plt.get_cmap("tab10").colors
SERIES_COLOURS = plt.get_cmap("Dark2").colors
SUITE_MARKERS = ["o", "s", "^", "D", "v", "P"]
# one colour and marker per remedy, in main.REMEDIES order; no remedy in grey
REMEDY_COLOURS = dict(zip(runner.REMEDIES, ("0.3", *SERIES_COLOURS)))
REMEDY_MARKERS = dict(zip(runner.REMEDIES, SUITE_MARKERS))
# the confusion figure's columns and how many distributions it shows
CONFUSION_REMEDIES = ("none", "oversample", "threshold")
CONFUSION_DISTRIBUTIONS = 2


# Loading.

def _read_csv(path):
    """A result table; empty where the file is missing or has no rows."""
    try:
        return pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame()


def load_results(results_dir):
    """The run table and the per-class table of a results folder.

    Tables written before a column existed get its default (``init``
    "default", ``remedy`` "none"). Each per-class row also carries its run's
    status. A missing folder or file gives two empty tables and a printed
    line.
    """
    results_dir = Path(results_dir)
    paths = [results_dir / "runs.csv", results_dir / "per_class.csv"]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"no results: {' and '.join(missing)} not found; "
              f"wrote the table figures only")
        return _empty_tables()
    runs, per_class = (_read_csv(p) for p in paths)
    if runs.empty or per_class.empty:
        print(f"no results: the tables in {results_dir} have no rows; "
              f"wrote the table figures only")
        return _empty_tables()

    runs, per_class = _with_defaults(runs), _with_defaults(per_class)

    # a per-class row of a run missing from runs.csv counts as finished
    # when it holds an accuracy
    status = runs[RUN_KEYS + ["status"]].drop_duplicates(RUN_KEYS)
    per_class = per_class.merge(status, on=RUN_KEYS, how="left")
    per_class["status"] = per_class["status"].fillna(
        per_class["accuracy"].notna().map({True: "ok", False: "diverged"}))
    return runs, per_class


def _with_defaults(table):
    """The table with the default of every column it lacks, and its text
    columns as strings."""
    table = table.copy()
    for column, value in COLUMN_DEFAULTS.items():
        table[column] = (table[column].fillna(value)
                         if column in table else value)
    for column in TEXT_COLUMNS:
        if column in table:
            table[column] = table[column].astype(str)
    return table


def _of_settings(table, **settings):
    """The rows of ``table`` trained with these settings (dtype, order)."""
    for column, value in settings.items():
        table = table[table[column] == value]
    return table


def _empty_tables():
    runs = pd.DataFrame(columns=RUN_KEYS + ["accuracy", "status"])
    per_class = pd.DataFrame(columns=RUN_KEYS + [
        "class_index", "class", "train_count", "accuracy", "status"])
    return runs, per_class


def report_unfinished(runs):
    """Print how many runs did not finish; they are left out of the means."""
    bad = runs[runs["status"] != "ok"]
    if bad.empty:
        return
    labels = [f"{r.suite}/{r.distribution} {_series_label(r.model, r.init)} "
              f"seed {r.seed}" for r in bad.itertuples()]
    more = f" and {len(labels) - 5} more" if len(labels) > 5 else ""
    print(f"note: {len(bad)} of {len(runs)} runs did not finish "
          f"({', '.join(sorted(set(bad['status'])))}) and are left out of "
          f"the accuracy means: {', '.join(labels[:5])}{more}")


def select_runs(runs, per_class, remedy="none"):
    """The finished runs made with ``remedy``, the longest of each suite,
    model and initialisation; prints a note on the runs left out."""
    report_unfinished(runs)
    runs = runs[(runs["status"] == "ok") & (runs["remedy"] == remedy)]
    per_class = per_class[(per_class["status"] == "ok")
                          & (per_class["remedy"] == remedy)]
    if runs.empty:
        return runs, per_class
    return longest_runs(runs, per_class)


def longest_runs(runs, per_class):
    """Keep, for each suite, model, initialisation and remedy, only the runs
    with the most epochs."""
    group = ["suite", "model", "init", "remedy"]
    most = runs.groupby(group)["epochs"].transform("max")
    dropped = runs[runs["epochs"] != most]
    if not dropped.empty:
        print(f"note: left out {len(dropped)} runs with fewer epochs than "
              f"others of their suite and model (epochs "
              f"{', '.join(map(str, sorted(set(dropped['epochs']))))})")
    kept = runs[runs["epochs"] == most]
    per_class = per_class.merge(
        kept[group + ["epochs"]].drop_duplicates(), on=group + ["epochs"])
    return kept, per_class


def comparable_runs(table):
    """Keep, for each suite, model and initialisation, the rows of one number
    of epochs, so remedies are compared after the same training: the number
    most remedies were run with, the larger on a tie."""
    kept = []
    for _, group in table.groupby(["suite", "model", "init"]):
        remedies = group.groupby("epochs")["remedy"].nunique()
        epochs = max(remedies.index, key=lambda e: (remedies[e], e))
        kept.append(group[group["epochs"] == epochs])
    return pd.concat(kept) if kept else table


def load_confusions(results_dir):
    """One row per finished run and remedy whose result file holds a
    confusion matrix: the run's key columns, its imbalance ratio and the
    matrix (rows: true class, columns: predicted class).

    The threshold remedy's matrix is read from the file of the run it was
    derived from. Files written before confusion matrices were recorded are
    left out.
    """
    rows = []
    for path in sorted(Path(results_dir).glob("runs/*/*/*.json")):
        result = json.loads(path.read_text())
        for part in (result, result.get("threshold")):
            if (part is None or "confusion" not in part
                    or part["run"].get("status") != "ok"):
                continue
            run = {**COLUMN_DEFAULTS, **part["run"],
                   "dtype": runner._dtype(part["run"])}
            counts = [row["train_count"] for row in part["per_class"]]
            rows.append(dict(
                {key: run.get(key) for key in RUN_KEYS},
                imbalance_ratio=distributions.imbalance_ratio(counts),
                confusion=np.asarray(part["confusion"], dtype=float)))
    table = pd.DataFrame(rows, columns=RUN_KEYS + ["imbalance_ratio",
                                                   "confusion"])
    for column in TEXT_COLUMNS:
        if column in table:
            table[column] = table[column].astype(str)
    return table


# Names and orders.

def _suite_order(names):
    """Suites in the order of distributions.SUITES, unknown ones last."""
    known = [s for s in distributions.SUITES if s in set(names)]
    return known + sorted(set(names) - set(known))


def _dist_order(suite, names):
    """Distributions in table order; names no longer in the table last."""
    table = list(distributions.SUITES.get(suite, {}))
    known = [d for d in table if d in set(names)]
    extra = sorted(set(names) - set(table), key=distributions.natural_key)
    return known + extra


def _class_order(names=()):
    """CIFAR-10's class order, then any other class names found."""
    known = list(distributions.CLASSES)
    return known + sorted(set(names) - set(known))


def _series(table):
    """The (model, init) pairs present, the default initialisation first."""
    return sorted({tuple(p) for p in table[["model", "init"]].values},
                  key=_series_key)


def _series_key(pair):
    model, init = pair
    return model, init != "default", init


def _series_label(model, init):
    return model if init == "default" else f"{model} ({init} init)"


def _suffix(init, remedy, order="shuffled", dtype="bf16"):
    """The end of a figure's file name: every setting that is not the
    default, so figures of other settings never overwrite each other."""
    return ("" if init == "default" else f"_{init}") + (
        "" if remedy == "none" else f"_{remedy}") + (
        "" if dtype == "bf16" else f"_{dtype}") + (
        "" if order == "shuffled" else f"_{order}")


def _order_note(order):
    """A line for figures of runs not trained in shuffled order."""
    return ("" if order == "shuffled" else
            f"training order: {order} (one fixed order, never shuffled)")


def _balanced(suite):
    """Distributions of a suite whose classes all have the same count."""
    return [d for d, counts in distributions.SUITES.get(suite, {}).items()
            if len(set(counts)) == 1]


def _ratio_label(suite, dist):
    counts = distributions.SUITES.get(suite, {}).get(dist)
    if counts is None:
        return dist
    return f"{dist}\n{distributions.imbalance_ratio(counts):.3g}x"


def _seed_words(counts):
    low, high = int(min(counts)), int(max(counts))
    n = str(low) if low == high else f"{low}-{high}"
    return f"{n} seed" + ("" if high == 1 else "s")


# Statistics.

def accuracy_cells(runs, per_class, dists, classes):
    """Mean, standard deviation and number of runs of the accuracy in
    percent: distributions by row, classes and then "overall" by column."""
    tables = []
    for stat in ("mean", "std", "count"):
        by_class = per_class.groupby(["distribution", "class"])["accuracy"]
        cells = by_class.agg(stat).unstack().reindex(
            index=dists, columns=classes)
        cells["overall"] = runs.groupby("distribution")["accuracy"].agg(
            stat).reindex(dists)
        tables.append(cells if stat == "count" else 100 * cells)
    return tables


def overall_stats(runs, dists):
    """Overall accuracy in percent per distribution: mean, std, runs."""
    stats = runs.groupby("distribution")["accuracy"].agg(
        ["mean", "std", "count"]).reindex(dists)
    stats[["mean", "std"]] *= 100
    return stats


def remedy_stats(runs, metric):
    """``metric`` in percent per remedy and distribution: mean, 95%
    t-interval over seeds (NaN with one seed) and number of seeds."""
    rows = []
    for (remedy, dist), group in runs.groupby(["remedy", "distribution"]):
        mean, _, low, high = metrics.interval(100 * group[metric])
        rows.append(dict(remedy=remedy, distribution=dist, mean=mean,
                         low=low, high=high, seeds=group["seed"].nunique()))
    columns = ["remedy", "distribution", "mean", "low", "high", "seeds"]
    return pd.DataFrame(rows, columns=columns).set_index(
        ["remedy", "distribution"])


def confusion_percent(matrices):
    """The sum of confusion matrices, each row in percent of its true
    class's test images, so the diagonal holds each class's recall."""
    total = np.sum(list(matrices), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100 * total / total.sum(axis=1, keepdims=True)


def most_imbalanced(suite, confusions, count=CONFUSION_DISTRIBUTIONS):
    """The ``count`` distributions with the largest imbalance ratio, the
    table's order breaking ties; balanced ones only where no other has
    results."""
    ratios = confusions.groupby("distribution")["imbalance_ratio"].max()
    order = _dist_order(suite, list(ratios.index))
    if (ratios > 1).any():
        order = [d for d in order if ratios[d] > 1]
    return sorted(order, key=lambda d: -ratios[d])[:count]


# Drawing.

def _heatmap(ax, values, texts, rows, columns, cmap, norm,
             size=ANNOTATION_SIZE):
    """Draw a table of values as coloured cells, each with its text in black
    or white, whichever reads better on the cell's colour."""
    cmap = plt.get_cmap(cmap).with_extremes(bad="0.93")
    image = ax.imshow(values, cmap=cmap, norm=norm, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=35, ha="right",
                  rotation_mode="anchor", fontsize=9)
    ax.set_yticks(range(len(rows)), rows, fontsize=9)
    ax.tick_params(length=0)

    # thin white lines between the cells
    ax.set_xticks(np.arange(len(columns) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(rows) + 1) - 0.5, minor=True)
    ax.tick_params(which="minor", length=0)
    ax.grid(which="minor", color="white", linewidth=1.5)
    for spine in ax.spines.values():
        spine.set_visible(False)

    for i in range(len(rows)):
        for j in range(len(columns)):
            value = values[i, j]
            text = texts[i][j] if np.isfinite(value) else "no runs"
            red, green, blue, _ = (cmap(norm(value)) if np.isfinite(value)
                                   else (1, 1, 1, 1))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            ax.text(j, i, text, ha="center", va="center",
                    fontsize=size if np.isfinite(value) else 7,
                    color="white" if dark else "black")
    return image


def _accuracy_texts(mean, std, count):
    """"71.2\\n±0.8" per cell; the mean alone where a cell has one run."""
    return [[f"{m:.1f}" + (f"\n±{s:.1f}" if c > 1 else "")
             for m, s, c in zip(*row)]
            for row in zip(mean.values, std.values, count.values)]


def _accuracy_norm(*tables):
    values = np.concatenate([t.values.ravel() for t in tables])
    values = values[np.isfinite(values)]
    low, high = np.floor(values.min()), np.ceil(values.max())
    return colors.Normalize(low, max(high, low + 1))


def _save(fig, path, note=""):
    """Write a figure; a ``note`` goes in a line above it, which the saved
    image grows to hold."""
    if note:
        fig.text(0.01, 1.0, note, fontsize=9, ha="left", va="bottom",
                 color="0.3")
    fig.savefig(path, dpi=DPI, bbox_inches="tight" if note else None)
    plt.close(fig)
    print(f"wrote {path}")


def _skip(name, reason):
    print(f"skip {name}: {reason}")


# The figures.

def plot_table(suite, rows, kind):
    """One suite's distributions as a heatmap: each class's share of the
    row's total (``kind`` "percent") or its image count ("counts")."""
    names = list(rows)
    counts = np.array([rows[d] for d in names], dtype=float)
    totals = counts.sum(axis=1)
    num_classes = counts.shape[1]
    ratios = [distributions.imbalance_ratio(rows[d]) for d in names]
    labels = [f"{d}  ({int(t):,}, {r:.3g}x)"
              for d, t, r in zip(names, totals, ratios)]

    if kind == "percent":
        # centred on the balanced share: blue above it, red below
        values = 100 * counts / totals[:, None]
        texts = [[f"{v:.1f}" for v in row] for row in values]
        centre = 100 / num_classes
        half = max(np.abs(values - centre).max(), 1.0)
        norm = colors.Normalize(centre - half, centre + half)
        cmap, what = "RdBu", "share of the distribution's images (%)"
    else:
        values = counts
        texts = [[f"{int(v):,}" for v in row] for row in values]
        low, high = max(values.min(), 1), values.max()
        # a log scale where counts span a factor of ten or more
        norm = (colors.LogNorm(low, high) if high / low >= 10
                else colors.Normalize(0, high))
        cmap, what = "Blues", "training images"

    height = 1.9 + 0.42 * len(names)
    fig, ax = plt.subplots(figsize=(WIDTH, height), layout="constrained")
    image = _heatmap(ax, values, texts, labels,
                     _class_order()[:num_classes], cmap, norm)
    fig.colorbar(image, ax=ax, shrink=0.9, pad=0.02).set_label(what)
    ax.set_title(f"{suite} suite: {what} per class "
                 f"(rows: distribution, total images, largest/smallest class)",
                 fontsize=10)
    return fig


def plot_accuracy(suite, model, init, runs, per_class):
    """Per-class and overall accuracy of one suite, model and
    initialisation: mean ± std over seeds."""
    dists = _dist_order(suite, runs["distribution"].unique())
    classes = _class_order(per_class["class"].unique())
    mean, std, count = accuracy_cells(runs, per_class, dists, classes)
    texts = _accuracy_texts(mean, std, count)

    height = 2.0 + 0.5 * len(dists)
    fig, ax = plt.subplots(figsize=(WIDTH, height), layout="constrained")
    image = _heatmap(ax, mean.values, texts, dists, list(mean.columns),
                     "viridis", _accuracy_norm(mean))
    ax.axvline(len(classes) - 0.5, color="white", linewidth=5)
    fig.colorbar(image, ax=ax, shrink=0.9, pad=0.02).set_label(
        "test accuracy (%)")
    epochs = ", ".join(map(str, sorted(set(runs["epochs"]))))
    seeds = count["overall"].dropna()
    spread = ("one seed, so no spread" if seeds.max() == 1
              else f"mean ± std over {_seed_words(seeds)}")
    ax.set_title(
        f"{suite} suite, {_series_label(model, init)}: per-class accuracy on "
        f"the balanced test set (%)\n{spread}, {epochs} epochs",
        fontsize=10)
    return fig


def plot_overall(suite, runs, reference=None):
    """Overall accuracy per distribution, one series per (model, init),
    the balanced distribution's mean drawn as a dashed line.

    ``reference`` maps (model, init) to a balanced mean from another suite,
    drawn instead where this suite has no balanced distribution.
    """
    # every distribution of the table, so the axis stays put as runs finish
    dists = _dist_order(suite, list(distributions.SUITES.get(suite, {}))
                        + list(runs["distribution"].unique()))
    balanced = [d for d in _balanced(suite) if d in dists]
    series = _series(runs)
    x = np.arange(len(dists))
    offset = min(0.15, 0.6 / len(series))

    fig, ax = plt.subplots(figsize=(WIDTH, 5), layout="constrained")
    for i in (dists.index(d) for d in balanced):
        ax.axvspan(i - 0.5, i + 0.5, color="0.93", zorder=0)
    line_note = None
    for k, (model, init) in enumerate(series):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        chosen = runs[(runs["model"] == model) & (runs["init"] == init)]
        stats = overall_stats(chosen, dists)
        shift = (k - (len(series) - 1) / 2) * offset
        ax.errorbar(x + shift, stats["mean"], yerr=stats["std"].fillna(0),
                    fmt="o", color=colour, capsize=3, markersize=5,
                    label=f"{_series_label(model, init)}, "
                          f"{_seed_words(stats['count'].dropna())}")

        if balanced:
            level = stats.loc[balanced[0], "mean"]
            note = f"mean on the balanced {balanced[0]}"
        else:
            level = (reference or {}).get((model, init), np.nan)
            note = f"mean on {_reference_words()}"
        if np.isfinite(level):
            ax.axhline(level, color=colour, linestyle="--", linewidth=1,
                       alpha=0.8)
            line_note = note

    handles, _ = ax.get_legend_handles_labels()
    if line_note:
        handles.append(Line2D([], [], color="0.3", linestyle="--",
                              linewidth=1, label=line_note))
    ax.legend(handles=handles, fontsize=8, loc="best")
    ax.set_xticks(x, [_ratio_label(suite, d) for d in dists], fontsize=9)
    for label, dist in zip(ax.get_xticklabels(), dists):
        if dist in balanced:
            label.set_fontweight("bold")
    ax.set_xlim(-0.5, len(dists) - 0.5)
    ax.set_ylabel("overall test accuracy (%)")
    ax.set_xlabel("distribution (largest/smallest class)", fontsize=9)
    ax.grid(axis="y", color="0.85", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.set_title(f"{suite} suite: overall accuracy per distribution, "
                 f"mean ± std over seeds", fontsize=10)
    return fig


def _reference_words():
    dist = _balanced("paper")[0]
    total = sum(distributions.SUITES["paper"][dist])
    return f"paper's balanced {dist} ({total:,} images)"


def plot_remedies(suite, model, init, runs):
    """Overall accuracy (top) and minority-class recall (bottom) per
    distribution, one series per remedy with its 95% interval over seeds;
    the balanced distribution's accuracy without a remedy dashed."""
    # the distributions a remedy was trained on; every distribution where
    # only the runs without one and their thresholded copies exist
    trained = runs[~runs["remedy"].isin(["none", "threshold"])]
    dists = _dist_order(suite, (trained if len(trained) else runs)[
        "distribution"].unique())
    shown = runs[runs["distribution"].isin(dists)]
    remedies = [r for r in runner.REMEDIES if r in set(shown["remedy"])]
    remedies += sorted(set(shown["remedy"]) - set(remedies))

    fig, axes = plt.subplots(2, 1, figsize=(WIDTH, 7.5), sharex=True,
                             layout="constrained")
    panels = (("accuracy", "overall test accuracy (%)"),
              ("minority_recall", "minority-class recall (%)\n"
                                  "(classes below the average count)"))
    for ax, (metric, label) in zip(axes, panels):
        _remedy_panel(ax, remedy_stats(shown, metric), remedies, dists)
        ax.set_ylabel(label, fontsize=9)

    handles, _ = axes[0].get_legend_handles_labels()
    balanced = _balanced_accuracy(suite, runs)
    if balanced is not None:
        dist, level = balanced
        axes[0].axhline(level, color="0.3", linestyle="--", linewidth=1)
        low, high = axes[0].get_ylim()
        axes[0].set_ylim(min(low, level - 1), max(high, level + 1))
        name = dist if "balanced" in dist else f"{dist} (balanced)"
        handles.append(Line2D([], [], color="0.3", linestyle="--",
                              linewidth=1, label=f"{name}, no remedy"))
    # a balanced row has no minority classes, so its slot stays empty
    for i in (dists.index(d) for d in _balanced(suite) if d in dists):
        axes[1].text(i, 0.5, "balanced:\nno minority\nclasses",
                     transform=axes[1].get_xaxis_transform(), ha="center",
                     va="center", fontsize=8, color="0.45")
    fig.legend(handles=handles, loc="outside lower center",
               ncol=len(handles), fontsize=8, frameon=False)
    axes[1].set_xticks(range(len(dists)),
                       [_ratio_label(suite, d) for d in dists], fontsize=9)
    axes[1].set_xlim(-0.5, len(dists) - 0.5)
    axes[1].set_xlabel("distribution (largest/smallest class)", fontsize=9)

    seeds = shown.groupby(["remedy", "distribution"])["seed"].nunique()
    spread = ("one seed, so no interval" if seeds.max() == 1
              else f"mean and 95% interval over {_seed_words(seeds)}")
    fig.suptitle(f"{suite} suite, {_series_label(model, init)}: remedies "
                 f"for class imbalance, {spread}, "
                 f"{_epoch_words(runs['epochs'])}", fontsize=10)
    return fig


def _remedy_panel(ax, stats, remedies, dists):
    """One point per remedy and distribution, side by side, with its
    interval from ``remedy_stats``."""
    x = np.arange(len(dists))
    offset = min(0.13, 0.75 / len(remedies))
    for k, remedy in enumerate(remedies):
        shift = (k - (len(remedies) - 1) / 2) * offset
        _remedy_points(ax, x + shift, stats.loc[remedy].reindex(dists),
                       remedy, capsize=2.5)
    ax.set_ylim(_percent_limits(stats))
    ax.grid(axis="y", color="0.85", linewidth=0.8)
    ax.set_axisbelow(True)


def _remedy_points(ax, x, chosen, remedy, capsize, filled=True):
    """A remedy's means (``chosen``: mean, low, high) at ``x`` with their
    intervals, in the remedy's colour and marker; open markers where not
    ``filled``."""
    # no bar where one seed gives no interval
    spread = np.nan_to_num(np.vstack([chosen["mean"] - chosen["low"],
                                      chosen["high"] - chosen["mean"]]))
    colour = REMEDY_COLOURS.get(remedy, "black")
    ax.errorbar(x, chosen["mean"], yerr=spread, label=remedy,
                marker=REMEDY_MARKERS.get(remedy, "o"), color=colour,
                markerfacecolor=colour if filled else "white",
                linestyle="", capsize=capsize, markersize=5)


def _percent_limits(stats):
    """Y limits that show every mean and interval, within 0-100%; the
    intervals of two seeds are wide, and are cut at the limits."""
    values = stats[["mean", "low", "high"]].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return 0, 100
    low, high = max(values.min(), 0), min(values.max(), 100)
    pad = max(0.05 * (high - low), 1)
    # a little past 0 and 100, so markers there are drawn whole
    return max(low - pad, -2), min(high + pad, 102)


def _epoch_words(epochs):
    values = sorted(set(int(e) for e in epochs))
    return (", ".join(map(str, values))
            + (" epoch" if values == [1] else " epochs"))


def _balanced_accuracy(suite, runs):
    """(name, mean accuracy in percent) of the suite's balanced
    distribution without a remedy, or None where it has no runs."""
    for dist in _balanced(suite):
        chosen = runs[(runs["distribution"] == dist)
                      & (runs["remedy"] == "none")]
        if len(chosen):
            return dist, 100 * chosen["accuracy"].mean()
    return None


def remedy_gains(epochs_summary, steps_summary):
    """Each remedy's paired accuracy gain over no remedy, in points, per
    distribution: ``epochs`` rows after as many epochs as no remedy (the
    most common epochs of the remedy rows), ``steps`` rows from the
    equal-steps folder, against no remedy trained for as many steps; of
    several, the longest."""
    columns = ["remedy", "distribution", "basis", "mean", "low", "high"]
    rows = []
    remedies = epochs_summary[epochs_summary["remedy"] != "none"]
    if len(remedies):
        common = remedies["epochs"].mode().iloc[0]
        for _, row in remedies[remedies["epochs"] == common].iterrows():
            rows.append(_gain(row, "vs_none", "epochs"))
    # in the equal-steps folder a remedy is paired with no remedy trained
    # for as many steps: over other epochs where its epoch is longer or
    # shorter, over the same epochs where it is as long (weighted loss,
    # thresholding)
    for _, row in steps_summary.sort_values("epochs").iterrows():
        name = ("vs_none" if row["remedy"] in runner.SAME_LENGTH_REMEDIES
                else "vs_none_steps")
        rows.append(_gain(row, name, "steps"))
    gains = pd.DataFrame([r for r in rows if r], columns=columns)
    # one row per remedy, distribution and basis: the longest training
    return gains.drop_duplicates(["remedy", "distribution", "basis"],
                                 keep="last").set_index(
        ["remedy", "distribution", "basis"])


def _gain(row, name, basis):
    """The paired difference ``name`` of a summary row in points, or None
    where the row has none (no reference runs, or no such column in an
    older summary)."""
    if pd.isna(row.get(f"{name}_diff", np.nan)):
        return None
    return dict(remedy=row["remedy"], distribution=row["distribution"],
                basis=basis, mean=100 * row[f"{name}_diff"],
                low=100 * row[f"{name}_ci_low"],
                high=100 * row[f"{name}_ci_high"])


def plot_remedy_gains(suite, model, init, gains):
    """The gain of each remedy over no remedy with its 95% interval, per
    distribution: filled markers at equal epochs, open markers at equal
    steps, side by side."""
    # as in the remedies figure: the distributions a remedy was trained
    # on, where there are any
    remedy = gains.index.get_level_values("remedy")
    found = gains.index.get_level_values("distribution")
    trained = found[remedy != "threshold"].unique()
    dists = _dist_order(suite, trained if len(trained) else found.unique())
    gains = gains[found.isin(dists)]
    present = set(gains.index.get_level_values("remedy"))
    remedies = [r for r in runner.REMEDIES if r in present]
    remedies += sorted(present - set(remedies))
    fig, ax = plt.subplots(figsize=(WIDTH, 4.8), layout="constrained")
    x = np.arange(len(dists))
    offset = min(0.085, 0.8 / (2 * len(remedies)))
    for k, remedy in enumerate(remedies):
        for b, basis in enumerate(("epochs", "steps")):
            if (remedy, basis) not in {(r, s) for r, _, s in gains.index}:
                continue
            chosen = gains.xs((remedy, basis), level=("remedy", "basis"))
            shift = ((2 * k + b) - (2 * len(remedies) - 1) / 2) * offset
            _remedy_points(ax, x + shift, chosen.reindex(dists), remedy,
                           capsize=2, filled=basis == "epochs")
    ax.axhline(0, color="0.3", linewidth=1)
    ax.grid(axis="y", color="0.85", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.set_xticks(x, [_ratio_label(suite, d) for d in dists], fontsize=9)
    ax.set_xlim(-0.5, len(dists) - 0.5)
    ax.set_xlabel("distribution (largest/smallest class)", fontsize=9)
    ax.set_ylabel("accuracy gain over no remedy\n(points, paired by seed)",
                  fontsize=9)
    handles = [Line2D([], [], color=REMEDY_COLOURS.get(r, "black"),
                      marker=REMEDY_MARKERS.get(r, "o"), linestyle="",
                      label=r) for r in remedies]
    handles += [Line2D([], [], color="0.3", marker="o", linestyle="",
                       label="equal epochs"),
                Line2D([], [], color="0.3", marker="o", linestyle="",
                       markerfacecolor="white",
                       label="equal steps (no remedy trained as long)")]
    fig.legend(handles=handles, loc="outside lower center",
               ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(f"{suite} suite, {_series_label(model, init)}: what each "
                 f"remedy gains over no remedy, mean and 95% interval of the "
                 f"per-seed difference", fontsize=10)
    return fig


def plot_confusion(suite, model, init, confusions):
    """Confusion matrices in percent of each true class, summed over seeds:
    the most imbalanced distributions by row, remedies by column."""
    dists = most_imbalanced(suite, confusions)
    confusions = confusions[confusions["distribution"].isin(dists)]
    remedies = [r for r in CONFUSION_REMEDIES
                if r in set(confusions["remedy"])]
    classes = list(distributions.CLASSES)
    norm = colors.PowerNorm(0.5, 0, 100)  # widens the scale of small errors

    fig, axes = plt.subplots(
        len(dists), len(remedies), squeeze=False, layout="constrained",
        figsize=(WIDTH, 1.3 + 3.0 * len(dists)))
    for row, dist in enumerate(dists):
        ratio = confusions.loc[confusions["distribution"] == dist,
                               "imbalance_ratio"].max()
        for col, remedy in enumerate(remedies):
            ax = axes[row][col]
            chosen = confusions[(confusions["distribution"] == dist)
                                & (confusions["remedy"] == remedy)]
            ax.set_title(f"{dist} ({ratio:.3g}x), {remedy}", fontsize=9)
            if chosen.empty:
                ax.text(0.5, 0.5, "no runs", ha="center", va="center",
                        transform=ax.transAxes, fontsize=9, color="0.4")
                ax.set_axis_off()
                continue
            values = confusion_percent(chosen["confusion"])
            texts = [[f"{v:.0f}" if v >= 1 else "" for v in line]
                     for line in values]
            image = _heatmap(ax, values, texts, classes[:len(values)],
                             classes[:len(values)], "Blues", norm, size=6)
            ax.set_aspect("equal")
            ax.tick_params(labelsize=7, labelleft=col == 0,
                           labelbottom=row == len(dists) - 1)
        axes[row][0].set_ylabel("true class", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("predicted class", fontsize=8)

    fig.colorbar(image, ax=axes, shrink=0.8, pad=0.01,
                 ticks=[0, 1, 5, 10, 25, 50, 75, 100]).set_label(
        "% of the true class's test images")
    seeds = confusions.groupby(["distribution", "remedy"])["seed"].nunique()
    fig.suptitle(f"{suite} suite, {_series_label(model, init)}: confusion "
                 f"matrices of the most imbalanced distributions, summed "
                 f"over {_seed_words(seeds)}, "
                 f"{_epoch_words(confusions['epochs'])}\n"
                 f"each row in % of its true class's test images, so the "
                 f"diagonal is recall; cells under 1% left blank",
                 fontsize=10)
    return fig


def plot_accuracy_vs_count(per_class):
    """Per-class accuracy against the class's training images, every run a
    point; one panel per model, colour by class, marker by suite."""
    models = sorted(per_class["model"].unique())
    suites = _suite_order(per_class["suite"].unique())
    classes = _class_order(per_class["class"].unique())
    markers = {s: SUITE_MARKERS[i % len(SUITE_MARKERS)]
               for i, s in enumerate(suites)}

    table_counts = [c for rows in distributions.SUITES.values()
                    for counts in rows.values() for c in counts if c > 0]
    low, high = min(table_counts), max(table_counts)

    fig, axes = plt.subplots(1, len(models), figsize=(WIDTH, 5),
                             sharey=True, squeeze=False,
                             layout="constrained")
    for ax, model in zip(axes[0], models):
        chosen = per_class[per_class["model"] == model]
        for suite in suites:
            for c, name in enumerate(classes):
                points = chosen[(chosen["suite"] == suite)
                                & (chosen["class"] == name)]
                ax.scatter(points["train_count"], 100 * points["accuracy"],
                           s=16, marker=markers[suite], alpha=0.7,
                           color=CLASS_COLOURS[c % len(CLASS_COLOURS)],
                           linewidths=0)
        runs = chosen[RUN_KEYS].drop_duplicates()
        ax.set_title(f"{model} ({len(runs)} runs)", fontsize=10)
        # the range of every table, so the axes stay put as runs finish
        ax.set_xscale("log")
        ax.set_xlim(0.8 * min(low, per_class["train_count"].min()),
                    1.25 * max(high, per_class["train_count"].max()))
        ax.xaxis.set_major_locator(ticker.FixedLocator(
            [20, 50, 100, 200, 500, 1000, 2000, 5000]))
        ax.xaxis.set_major_formatter(ticker.StrMethodFormatter("{x:,.0f}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("training images of the class (log scale)")
        ax.grid(color="0.88", linewidth=0.8)
        ax.set_axisbelow(True)
    axes[0][0].set_ylabel("per-class test accuracy (%)")

    class_handles = [Line2D([], [], marker="o", linestyle="", markersize=6,
                            color=CLASS_COLOURS[c % len(CLASS_COLOURS)],
                            label=name) for c, name in enumerate(classes)]
    suite_handles = [Line2D([], [], marker=markers[s], linestyle="",
                            markersize=6, color="0.35", label=s)
                     for s in suites]
    fig.legend(handles=class_handles + suite_handles, loc="outside right",
               fontsize=8, title="class / suite", title_fontsize=8)
    fig.suptitle("Per-class accuracy against the class's training images "
                 "(every run, default initialisation)", fontsize=10)
    return fig


def plot_paper_vs_small(runs, per_class, series):
    """Per-class mean accuracy of the full-size (paper) and one-tenth
    (small) suites side by side, one row of panels per (model, init), each
    row on one colour scale."""
    suites = ("paper", "small")
    dists = _dist_order("paper", pd.concat(
        [runs.loc[runs["suite"] == s, "distribution"] for s in suites]))
    classes = _class_order(per_class["class"].unique())

    fig, axes = plt.subplots(len(series), 2, squeeze=False,
                             figsize=(WIDTH + 1, 0.6 + 5.2 * len(series)),
                             layout="constrained")
    for row, (model, init) in enumerate(series):
        cells = {}
        for suite in suites:
            keep = ((runs["suite"] == suite) & (runs["model"] == model)
                    & (runs["init"] == init))
            keep_class = ((per_class["suite"] == suite)
                          & (per_class["model"] == model)
                          & (per_class["init"] == init))
            cells[suite] = accuracy_cells(runs[keep], per_class[keep_class],
                                          dists, classes)
        norm = _accuracy_norm(*(cells[s][0] for s in suites))
        for ax, suite in zip(axes[row], suites):
            mean, _, count = cells[suite]
            texts = [[f"{m:.1f}" for m in values] for values in mean.values]
            image = _heatmap(ax, mean.values, texts, dists,
                             list(mean.columns), "viridis", norm)
            ax.axvline(len(classes) - 0.5, color="white", linewidth=4)
            total = sum(next(iter(distributions.SUITES[suite].values())))
            ax.set_title(f"{suite}: {total:,} training images, "
                         f"{_series_label(model, init)}, "
                         f"{_seed_words(count['overall'].dropna())}",
                         fontsize=9)
        axes[row][1].tick_params(labelleft=False)
        fig.colorbar(image, ax=axes[row], shrink=0.9, pad=0.01).set_label(
            "mean test accuracy (%)")
    fig.suptitle("Full-size (paper) against one-tenth (small) training sets: "
                 "per-class accuracy, mean over seeds", fontsize=10)
    return fig


# The command.

def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--results", default="results",
                        help="folder holding runs.csv and per_class.csv")
    parser.add_argument("--out", default="assets",
                        help="folder the PNG files are written to")
    parser.add_argument("--remedy", default="none",
                        help="plot the runs made with this remedy")
    parser.add_argument("--markdown", action="store_true",
                        help="print the README's result tables from the "
                             "summary and per-class tables, then stop")
    parser.add_argument("--equal-steps", default=None,
                        help="folder of the equal-steps control, whose "
                             "summary.csv gives the remedy gains at equal "
                             "steps (default: <results>/equal-steps)")
    parser.add_argument("--dtype", default="bf16",
                        help="plot the runs trained with this dtype "
                             "(bf16 or fp32)")
    parser.add_argument("--order", default="shuffled",
                        choices=runner.ORDERS,
                        help="plot the runs trained in this order; figures "
                             "of another order than shuffled end in "
                             "_<order>")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.markdown:
        print(markdown_report(args.results, args.dtype, args.order))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # the tables need no results
    for suite, rows in distributions.SUITES.items():
        for kind in ("percent", "counts"):
            _save(plot_table(suite, rows, kind),
                  out / f"table_{suite}_{kind}.png")

    runs, per_class = load_results(args.results)
    if runs.empty:
        return 0
    settings = {"dtype": args.dtype, "order": args.order}
    runs, per_class = keep_settings(runs, per_class, **settings)
    runs, per_class = keep_common_recipe(runs, per_class)
    chosen, chosen_class = select_runs(runs, per_class, args.remedy)
    if chosen.empty or chosen_class.empty:
        print(f"no finished runs with remedy {args.remedy} in "
              f"{args.results}: no accuracy figures")
    else:
        write_accuracy_figures(chosen, chosen_class, args.remedy, out,
                               **settings)
    write_remedy_figures(runs, args.results, out, **settings)
    steps_dir = (Path(args.equal_steps) if args.equal_steps
                 else Path(args.results) / "equal-steps")
    write_gain_figures(args.results, steps_dir, out, **settings)
    return 0


def keep_settings(runs, per_class, **settings):
    """Only the runs trained with these settings (dtype, order), so that a
    mean never mixes them; a printed note counts the others."""
    for column, value in settings.items():
        other = runs[column] != value
        if other.any():
            print(f"note: {int(other.sum())} runs with another {column} "
                  f"than {value} are left out (see --{column})")
        runs = runs[~other]
    return runs, _of_settings(per_class, **settings)


def keep_common_recipe(runs, per_class):
    """Only the runs of each model's most common learning rate, batch size
    and data seed, so that a mean never mixes recipes; a printed note counts
    the others, which a results folder of their own can plot."""
    for column in ("lr", "batch_size", "data_seed"):
        if column not in runs:
            continue
        values = runs[column].astype(str)  # NaN compares equal as "nan"
        common = values.groupby(runs["model"]).agg(
            lambda v: v.value_counts().index[0])
        other = values != runs["model"].map(common)
        if other.any():
            print(f"note: {int(other.sum())} runs with another {column} than "
                  f"their model's most common are left out; plot them from a "
                  f"folder of their own")
        runs = runs[~other]
    kept = runs[RUN_KEYS].drop_duplicates()
    return runs, per_class.merge(kept, on=RUN_KEYS)


def write_accuracy_figures(runs, per_class, remedy, out, order="shuffled",
                           dtype="bf16"):
    """The accuracy, overall, accuracy-vs-count and paper-vs-small figures
    of the runs made with ``remedy``, trained in ``order`` with ``dtype``."""
    note = _order_note(order)
    suffix = _suffix("default", remedy, order, dtype)
    suites = _suite_order(
        list(distributions.SUITES) + list(runs["suite"].unique()))

    # one accuracy table per suite, model and initialisation
    for model, init in _series(runs):
        for suite in suites:
            name = (f"accuracy_{suite}_{model}"
                    f"{_suffix(init, remedy, order, dtype)}")
            pick = ((runs["suite"] == suite) & (runs["model"] == model)
                    & (runs["init"] == init))
            pick_class = ((per_class["suite"] == suite)
                          & (per_class["model"] == model)
                          & (per_class["init"] == init))
            if not pick.any():
                _skip(name, f"no results for {_run_words(suite, model, init)}")
                continue
            _save(plot_accuracy(suite, model, init, runs[pick],
                                per_class[pick_class]), out / f"{name}.png",
                  note)

    # overall accuracy; suites without a balanced row borrow paper's
    reference = {}
    paper = runs[runs["suite"] == "paper"]
    for model, init in _series(paper):
        chosen = paper[(paper["model"] == model) & (paper["init"] == init)]
        level = overall_stats(chosen, _balanced("paper"))["mean"]
        if level.notna().any():
            reference[(model, init)] = level.dropna().iloc[0]
    for suite in suites:
        name = f"overall_{suite}{suffix}"
        chosen = runs[runs["suite"] == suite]
        if chosen.empty:
            _skip(name, f"no results for suite {suite}")
            continue
        _save(plot_overall(suite, chosen, reference), out / f"{name}.png",
              note)

    name = f"accuracy_vs_count{suffix}"
    chosen = per_class[per_class["init"] == "default"]
    if chosen.empty:
        _skip(name, "no results with the default initialisation")
    else:
        _save(plot_accuracy_vs_count(chosen), out / f"{name}.png", note)

    name = f"paper_vs_small{suffix}"
    both = sorted(set(_series(runs[runs["suite"] == "paper"]))
                  & set(_series(runs[runs["suite"] == "small"])),
                  key=_series_key)
    if not both:
        _skip(name, "no model with results in both suites paper and small")
    else:
        _save(plot_paper_vs_small(runs, per_class, both),
              out / f"{name}.png", note)


def write_remedy_figures(runs, results_dir, out, dtype="bf16",
                         order="shuffled"):
    """The remedies and confusion figures of every suite, model and
    initialisation, from the finished runs of every remedy trained with
    ``dtype`` in ``order``."""
    note = _order_note(order)
    finished = runs[runs["status"] == "ok"]
    runs = comparable_runs(finished)
    if len(runs) < len(finished):
        print(f"note: the remedy figures leave out {len(finished) - len(runs)}"
              f" runs with other epochs than most remedies of their suite "
              f"and model")
    if "minority_recall" not in runs:
        # tables written before the metric was recorded
        runs = runs.assign(minority_recall=np.nan)
    confusions = load_confusions(results_dir)
    confusions = comparable_runs(
        confusions[(confusions["dtype"] == dtype)
                   & (confusions["order"] == order)])
    suites = _suite_order(
        list(distributions.SUITES) + list(runs["suite"].unique()))

    for model, init in _series(runs):
        for suite in suites:
            words = _run_words(suite, model, init)
            name = (f"remedies_{suite}_{model}"
                    f"{_suffix(init, 'none', order, dtype)}")
            chosen = runs[(runs["suite"] == suite) & (runs["model"] == model)
                          & (runs["init"] == init)]
            found = sorted(set(chosen["remedy"]))
            if len(found) < 2:
                _skip(name, f"only remedy {found[0]} has results for {words}"
                            if found else f"no results for {words}")
            else:
                _save(plot_remedies(suite, model, init, chosen),
                      out / f"{name}.png", note)

            name = (f"confusion_{suite}_{model}"
                    f"{_suffix(init, 'none', order, dtype)}")
            chosen = confusions[(confusions["suite"] == suite)
                                & (confusions["model"] == model)
                                & (confusions["init"] == init)]
            if chosen.empty:
                _skip(name, f"no result file under {results_dir}/runs holds "
                            f"a confusion matrix for {words}")
            else:
                _save(plot_confusion(suite, model, init, chosen),
                      out / f"{name}.png", note)


def write_gain_figures(results_dir, steps_dir, out, dtype="bf16",
                       order="shuffled"):
    """The remedy-gains figure of every suite, model and initialisation
    that has remedy runs in ``results_dir`` and an equal-steps control in
    ``steps_dir``."""
    epochs_summary, steps_summary = (
        _of_settings(_with_defaults(_read_csv(Path(folder) / "summary.csv")),
                     dtype=dtype, order=order)
        for folder in (results_dir, steps_dir))
    if epochs_summary.empty or steps_summary.empty:
        _skip("remedy_gains", f"no summary.csv with rows in "
                              f"{results_dir if epochs_summary.empty else steps_dir}")
        return
    note = _order_note(order)
    for (suite, model, init), group in epochs_summary.groupby(
            ["suite", "model", "init"], sort=False):
        name = (f"remedy_gains_{suite}_{model}"
                f"{_suffix(init, 'none', order, dtype)}")
        control = steps_summary[(steps_summary["suite"] == suite)
                                & (steps_summary["model"] == model)
                                & (steps_summary["init"] == init)]
        if set(group["remedy"]) <= {"none", "threshold"}:
            continue  # no remedy was trained
        if control.empty:
            _skip(name, f"no equal-steps control for "
                        f"{_run_words(suite, model, init)} in {steps_dir}")
            continue
        gains = remedy_gains(group, control)
        _save(plot_remedy_gains(suite, model, init, gains),
              out / f"{name}.png", note)


def _run_words(suite, model, init):
    init_words = "" if init == "default" else f", init {init}"
    return f"suite {suite}, model {model}{init_words}"



# The README's tables, printed from the result tables so that every number
# there can be regenerated.

def markdown_report(results_dir, dtype="bf16", order="shuffled"):
    """Markdown tables of every suite, initialisation and remedy found in
    ``summary.csv``, for one training dtype and order."""
    results_dir = Path(results_dir)
    summary = _read_csv(results_dir / "summary.csv")
    if summary.empty:
        return f"no summary.csv with rows in {results_dir}"
    settings = {"dtype": dtype, "order": order}
    summary = _of_settings(_with_defaults(summary), **settings)
    per_class = _of_settings(
        _with_defaults(_read_csv(results_dir / "per_class.csv")), **settings)
    sections = []
    rank = {s: i for i, s in enumerate(_suite_order(summary["suite"]))}
    groups = summary.groupby(["suite", "model", "init"], sort=False)
    for (suite, model, init), group in sorted(
            groups, key=lambda item: (rank[item[0][0]],
                                      _series_key(item[0][1:]))):
        plain = group[group["remedy"] == "none"]
        if not plain.empty:
            sections.append(_accuracy_section(suite, model, init, plain,
                                              per_class))
            sections.append(_class_section(suite, model, init, plain,
                                           per_class))
        if len(set(group["remedy"]) - {"none"}):
            sections.append(_remedy_section(suite, model, init, group))
    return "\n\n".join(s for s in sections if s)


def _class_section(suite, model, init, summary, per_class):
    """Per-class recall, mean and standard deviation over seeds, with each
    class's training count; only for suites with a 10x imbalance or more."""
    runs = per_class[(per_class["suite"] == suite)
                     & (per_class["model"] == model)
                     & (per_class["init"] == init)
                     & (per_class["remedy"] == "none")]
    # each distribution with the epochs of its own summary rows
    runs = runs.merge(summary[["distribution", "epochs"]].drop_duplicates(),
                      on=["distribution", "epochs"])
    ratios = runs.groupby("distribution")["train_count"].agg(
        lambda counts: distributions.imbalance_ratio(list(counts)))
    if runs.empty or ratios.max() < 10:
        return ""
    classes = _class_order(runs["class"].unique())
    lines = [f"**{suite}**, {_series_label(model, init)}: per-class recall %"
             f" (mean and sd over seeds; training images in brackets)",
             "",
             "| distribution | " + " | ".join(classes) + " |",
             "|---|" + "---|" * len(classes)]
    per_row = _epochs_per_row(runs)
    for dist in _dist_order(suite, runs["distribution"].unique()):
        of_dist = runs[runs["distribution"] == dist]
        for epochs, group in of_dist.groupby("epochs"):
            chosen = group.groupby("class")
            mean, std = chosen["accuracy"].mean(), chosen["accuracy"].std()
            count = chosen["train_count"].first()
            cells = [f"{_percent(mean[c], 0)}{_spread(std[c], 0)} "
                     f"[{count[c]}]" for c in classes]
            name = f"{dist}, {int(epochs)} epochs" if per_row else dist
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _percent(value, digits=1):
    return "" if pd.isna(value) else f"{100 * value:.{digits}f}"


def _spread(std, digits=1):
    return "" if pd.isna(std) else f" ({100 * std:.{digits}f})"


def _with_interval(row, metric):
    """``mean [low, high]`` in percent; the mean alone where one seed gives no
    interval; blank where the metric does not apply (a balanced row's
    minority recall)."""
    mean = row.get(f"{metric}_mean")
    if pd.isna(mean):
        return ""
    low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    if pd.isna(low):
        return _percent(mean)
    return f"{_percent(mean)} [{_percent(low)}, {_percent(high)}]"


def _interval(row, name):
    """``diff [low, high]`` in points, or blank."""
    diff = row.get(f"{name}_diff")
    if pd.isna(diff):
        return ""
    if pd.isna(row.get(f"{name}_ci_low")):
        return f"{100 * diff:+.1f}"
    return (f"{100 * diff:+.1f} [{100 * row[f'{name}_ci_low']:+.1f}, "
            f"{100 * row[f'{name}_ci_high']:+.1f}]")


def _epochs_label(summary):
    epochs = sorted(set(summary["epochs"].astype(int)))
    if len(epochs) == 1:
        return f"{epochs[0]} epochs"
    where = "per row" if _epochs_per_row(summary) else "per distribution"
    return f"{epochs[0]} to {epochs[-1]} epochs ({where})"


def _epochs_per_row(table):
    """Whether one distribution was trained for several numbers of epochs
    (an equal-steps control), so that a table needs an epochs column."""
    return bool((table.groupby(["suite", "distribution"])["epochs"]
                 .nunique() > 1).any())


def _accuracy_section(suite, model, init, summary, per_class):
    """The accuracy table of one suite and series; a "diverged" column is
    added where any run of it diverged (seeds counts the finished runs)."""
    diverged = "diverged" in summary and summary["diverged"].gt(0).any()
    per_row = _epochs_per_row(summary)
    lines = [f"**{suite}**, {_series_label(model, init)}, "
             f"{_epochs_label(summary)}",
             "",
             "| distribution | ratio |" + (" epochs |" if per_row else "")
             + " seeds | accuracy % (sd) | vs balanced,"
             " points [95% CI] | minority recall % | rarest class recall % |"
             " weakest class (recall %) | collapsed |"
             + (" diverged |" if diverged else ""),
             "|---|---|---|---|---|---|---|---|---|"
             + ("---|" if per_row else "") + ("---|" if diverged else "")]
    for row in _in_table_order(suite, summary, lambda r: r["epochs"]):
        runs = per_class[(per_class["suite"] == suite)
                         & (per_class["distribution"] == row["distribution"])
                         & (per_class["model"] == model)
                         & (per_class["init"] == init)
                         & (per_class["remedy"] == "none")
                         & (per_class["epochs"] == row["epochs"])]
        # diverged runs have no per-class accuracy
        recall = runs.groupby("class")["accuracy"].mean().dropna()
        weakest = (f"{recall.idxmin()} ({_percent(recall.min())})"
                   if len(recall) else "")
        counts = list(runs.groupby("class")["train_count"].first())
        ratio = (f"{distributions.imbalance_ratio(counts):.3g}x" if counts
                 else "")
        runs_made = int(row["seeds"]) + int(row.get("diverged", 0))
        lines.append(
            f"| {row['distribution']} | {ratio} | "
            + (f"{int(row['epochs'])} | " if per_row else "")
            + f"{int(row['seeds'])} | "
            f"{_percent(row['accuracy_mean'])}"
            f"{_spread(row['accuracy_std'])} | "
            f"{_interval(row, 'vs_balanced')} | "
            f"{_percent(row['minority_recall_mean'])} | "
            f"{_percent(row['rarest_recall_mean'])} | {weakest} | "
            f"{int(row['collapsed'])}/{int(row['seeds'])} |"
            + (f" {int(row['diverged'])}/{runs_made} |" if diverged else ""))
    return "\n".join(lines)


def _remedy_section(suite, model, init, summary):
    # as in the figure: the distributions a remedy was trained on, if any
    trained = summary[~summary["remedy"].isin(["none", "threshold"])]
    if len(trained):
        summary = summary[summary["distribution"].isin(
            trained["distribution"].unique())]
    # where the suite has a balanced row: how far each remedy leaves a
    # distribution from it
    balanced = ("vs_balanced_diff" in summary
                and summary["vs_balanced_diff"].notna().any())
    # remedies of one distribution trained for different numbers of epochs
    # (an equal-steps control) get a column of their own
    per_row = _epochs_per_row(summary)
    # remedies compared with no remedy trained for as many steps
    steps = ("vs_none_steps_diff" in summary
             and summary["vs_none_steps_diff"].notna().any())
    lines = [f"**{suite}, remedies**, {_series_label(model, init)}, "
             + _epochs_label(summary),
             "",
             "| distribution | remedy |" + (" epochs |" if per_row else "")
             + " seeds | accuracy % [95% CI] | minority recall % [95% CI] | "
             "macro-F1 % | vs none, points [95% CI] |"
             + (" vs none at equal steps, points [95% CI] |" if steps else "")
             + (" vs balanced, no remedy, points [95% CI] |"
                if balanced else ""),
             "|---|---|" + ("---|" if per_row else "") + "---|---|---|---|---|"
             + ("---|" if steps else "") + ("---|" if balanced else "")]
    order = {name: i for i, name in enumerate(runner.REMEDIES)}
    for row in _in_table_order(suite, summary, lambda r: (order.get(
            r["remedy"], len(order)), r["epochs"])):
        lines.append(
            f"| {row['distribution']} | {row['remedy']} | "
            + (f"{int(row['epochs'])} | " if per_row else "")
            + f"{int(row['seeds'])} | {_with_interval(row, 'accuracy')} | "
            f"{_with_interval(row, 'minority_recall')} | "
            f"{_percent(row['macro_f1_mean'])} | "
            f"{_interval(row, 'vs_none')} |"
            + (f" {_interval(row, 'vs_none_steps')} |" if steps else "")
            + (f" {_interval(row, 'vs_balanced')} |" if balanced else ""))
    return "\n".join(lines)


def _in_table_order(suite, summary, then=lambda row: 0):
    order = {d: i for i, d in enumerate(
        _dist_order(suite, summary["distribution"].unique()))}
    rows = [row for _, row in summary.iterrows()]
    return sorted(rows, key=lambda r: (order[r["distribution"]], then(r)))


if __name__ == "__main__":
    raise SystemExit(main())
