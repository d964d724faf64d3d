"Chapter 04's signal analysis on canned numbers: monotone low-noise metrics pass, flat noisy ones fail, bad input is a ConfigError."
import math

import numpy as np
import pandas as pd
import pytest

from kaiyuan_nb.core import ConfigError
from kaiyuan_nb.eval_signal import (SIGNAL_FILE, SignalRule, annotate_claim, ladder_rows, signal_record, signal_selection,
                                    signal_stats, signal_table, spearman, write_signal)
from kaiyuan_nb.verdicts import untested_claim

STEPS = [10, 20, 30, 40]
RISING = [[0.10, 0.20, 0.30, 0.40], [0.11, 0.21, 0.29, 0.41], [0.09, 0.19, 0.31, 0.39]]
FLAT = [[0.50, 0.40, 0.60, 0.45], [0.30, 0.55, 0.35, 0.60], [0.60, 0.35, 0.50, 0.40]]


def _long(task, metric, grid, chance=0.25, n=100):
    return [{"seed": s, "step": st, "task": task, "metric": metric, "value": v, "chance": chance, "n": n}
            for s, row in enumerate(grid) for st, v in zip(STEPS, row)]


def test_monotone_low_noise_passes_and_flat_noisy_fails():
    s, f = signal_stats(RISING, STEPS), signal_stats(FLAT, STEPS)
    assert s["spearman"] == pytest.approx(1.0) and s["snr"] == pytest.approx(30.0)
    assert SignalRule().passes(s["snr"], s["spearman"]) and not SignalRule().passes(f["snr"], f["spearman"])
    table = signal_table(pd.DataFrame(_long("arc_easy", "margin", RISING) + _long("arc_easy", "acc", FLAT)))
    assert table.passes.tolist() == [True, False] and table.metric.tolist() == ["margin", "acc"]


def test_lower_is_better_is_oriented_and_degenerate_cases():
    falling = [[3.0, 2.5, 2.2, 2.0], [3.1, 2.6, 2.2, 2.1], [2.9, 2.4, 2.3, 2.0]]
    s = signal_stats(falling, STEPS, "bpb")
    assert s["spearman"] == pytest.approx(1.0) and s["signal"] > 0 and s["last"] == pytest.approx(np.mean([2.0, 2.1, 2.0]))
    assert spearman([1, 2, 3], [4, 4, 4]) == 0.0
    assert signal_stats([[0.5] * 3, [0.5] * 3], [1, 2, 3])["snr"] == 0.0
    assert signal_stats([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]], [1, 2, 3])["snr"] == 1000.0  # zero noise: capped


@pytest.mark.parametrize("call, message", [
    (lambda: signal_stats([[0.1, 0.2, 0.3]], [1, 2, 3]), "seeds >= 2"),
    (lambda: signal_stats([[0.1, 0.2], [0.1, 0.2]], [1, 2]), "checkpoints >= 3"),
    (lambda: signal_stats(RISING, [10, 30, 20, 40]), "increasing"),
    (lambda: signal_stats([[0.1, math.nan, 0.3], [0.1, 0.2, 0.3]], [1, 2, 3]), "finite"),
    (lambda: spearman([1, 2], [1, 2]), "length >= 3"),
    (lambda: SignalRule(min_snr=-1), "SignalRule.min_snr"),
    (lambda: SignalRule(min_spearman=2), "SignalRule.min_spearman"),
    (lambda: signal_table(pd.DataFrame(_long("t", "acc", RISING)).iloc[1:]), "every seed needs every checkpoint"),
    (lambda: signal_table(pd.DataFrame({"seed": [0]})), "columns"),
    (lambda: signal_table("not a frame"), "columns"),
    (lambda: ladder_rows({"seed": 0, "step": 1}), "per_item"),
])
def test_bad_input_is_a_config_error(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_ladder_rows_and_chance_distance():
    rec = {"seed": 1, "step": 7, "bpb": {"bpb/en": 3.0},
           "per_item": {"copa": {"item": [0, 1], "chance": 0.5, "acc": [1, 0], "acc_norm": [1, 1], "acc_bytes": [1, 1],
                                 "gold_logprob_per_byte": [-1.0, -3.0], "margin": [0.4, -0.2]},
                        "lambada_openai": {"item": [0, 1], "acc": [0.0, 1.0], "logprob": [-6.0, -2.0]}}}
    rows = pd.DataFrame(ladder_rows(rec)).set_index(["task", "metric"])
    assert rows.loc[("copa", "gold_logprob_per_byte"), "value"] == pytest.approx(-2.0)
    assert rows.loc[("lambada_openai", "logprob"), "value"] == pytest.approx(-4.0)
    assert rows.loc[("bpb/en", "bpb"), "value"] == 3.0
    t = signal_table(pd.DataFrame(_long("arc_easy", "acc", FLAT, chance=0.25, n=100))).iloc[0]
    assert t.chance_z == pytest.approx((t["last"] - 0.25) / math.sqrt(0.25 * 0.75 / 100))


def test_signal_json_round_trip_and_claim_note(tmp_path):
    table = signal_table(pd.DataFrame(_long("arc_easy", "margin", RISING) + _long("arc_easy", "acc", FLAT)
                                      + _long("bpb/en", "bpb", [[-v for v in r] for r in RISING])))
    cache = tmp_path / "04_evaluation" / "abc123"
    cache.mkdir(parents=True)
    write_signal(cache / SIGNAL_FILE, signal_record(table, SignalRule(), seeds=[0, 1, 2]))
    with pytest.raises(ConfigError, match="run that chapter first"):
        signal_selection(tmp_path)
    (tmp_path / "04_evaluation" / "LATEST").write_text("abc123")
    sel = signal_selection(tmp_path)
    assert isinstance(sel["rule"], str) and sel["seeds"] == [0, 1, 2]
    assert [(s["task"], s["metric"]) for s in sel["selected"]] == [("arc_easy", "margin")]  # bpb is never selected
    assert all(isinstance(s["snr"], float) for s in sel["selected"])
    claim = untested_claim("c", "a claim", "paper", "arc_easy acc per item", "+", None, "needs more")
    ev = annotate_claim(claim, sel, "arc_easy", "acc")["evidence"]
    assert "signal metric: arc_easy acc, NOT selected" in ev and "margin (SNR 30.00)" in ev


def test_accuracy_noise_is_floored_at_one_item():
    "Seeds that end on the same count correct are not noiseless: the noise floor is 1/items, so the SNR stays finite."
    import pandas as pd
    from kaiyuan_nb.eval_signal import SignalRule, signal_table
    rows = [{"seed": s, "step": st, "task": "t", "metric": "acc", "value": v, "chance": 0.25, "n": 40}
            for s in range(3) for st, v in zip((1, 2, 3, 4), (0.25, 0.27, 0.28, 0.3))]
    row = signal_table(pd.DataFrame(rows), SignalRule()).iloc[0]
    assert abs(row["noise"] - 1 / 40) < 1e-12 and abs(row["snr"] - 2.0) < 1e-9
