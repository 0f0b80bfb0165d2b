import pytest

from canary_deploy.errors import UsageError
from canary_deploy.weights import Weights


def test_weights_must_sum_to_100_and_message_names_the_sum() -> None:
    with pytest.raises(UsageError, match=r"60 \+ 30 = 90"):
        Weights(60, 30)


@pytest.mark.parametrize("stable,canary", [("-5", "105"), ("101", "-1")])
def test_weights_out_of_range(stable: str, canary: str) -> None:
    with pytest.raises(UsageError, match="between 0 and 100"):
        Weights.parse(stable, canary)


def test_parse_rejects_non_integers() -> None:
    with pytest.raises(UsageError, match="stable weight must be an integer, got 'abc'"):
        Weights.parse("abc", "5")


def test_from_alb_converts_relative_weights_to_percent() -> None:
    assert Weights.from_alb(190, 10) == Weights(95, 5)
    assert Weights.from_alb(0, 999) == Weights(0, 100)
    assert Weights.from_alb(1, 2) == Weights(33, 67)
    assert Weights(75, 25).canary_share == 0.25


def test_from_alb_with_every_weight_0_is_no_split() -> None:
    assert Weights.from_alb(0, 0) is None
    assert Weights.from_alb(0, 0, 0) is None


def test_every_split_survives_its_dict_and_older_state_has_no_baseline() -> None:
    for stable in range(0, 101, 5):
        for canary in range(0, 101 - stable, 5):
            w = Weights(stable, canary, 100 - stable - canary)
            assert Weights.from_dict(w.to_dict()) == w
    assert Weights.from_dict({"stable": 90, "canary": 10}) == Weights(90, 10)
