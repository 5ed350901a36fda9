"""Class distributions of the training set, as tables a person edits by hand.

Every row is a tuple of per-class image counts in CIFAR-10 label order
(airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck).
Rows are grouped in suites; a suite is selected with ``--suite`` and a row
with ``--dist``.

The ``paper`` suite reconstructs the eleven distributions of Hensman & Masko
(2015), each 32,500 images (65% of the training set). The paper's numeric table
is not available, so each row follows the paper's description of it and stays
within the bounds that a later replication gave for its version (smallest class
1,971 images, largest ratio 2.3x). ``small`` is the same eleven at one tenth.
``extreme`` holds the 10x and 100x imbalances of the literature: step
imbalance (Buda et al. 2018) and the exponential CIFAR-10-LT profile (Cao et
al. 2019).

The tables store the counts themselves. The generator functions below build
rows for any number of classes; the tests check the tables against them where
the two agree by construction, so an edit that breaks a row's intent shows up.
"""

import math

CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

SUITES = {
    "paper": {
        "Dist.1": (3250, 3250, 3250, 3250, 3250, 3250, 3250, 3250, 3250, 3250),
        "Dist.2": (2600, 2600, 2600, 2600, 2600, 3900, 3900, 3900, 3900, 3900),
        "Dist.3": (1971, 1971, 1971, 1971, 1971, 4529, 4529, 4529, 4529, 4529),
        "Dist.4": (4062, 3160, 3160, 3160, 3160, 3160, 3160, 3160, 3159, 3159),
        "Dist.5": (5000, 3056, 3056, 3056, 3056, 3056, 3055, 3055, 3055, 3055),
        "Dist.6": (2438, 3341, 3341, 3340, 3340, 3340, 3340, 3340, 3340, 3340),
        "Dist.7": (1971, 3393, 3392, 3392, 3392, 3392, 3392, 3392, 3392, 3392),
        "Dist.8": (1970, 2254, 2539, 2823, 3108, 3392, 3677, 3961, 4246, 4530),
        "Dist.9": (2069, 2270, 2490, 2731, 2996, 3287, 3605, 3955, 4338, 4759),
        "Dist.10": (4063, 4063, 2708, 2708, 2708, 2708, 2708, 2708, 4063, 4063),
        "Dist.11": (4875, 4875, 2167, 2167, 2167, 2167, 2166, 2166, 4875, 4875),
    },
    "small": {
        "Dist.1": (325, 325, 325, 325, 325, 325, 325, 325, 325, 325),
        "Dist.2": (260, 260, 260, 260, 260, 390, 390, 390, 390, 390),
        "Dist.3": (197, 197, 197, 197, 197, 453, 453, 453, 453, 453),
        "Dist.4": (406, 316, 316, 316, 316, 316, 316, 316, 316, 316),
        "Dist.5": (500, 306, 306, 306, 306, 306, 305, 305, 305, 305),
        "Dist.6": (244, 334, 334, 334, 334, 334, 334, 334, 334, 334),
        "Dist.7": (197, 340, 340, 339, 339, 339, 339, 339, 339, 339),
        "Dist.8": (197, 225, 254, 282, 311, 339, 368, 396, 425, 453),
        "Dist.9": (207, 227, 249, 273, 300, 329, 360, 395, 434, 476),
        "Dist.10": (406, 406, 271, 271, 271, 271, 271, 271, 406, 406),
        "Dist.11": (487, 487, 217, 217, 217, 217, 217, 217, 487, 487),
    },
    "extreme": {
        "step-10x": (5000, 5000, 5000, 5000, 5000, 500, 500, 500, 500, 500),
        "step-100x": (5000, 5000, 5000, 5000, 5000, 50, 50, 50, 50, 50),
        "longtail-10x": (5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500),
        "longtail-100x": (5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50),
    },
}


class DistributionError(ValueError):
    """A table or a selection of distributions that cannot be used."""


# Generators: each returns a tuple of integer counts, one per class.

def balanced(num_classes, count):
    """Every class gets ``count`` images."""
    return (count,) * num_classes


def step(num_classes, majority, minority, minority_classes):
    """Two levels: the classes listed in ``minority_classes`` get
    ``minority`` images, all others ``majority`` (Buda et al. 2018)."""
    minority_classes = set(minority_classes)
    return tuple(minority if c in minority_classes else majority
                 for c in range(num_classes))


def fixed_and_rest(num_classes, total, fixed):
    """Give the classes in ``fixed`` (a dict class -> count) their counts and
    split what remains of ``total`` evenly over the other classes; classes
    earlier in label order take the leftover images one each."""
    rest = [c for c in range(num_classes) if c not in fixed]
    remaining = total - sum(fixed.values())
    base, extra = divmod(remaining, len(rest))
    counts = dict(fixed)
    for i, c in enumerate(rest):
        counts[c] = base + (1 if i < extra else 0)
    return tuple(counts[c] for c in range(num_classes))


