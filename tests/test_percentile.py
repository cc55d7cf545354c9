import math

from tests.percentile import percentile


def test_nearest_rank_of_one_to_a_hundred_is_the_rank_itself() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert [percentile(values, p) for p in (1, 50, 90, 99, 100)] == [1.0, 50.0, 90.0, 99.0, 100.0]


def test_small_samples_round_up_to_the_next_rank_and_empty_is_nan() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([3.0, 1.0, 2.0], 99) == 3.0
    assert percentile([5.0], 0) == 5.0
    assert math.isnan(percentile([], 50))
