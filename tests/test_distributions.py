import pytest

import distributions as D
from distributions import SUITES, DistributionError

N = len(D.CLASSES)
PAPER = SUITES["paper"]


@pytest.mark.parametrize("suite,total", [("paper", 32500), ("small", 3250)])
def test_every_row_sums_to_the_suite_total(suite, total):
    assert len(SUITES[suite]) == 11
    for dist, counts in SUITES[suite].items():
        assert len(counts) == N, dist
        assert sum(counts) == total, dist


def test_paper_rows_match_their_generators():
    two_groups = lambda classes, count: D.fixed_and_rest(  # noqa: E731
        N, 32500, dict.fromkeys(classes, count))
    first_half, vehicles = range(5), (0, 1, 8, 9)
    assert PAPER["Dist.1"] == D.balanced(N, 3250)
    assert PAPER["Dist.2"] == two_groups(first_half, 2600)
    assert PAPER["Dist.3"] == two_groups(first_half, 1971)
    assert PAPER["Dist.4"] == D.one_class(N, 32500, 0, 4062)
    assert PAPER["Dist.5"] == D.one_class(N, 32500, 0, 5000)
    assert PAPER["Dist.6"] == D.one_class(N, 32500, 0, 2438)
    assert PAPER["Dist.7"] == D.one_class(N, 32500, 0, 1971)
    assert PAPER["Dist.8"] == D.linear(N, 1970, 4530)
    assert PAPER["Dist.9"] == D.exponential(N, 32500, 2.3)
    assert PAPER["Dist.10"] == two_groups(vehicles, 4063)
    assert PAPER["Dist.11"] == two_groups(vehicles, 4875)


def test_paper_rows_stay_within_the_replication_bounds():
    for dist, counts in PAPER.items():
        assert min(counts) >= 1970, dist
        assert D.imbalance_ratio(counts) <= 2.31, dist


def test_small_is_one_tenth_by_largest_remainder():
    for dist, counts in PAPER.items():
        assert SUITES["small"][dist] == D.scaled(counts, 3250), dist


def test_extreme_rows_follow_the_literature():
    extreme = SUITES["extreme"]
    minority = range(5, 10)
    assert extreme["step-10x"] == D.step(N, 5000, 500, minority)
    assert extreme["step-100x"] == D.step(N, 5000, 50, minority)
    assert extreme["longtail-10x"] == D.long_tail(N, 5000, 10)
    assert extreme["longtail-100x"] == D.long_tail(N, 5000, 100)
    assert extreme["longtail-100x"] == (
        5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50)
    for dist, counts in extreme.items():
        assert D.imbalance_ratio(counts) == (100 if "100x" in dist else 10)


def test_generators_work_for_any_number_of_classes():
    assert D.one_class(4, 100, 2, 40) == (20, 20, 40, 20)
    assert D.one_class(4, 101, 2, 40) == (21, 20, 40, 20)
    assert D.linear(3, 10, 30) == (10, 20, 30)
    assert sum(D.exponential(7, 1000, 5)) == 1000
    assert D.long_tail(3, 100, 100) == (100, 10, 1)
    assert D.largest_remainder([1, 1, 1], 10) == (4, 3, 3)


def test_an_empty_class_makes_the_imbalance_infinite():
    assert D.imbalance_ratio((500, 500, 0)) == float("inf")
    assert D.imbalance_ratio((500, 50)) == 10


def test_the_shipped_tables_validate():
    D.validate_all()


@pytest.mark.parametrize("counts,message", [
    ((10,) * 9, "the row has 9 counts but the dataset has 10 classes"),
    ((10, -1) + (10,) * 8, "class 1 (automobile): count -1 is negative"),
    ((10, 10, 2.5) + (10,) * 7, "class 2 (bird): count 2.5 is not a whole"),
    ((0,) * 10, "every count is zero"),
    ((10,) * 9 + (5001,), "class 9 (truck): asks for 5001 images but the "
                          "dataset holds 5000"),
])
def test_validation_names_suite_distribution_and_class(counts, message):
    with pytest.raises(DistributionError) as error:
        D.validate("mine", "Dist.X", counts, (5000,) * 10)
    assert "suite 'mine', distribution 'Dist.X'" in str(error.value)
    assert message in str(error.value)


def test_select_keeps_table_order_and_filters_by_name():
    picked = D.select(["paper", "extreme"], ["Dist.5", "step-10x"])
    assert [(s, d) for s, d, _ in picked] == [
        ("paper", "Dist.5"), ("extreme", "step-10x")]
    assert len(D.select(["all"])) == 26
    assert len(D.select(["paper", "all"])) == 26


def test_select_refuses_unknown_names():
    with pytest.raises(DistributionError, match="unknown distribution 'Dist.12'"):
        D.select(["paper"], ["Dist.12"])
    with pytest.raises(DistributionError, match="unknown suite 'papers'"):
        D.select(["papers"])