def one_class(num_classes, total, cls, count):
    """One class with ``count`` images (more or fewer than the others); the
    rest of ``total`` is split evenly over the other classes."""
    return fixed_and_rest(num_classes, total, {cls: count})


def linear(num_classes, first, last):
    """Counts rising in equal steps from ``first`` to ``last``, rounded."""
    gap = (last - first) / (num_classes - 1)
    return tuple(int(round(first + i * gap)) for i in range(num_classes))


def largest_remainder(weights, total):
    """Integers proportional to ``weights`` that sum exactly to ``total``:
    floor each share, then hand the leftover units to the largest fractional
    parts (ties go to the earlier class)."""
    scale = total / sum(weights)
    shares = [w * scale for w in weights]
    counts = [math.floor(s) for s in shares]
    leftover = total - sum(counts)
    order = sorted(range(len(shares)), key=lambda i: (counts[i] - shares[i], i))
    for i in order[:leftover]:
        counts[i] += 1
    return tuple(counts)


def exponential(num_classes, total, ratio):
    """Counts growing geometrically so the last class has ``ratio`` times the
    first, rounded to sum exactly to ``total``."""
    weights = [ratio ** (i / (num_classes - 1)) for i in range(num_classes)]
    return largest_remainder(weights, total)


def long_tail(num_classes, largest, ratio):
    """The CIFAR-10-LT profile of Cao et al. (2019): class i gets
    ``int(largest * ratio ** (-i / (num_classes - 1)))`` images."""
    return tuple(int(largest * ratio ** (-i / (num_classes - 1)))
                 for i in range(num_classes))


def scaled(counts, total):
    """A row scaled to a new total, by largest remainder."""
    return largest_remainder(counts, total)


# Selection and validation.

def expand_suites(names, suites=None):
    """Suite names from the command line, with ``all`` meaning every suite."""
    suites = SUITES if suites is None else suites
    chosen = []
    for name in names:
        if name == "all":
            picked = list(suites)
        elif name in suites:
            picked = [name]
        else:
            raise DistributionError(
                f"unknown suite {name!r}; choose from "
                f"{', '.join(list(suites) + ['all'])}")
        chosen += [s for s in picked if s not in chosen]
    return chosen


def select(suite_names, dist_names=None, suites=None):
    """The (suite, distribution, counts) triples to run, in table order.

    ``dist_names`` keeps only distributions with those names; a name found in
    none of the chosen suites is an error.
    """
    suites = SUITES if suites is None else suites
    suite_names = expand_suites(suite_names, suites)
    picked = [(s, d, tuple(suites[s][d]))
              for s in suite_names for d in suites[s]]
    if dist_names:
        known = {d for _, d, _ in picked}
        unknown = [d for d in dist_names if d not in known]
        if unknown:
            raise DistributionError(
                f"unknown distribution {', '.join(map(repr, unknown))} in "
                f"suite {', '.join(suite_names)}; known: "
                f"{', '.join(sorted(known, key=natural_key))}")
        picked = [p for p in picked if p[1] in dist_names]
    return picked


def validate(suite, dist, counts, available, classes=CLASSES):
    """Refuse a row that cannot be drawn from the dataset.

    ``available`` is the number of training images of each class in the
    dataset. The error names the suite, the distribution and the class.
    """
    where = f"suite {suite!r}, distribution {dist!r}"
    if len(counts) != len(available):
        raise DistributionError(
            f"{where}: the row has {len(counts)} counts but the dataset has "
            f"{len(available)} classes ({', '.join(classes)})")
    for c, count in enumerate(counts):
        name = f"class {c} ({classes[c]})"
        if isinstance(count, bool) or not isinstance(count, int):
            raise DistributionError(
                f"{where}, {name}: count {count!r} is not a whole number")
        if count < 0:
            raise DistributionError(f"{where}, {name}: count {count} is negative")
        if count > available[c]:
            raise DistributionError(
                f"{where}, {name}: asks for {count} images but the dataset "
                f"holds {available[c]}")
    if sum(counts) == 0:
        raise DistributionError(f"{where}: every count is zero")


def validate_all(suites=None, available=None, classes=CLASSES):
    """Check every row of every suite; ``available`` defaults to CIFAR-10's
    5,000 training images per class."""
    suites = SUITES if suites is None else suites
    available = (5000,) * len(classes) if available is None else available
    for suite, rows in suites.items():
        for dist, counts in rows.items():
            validate(suite, dist, counts, available, classes)


def imbalance_ratio(counts):
    """Largest class count over smallest; infinite when a class is empty."""
    return max(counts) / min(counts) if min(counts) > 0 else math.inf


def natural_key(name):
    """Sort key that puts Dist.2 before Dist.10."""
    head, _, tail = name.rpartition(".")
    return (head, int(tail)) if tail.isdigit() else (name, 0)
