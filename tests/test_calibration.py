"""Tests of kaiyuan_nb.calibration's per-item probe scoring and probe cache (fast: a tiny model, a tokenizer
trained in seconds on real text), of where chapter 06 leaves its table for chapters 07/08, and of the
ground-truth experiment (pseudo-sources with different quality mixes and differently-scaled scores)."""
import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

import kaiyuan_nb.calibration as cal
from kaiyuan_nb.calibration import (CALIBRATION_BUDGETS, CALIBRATION_FILE, GroundTruthBudget, calibration_gain_claim,
                                    calibration_path, document_slices, ground_truth_positions, ground_truth_sources,
                                    item_scores, paired_diffs, probe_records, run_ground_truth, run_probes,
                                    score_probe, spearman_influence)
from kaiyuan_nb.core import LATEST, ConfigError, atomic_write_json
from kaiyuan_nb.eval import EvalSuite, evaluate
from kaiyuan_nb.tasks import load_task

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tok():
    "The project's tokenizer trainer (chapter 01) on real text: LAMBADA passages."
    from kaiyuan_nb.data import train_tokenizer
    return train_tokenizer([it.context for it in load_task("lambada_openai", 400)], 1024)


@pytest.fixture(scope="module")
def suite():
    texts = tuple(it.context for it in load_task("lambada_openai", 410)[400:])
    return EvalSuite(tasks=("arc_easy", "winogrande"), items=12, bpb_texts={"en-x": texts}, arith_items=0,
                     seq_len=64, batch_tokens=1024, n_boot=50)


def tiny(vocab: int, seed: int = 0):
    from kaiyuan_nb.model import KaiyuanForCausalLM, config_for_scale
    torch.manual_seed(seed)
    return KaiyuanForCausalLM(config_for_scale("report", vocab, **CALIBRATION_BUDGETS["smoke"].probe_model)).eval()


def test_score_probe_agrees_with_evaluate(tok, suite):
    model = tiny(len(tok))
    got = score_probe(model, tok, suite)
    ref = evaluate(model, tok, suite, progress=False).set_index(["task", "metric"]).value
    for task in suite.tasks:
        acc = np.array(got["items"][task]["acc_norm"])
        gold = np.array(got["items"][task]["gold_logprob"])
        assert len(acc) == len(gold) == suite.items
        assert got["performance"][task] == pytest.approx(ref[(task, "acc_norm")])
        assert (gold <= 1e-9).all()
        n = np.array([len(it.continuations) for it in load_task(task, suite.items, suite.seed)])
        assert (gold[acc == 1] >= -np.log(n[acc == 1]) - 1e-9).all()  # the argmax holds at least a 1/n share
        assert got["chance"][task] == pytest.approx(np.mean(1 / n))
    docs = got["docs"]["bpb/en-x"]
    assert len(docs["nll"]) == len(docs["bytes"]) == 10
    assert -got["performance"]["bpb/en-x"] == pytest.approx(ref[("bpb/en-x", "bpb")])
    rec = {"source": "s", "position": 0.0, "seed": 0, **got}
    assert item_scores(rec, "bpb", "bpb").mean() == pytest.approx(
        np.mean(np.array(docs["nll"]) / (math.log(2) * np.array(docs["bytes"]))))


def test_probe_records_are_cached_and_paired(tok, suite, tmp_path, monkeypatch):
    budget = CALIBRATION_BUDGETS["smoke"]
    rng = np.random.default_rng(0)
    streams = {("a", 0.0): rng.integers(0, len(tok), 2000).astype(np.int32),
               ("b", 0.0): rng.integers(0, len(tok), 2000).astype(np.int32)}
    small = EvalSuite(tasks=("arc_easy",), items=6, bpb_texts=suite.bpb_texts, arith_items=0, seq_len=64,
                      batch_tokens=1024, n_boot=50)
    frame = run_probes(streams, budget, tok, small, 64, tmp_path, seeds=(0, 1), max_tokens=512, progress=False)
    assert sorted(set(frame.task)) == ["arc_easy", "bpb/en-x"] and len(frame) == 8
    records = probe_records(tmp_path)
    assert len(records) == 4 and all(r["tokens"] <= 512 and not r["diverged"] for r in records)
    diffs = paired_diffs(records, "bpb/en-x", "bpb", lambda r: r["source"] == "a", lambda r: r["source"] == "b")
    assert sorted(diffs) == [0, 1] and all(len(d) == 10 for d in diffs.values())
    monkeypatch.setattr(cal, "train_probe", lambda *a, **k: pytest.fail("a cached probe was retrained"))
    again = run_probes(streams, budget, tok, small, 64, tmp_path, seeds=(0, 1), progress=False)
    assert again.equals(frame)


