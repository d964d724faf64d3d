"The statistics layer's verdict rules on canned data: every status is reachable, and the promises hold."
import numpy as np
import pytest

from kaiyuan_nb.core import ConfigError
from kaiyuan_nb.verdicts import (MIN_SEEDS, above_chance, check_claim, decide, paired_effect, paper_claim,
                                 seeds_needed, untested_claim, validate_claim)


def experiment(effect: float, seeds: int, items: int = 80, seed_sd: float = 0.01, item_sd: float = 0.05, rng=None):
    "Per-seed arrays of paired differences with a known true effect."
    rng = rng or np.random.default_rng(0)
    return [effect + rng.normal(0, seed_sd) + rng.normal(0, item_sd, items) for _ in range(seeds)]


def claim_for(diffs, direction="+", at_chance=False):
    return paper_claim("c", "an effect", "CDMA §4", "bpb", direction, paired_effect(diffs, n_boot=500), "test",
                       at_chance=at_chance)


def test_every_paper_status_is_reachable():
    assert claim_for(experiment(0.05, 5))["status"] == "reproduced"
    assert claim_for(experiment(0.05, 5), direction="-")["status"] == "contradicted"
    assert claim_for(experiment(-0.05, 5), direction="-")["status"] == "reproduced"
    assert claim_for(experiment(0.0, 5, item_sd=0.5))["status"] == "inconclusive"


def test_a_null_effect_with_two_seeds_is_never_reproduced():
    rng = np.random.default_rng(1)
    statuses = {claim_for(experiment(0.0, 2, rng=rng))["status"] for _ in range(50)}
    assert statuses == {"inconclusive"}
    # ... and neither is a large effect: fewer than MIN_SEEDS seeds decide nothing
    assert claim_for(experiment(1.0, MIN_SEEDS - 1))["status"] == "inconclusive"


def test_false_reproduction_rate_under_the_null_is_small():
    rng = np.random.default_rng(2)
    calls = [claim_for(experiment(0.0, 5, rng=rng))["status"] == "reproduced" for _ in range(200)]
    assert np.mean(calls) <= 0.06  # the 95% CI promises 2.5% on the paper's side; binomial slack for 200 trials


def test_a_metric_at_or_below_chance_never_decides():
    correct_below = [np.r_[np.ones(15), np.zeros(85)] for _ in range(5)]  # 15% on a 4-way task: below chance
    assert not above_chance(correct_below, 0.25)
    row = claim_for(experiment(0.2, 5), at_chance=not above_chance(correct_below, 0.25))
    assert row["status"] == "inconclusive" and "chance" in row["evidence"]


def test_ci_carries_seed_variance():
    "Large seed-to-seed noise must widen the CI even when the items within each seed are quiet."
    quiet = paired_effect(experiment(0.05, 5, seed_sd=0.0, item_sd=0.01), n_boot=500)
    noisy = paired_effect(experiment(0.05, 5, seed_sd=0.1, item_sd=0.01), n_boot=500)
    assert (noisy.ci[1] - noisy.ci[0]) > 5 * (quiet.ci[1] - quiet.ci[0])
    assert noisy.mde > quiet.mde


def test_mde_and_seeds_needed_agree():
    n = seeds_needed(0.02, seed_sd=0.02)
    assert n is not None and n >= MIN_SEEDS
    assert seeds_needed(0.04, seed_sd=0.02) < n


def test_checks_and_untested_claims():
    assert check_claim("k", "equal", "diff", 0.0, True, "== 0", "0")["status"] == "passed"
    assert check_claim("k", "equal", "diff", 1.0, False, "== 0", "1")["status"] == "failed"
    row = untested_claim("u", "big", "Kaiyuan-2B §5", "score", "+", "+1.64%", "needs a 1.5B model")
    assert row["status"] == "inconclusive" and row["estimate"] is None and row["kind"] == "paper"


def test_bad_input_names_the_problem():
    with pytest.raises(ConfigError, match="not finite"):
        paired_effect([[0.1, float("nan")]])
    with pytest.raises(ConfigError, match="direction"):
        decide((0.0, 1.0), "up", 5)
    row = claim_for(experiment(0.05, 5))
    with pytest.raises(ConfigError, match="'c'.status"):
        validate_claim({**row, "status": "reproduced-ish"})
    with pytest.raises(ConfigError, match="must state its MDE"):
        validate_claim({**row, "mde": None})
    with pytest.raises(ConfigError, match="a check claim is one of"):
        validate_claim({**row, "kind": "check"})
