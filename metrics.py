"""Metrics of one run, computed from its saved test-set logits, and
statistics across seeds.

Per-class and per-run metrics use scikit-learn's implementations. The
``threshold`` remedy is computed here too: it needs no training, only a
finished run's logits and its training counts.
"""

import math

import numpy as np

RUN_METRICS = ("accuracy", "macro_f1", "roc_auc", "minority_recall",
               "rarest_recall", "top_class_share")
# A run has collapsed when at least this share of the test images is
# predicted as one class (the balanced test set has 10% of each).
COLLAPSE_SHARE = 0.9
CLASS_METRICS = ("precision", "recall", "f1")


def softmax(logits):
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(1, keepdims=True))
    return shifted / shifted.sum(1, keepdims=True)


def threshold_scores(probabilities, train_counts):
    """Divide each class's softmax output by that class's share of the
    training set, then renormalise (Buda et al. 2018; post-hoc logit
    adjustment with tau = 1, Menon et al. 2021)."""
    counts = np.asarray(train_counts, dtype=np.float64)
    share = counts / counts.sum()
    # a class absent from the training set is never predicted
    adjusted = np.divide(probabilities, share, where=share > 0,
                         out=np.zeros_like(probabilities))
    return adjusted / adjusted.sum(1, keepdims=True)


def minority_classes(train_counts):
    """Classes with fewer training images than the row's average; none for a
    balanced row."""
    counts = np.asarray(train_counts, dtype=np.float64)
    return np.flatnonzero(counts < counts.mean())


def evaluate(probabilities, labels, train_counts):
    """Metrics of one set of predictions.

    Returns ``(run, per_class, confusion)``: a dict of run metrics, a dict of
    per-class arrays (precision, recall, f1, correct, test_count) and the
    confusion matrix (rows: true class, columns: predicted class).
    """
    # imported here: scikit-learn adds a second to every start otherwise
    from sklearn.metrics import (confusion_matrix, f1_score,
                                 precision_recall_fscore_support,
                                 roc_auc_score)

    labels = np.asarray(labels)
    num_classes = probabilities.shape[1]
    classes = np.arange(num_classes)
    predicted = probabilities.argmax(1)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0)
    confusion = confusion_matrix(labels, predicted, labels=classes)
    try:
        auc = roc_auc_score(labels, probabilities, multi_class="ovr",
                            average="macro", labels=classes)
    except ValueError:
        # a test set without every class has no one-vs-rest AUC for it
        auc = math.nan
    minority = minority_classes(train_counts)
    counts = np.asarray(train_counts)
    rarest = np.flatnonzero(counts == counts[counts > 0].min())
    run = {
        "accuracy": float((predicted == labels).mean()),
        "macro_f1": float(f1_score(labels, predicted, labels=classes,
                                   average="macro", zero_division=0)),
        "roc_auc": float(auc),
        "minority_recall": (float(recall[minority].mean()) if len(minority)
                            else math.nan),
        "rarest_recall": float(recall[rarest].mean()),
        "top_class_share": float(np.bincount(predicted).max() / len(labels)),
    }
    per_class = {"precision": precision, "recall": recall, "f1": f1,
                 "correct": np.diag(confusion), "test_count": support}
    return run, per_class, confusion


# Statistics across seeds.

def interval(values, confidence=0.95):
    """Mean, standard deviation and a t-interval for the mean; the interval
    is NaN with fewer than two values."""
    from scipy import stats

    values = np.asarray([v for v in values if not math.isnan(v)])
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = values.mean()
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    std = values.std(ddof=1)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


GROUP = ["suite", "distribution", "model", "init", "remedy", "dtype",
         "order", "epochs", "lr", "batch_size", "data_seed"]
# a run without a remedy counts as trained for as long as a remedy's run when
# their optimiser steps differ by at most this share
EQUAL_STEPS = 0.05


