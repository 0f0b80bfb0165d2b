"""Batch validation: bad counts are refused with a message that says what is wrong."""

from __future__ import annotations

import pytest

from canary_deploy.analysis import Batch, RoleBatch, TaskCounts


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RoleBatch(-1, 0), "requests must not be negative, got -1"),
        (lambda: RoleBatch(10, -2), "errors must not be negative, got -2"),
        (lambda: RoleBatch(10, 11), r"errors \(11\) cannot exceed requests \(10\)"),
        (
            lambda: RoleBatch(10, 0, slower_than=(3, 12)),
            r"slower_than\[1\] \(12\) cannot exceed requests \(10\)",
        ),
        (lambda: RoleBatch(10, 0, slower_than=(-1,)), r"slower_than\[0\] must not be negative"),
        (lambda: RoleBatch(10, 1.5), "errors must be an integer count"),  # type: ignore[arg-type]
        (lambda: TaskCounts(5, 6), r"task: errors \(6\) cannot exceed requests \(5\)"),
        (lambda: Batch.of((100, 1), (10, 11)), r"canary: errors \(11\) cannot exceed"),
        (lambda: Batch.of((100, 1, (5,)), (10, 1, (1, 0))), "same thresholds"),
    ],
)
def test_invalid_counts_raise_value_error_naming_the_problem(make, message):  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        make()


def test_batch_keeps_the_counts_it_was_given():
    b = Batch.of((19_000, 190, (950, 190)), (1_000, 12, (60, 15)))
    assert (b.stable.requests, b.stable.errors, b.stable.slower_than) == (19_000, 190, (950, 190))
    assert (b.canary.requests, b.canary.errors, b.canary.slower_than) == (1_000, 12, (60, 15))
