"""Tests of kaiyuan_nb.calibration's per-item probe scoring and probe cache (fast: a tiny model, a tokenizer
trained in seconds on real text), and of where chapter 06 leaves its table for chapters 07/08."""
import math

import numpy as np
import pytest
import torch

import kaiyuan_nb.calibration as cal
from kaiyuan_nb.calibration import (CALIBRATION_BUDGETS, CALIBRATION_FILE, calibration_path, item_scores,
                                    paired_diffs, probe_records, run_probes, score_probe)
from kaiyuan_nb.core import LATEST, ConfigError, atomic_write_json
from kaiyuan_nb.eval import EvalSuite, evaluate, load_task

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