def test_calibration_path_reads_chapter_06s_cache_or_names_it(tmp_path):
    with pytest.raises(ConfigError, match="06_calibration"):
        calibration_path(tmp_path)
    cache = tmp_path / "06_calibration" / "abc123"
    atomic_write_json(cache / CALIBRATION_FILE, {"reference": "a", "rows": []})
    (tmp_path / "06_calibration" / LATEST).write_text("abc123")
    assert calibration_path(tmp_path) == cache / CALIBRATION_FILE

TEXT = "The mitochondrion is the organelle that produces most of the chemical energy used by the cell. " * 4


def oracle_gain(mixes, seeds=(0, 1, 2)) -> tuple[dict, dict]:
    """The claim when every slice's probe reports exactly the slice's true mean quality: what calibration gains
    over within-source quantiles once the probes are perfect."""
    gt = GroundTruthBudget(docs_per_source=120, doc_chars=400, slices=4, probe_model={}, probe_epochs=1.0,
                           max_probe_tokens=1, batch_size=1, mixes=mixes)
    frames = []
    for seed in seeds:
        docs = document_slices(ground_truth_sources([TEXT] * 240, gt, seed), gt.slices)
        oracle = (docs.groupby(["source", "position"], as_index=False).true_quality.mean()
                  .rename(columns={"true_quality": "performance"}).assign(seed=seed, task="oracle"))
        frames.append(ground_truth_positions(docs, oracle, mixes[0][0]).assign(seed=seed))
    claim, metrics, _ = calibration_gain_claim(pd.concat(frames, ignore_index=True))
    return claim, metrics


def test_calibration_beats_quantiles_only_when_the_mixes_differ():
    clean, degraded = (0.5, 0.3, 0.1, 0.05, 0.05, 0.0), (0.0, 0.05, 0.05, 0.1, 0.3, 0.5)
    claim, m = oracle_gain((("clean", "logit", clean), ("degraded", "neg_ppl", degraded)))
    assert claim["status"] == "reproduced" and m["calibration_gain_rho_ci_lo"] > 0
    assert m["calibration_ground_truth_spearman"] > m["calibration_uncalibrated_spearman"] + 0.1
    same, m_same = oracle_gain((("a", "logit", clean), ("b", "neg_ppl", clean)))
    assert m_same["calibration_gain_rho"] < m["calibration_gain_rho"] - 0.1  # same mix: quantiles already align


def test_ground_truth_rejects_bad_input():
    gt = GroundTruthBudget(docs_per_source=10, doc_chars=400, slices=2, probe_model={}, probe_epochs=1.0,
                           max_probe_tokens=1, batch_size=1)
    with pytest.raises(ConfigError, match="20 needed"):
        ground_truth_sources([TEXT] * 5, gt, 0)
    bad = (("a", "logit", (0.5, 0.5)),)
    with pytest.raises(ConfigError, match=r"mixes\['a'\]: expected 6 non-negative weights summing to 1"):
        ground_truth_sources([TEXT] * 20, dataclasses.replace(gt, mixes=bad), 0)
    with pytest.raises(ConfigError, match="slices: expected an int >= 2"):
        document_slices(ground_truth_sources([TEXT] * 20, gt, 0), 1)
    with pytest.raises(ConfigError, match="missing columns"):
        calibration_gain_claim(pd.DataFrame({"seed": [0], "position": [0.0]}))
    with pytest.raises(ConfigError, match="no document has a calibrated position"):
        calibration_gain_claim(pd.DataFrame(columns=["seed", "source", "position", "equivalent_position",
                                                     "true_quality"]))
    with pytest.raises(ConfigError, match="equal-length"):
        spearman_influence([1, 2, 3], [1, 2])


def test_run_ground_truth_is_deterministic(tok, suite, tmp_path):
    gt = dataclasses.replace(CALIBRATION_BUDGETS["smoke"].ground_truth, docs_per_source=12, doc_chars=600,
                             max_probe_tokens=1024)
    budget = dataclasses.replace(CALIBRATION_BUDGETS["smoke"], ground_truth=gt)
    texts = [it.context for it in load_task("lambada_openai", 400)][:40]
    bpb_only = dataclasses.replace(suite, tasks=())
    runs = [run_ground_truth(texts, budget, tok, bpb_only, 64, tmp_path / name, seeds=(3,), progress=False)
            for name in ("a", "b")]
    pd.testing.assert_frame_equal(runs[0], runs[1])
    assert len(runs[0]) == 24 and set(runs[0].source) == {"gt_mostly_clean", "gt_mostly_degraded"}
    assert runs[0].equivalent_position.between(0, 0.5).all() and (runs[0].seed == 3).all()
    tokens = {r["tokens"] for r in probe_records(tmp_path / "a")}
    assert len(tokens) == 1 and 0 < tokens.pop() <= 1024  # every slice's probe saw the same token budget