def summarise(runs):
    """One row per (suite, distribution, model, init, remedy, dtype, order,
    epochs, recipe and data seed): the number of seeds, how many runs
    collapsed onto one class or diverged, and for each run metric its mean,
    standard deviation and 95% interval. Two paired comparisons are added,
    each a per-seed difference with its interval: ``vs_balanced`` against
    the suite's balanced distribution without a remedy (same model, init,
    order and seed: does a remedy bring the row back to the balanced
    accuracy?), and ``vs_none`` against the same distribution without a
    remedy. For a trained remedy, ``vs_none_steps`` compares with the runs
    without a remedy trained for other epochs but the same number of steps
    (within ``EQUAL_STEPS``), where a results folder holds them: a remedy
    that changes the length of an epoch against no remedy trained as
    long."""
    import pandas as pd  # only the tables need it; training starts sooner

    ok = runs[runs["status"] == "ok"]
    rows = []
    for key, every in runs.groupby(GROUP, sort=False):
        group = every[every["status"] == "ok"]
        row = dict(zip(GROUP, key), seeds=group["seed"].nunique(),
                   collapsed=int((group["top_class_share"]
                                  >= COLLAPSE_SHARE).sum()),
                   diverged=int((every["status"] != "ok").sum()))
        for metric in RUN_METRICS:
            if metric not in group:
                continue
            mean, std, low, high = interval(group[metric])
            row.update({f"{metric}_mean": mean, f"{metric}_std": std,
                        f"{metric}_ci_low": low, f"{metric}_ci_high": high})
        balanced = _balanced_distribution(runs, key[0])
        if balanced is not None:
            _paired(row, "vs_balanced", group,
                    _same(ok, key, distribution=balanced, remedy="none"))
        if key[4] != "none":
            _paired(row, "vs_none", group, _same(ok, key, remedy="none"))
        if key[4] not in ("none", "threshold") and "steps" in group:
            _paired(row, "vs_none_steps", group,
                    _equal_steps(ok, key, group["steps"].median()))
        rows.append(row)
    return pd.DataFrame(rows)


def _same(ok, key, ignore=(), **change):
    """The runs of ``ok`` whose group is ``key`` with ``change`` made and the
    columns in ``ignore`` left free."""
    wanted = dict(zip(GROUP, key), **change)
    mask = np.ones(len(ok), dtype=bool)
    for column, value in wanted.items():
        if column not in ignore:
            mask &= (ok[column] == value).to_numpy()
    return ok[mask]


def _equal_steps(ok, key, steps):
    """The runs without a remedy of the same distribution and recipe, but of
    other epochs, whose median steps are within ``EQUAL_STEPS`` of ``steps``:
    of several such epochs, the closest in steps, then the one with more
    seeds, then the longer. Empty where there are none, where the runs of
    the same epochs are as long already (a remedy that keeps the epoch's
    length), or where the steps are not recorded (result files older than
    the ``steps`` column)."""
    others = _same(ok, key, ignore=("epochs",), remedy="none")
    same_epochs = others["epochs"] == key[GROUP.index("epochs")]
    if not steps > 0 or (same_epochs.any() and _gap(
            others.loc[same_epochs, "steps"].median(), steps) <= EQUAL_STEPS):
        # no steps recorded, or the runs of the same epochs are already
        # as long: ``vs_none`` is the equal-steps comparison
        return others.iloc[:0]
    others = others[~same_epochs]
    if others.empty:
        return others
    per_epochs = others.groupby("epochs").agg(
        steps=("steps", "median"), seeds=("seed", "nunique"))
    per_epochs["gap"] = _gap(per_epochs["steps"], steps)
    close = per_epochs[per_epochs["gap"] <= EQUAL_STEPS].reset_index()
    if close.empty:
        return others.iloc[:0]
    best = close.sort_values(["gap", "seeds", "epochs"],
                             ascending=[True, False, False]).iloc[0]
    return others[others["epochs"] == best["epochs"]]


def _gap(reference_steps, steps):
    """How far ``reference_steps`` lies from ``steps``, as a share of them."""
    return abs(reference_steps - steps) / steps


def _paired(row, name, group, reference):
    """Per-seed accuracy difference from the reference runs."""
    if reference.empty:
        return
    joined = group.merge(reference, on="seed", suffixes=("", "_ref"))
    differences = joined["accuracy"] - joined["accuracy_ref"]
    mean, std, low, high = interval(differences)
    row.update({f"{name}_diff": mean, f"{name}_ci_low": low,
                f"{name}_ci_high": high, f"{name}_pairs": len(differences)})


def _balanced_distribution(runs, suite):
    """The suite's balanced distribution (every class the same non-zero
    count, so an imbalance ratio of exactly 1), or None."""
    rows = runs[(runs["suite"] == suite) & (runs["imbalance_ratio"] == 1.0)]
    names = rows["distribution"].unique()
    return names[0] if len(names) else None
