"""Tests of kaiyuan_nb.curriculum: picks and repetition, the interleaved ascending order, building the
stream from a corpus, the sequential loader (exact resume after SIGKILL), checkpoint averaging, bad input.
Real text: the source files of a few stdlib packages, one document per function/class block."""
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from killtest import finish, kill_when_exists, losses, spawn_worker
from kaiyuan_nb.core import ConfigError
from kaiyuan_nb.curriculum import (ORDERS, Curriculum, CurriculumLoader, Phase, Pick, average_last, best_settings,
                                   build_curriculum, calibrated_top, cdma_claims, cdma_run_id, cdma_seed_diffs,
                                   cdma_untested_claims, doc_bpb, interleaved_ascending, kaiyuan_phases,
                                   pick_documents, rank_fraction, repeat_counts, repetition_check)
from kaiyuan_nb.model import KaiyuanConfig, KaiyuanForCausalLM
from kaiyuan_nb.train import TrainConfig, checkpoint_paths, latest_checkpoint, load_checkpoint, train

HERE = Path(__file__).resolve()


class StdlibCorpus:
    """PreparedCorpus-shaped corpus over real text: each source is a stdlib package, each document one top-level
    block of its source files as bytes (+ EOS 0); `scored` sources get a score (share of letters)."""

    def __init__(self, packages: dict[str, bool]):
        import importlib
        self.sources, self._docs, self._scored = [], {}, {}
        for name, scored in packages.items():
            files = sorted(Path(importlib.import_module(name).__file__).parent.glob("*.py"))
            blocks = [b for f in files for b in f.read_text(encoding="utf-8").split("\n\n\n") if len(b) > 40]
            self.sources.append(name)
            self._docs[name], self._scored[name] = blocks[:120], scored

    def scores(self, source, split="train"):
        if not self._scored[source]:
            raise KeyError(source)
        return np.array([sum(c.isalpha() for c in d) / len(d) for d in self._docs[source]])

    def offsets(self, source, split="train"):
        return np.concatenate([[0], np.cumsum([len(d.encode()) + 1 for d in self._docs[source]])])

    def tokens(self, source, split="train"):
        return np.concatenate([np.frombuffer(d.encode() + b"\0", dtype=np.uint8) for d in self._docs[source]]
                              ).astype(np.int32)


@pytest.fixture(scope="module")
def corpus():
    return StdlibCorpus({"json": True, "email": True, "logging": False})


def two_phases() -> list[Phase]:
    return [Phase("broad", (Pick("json"), Pick("email"), Pick("logging", share=0.5)), "shuffle"),
            Phase("best", (Pick("json", quality=(0, 0.2)), Pick("email", quality=(0, 0.2), repeat=2),
                           Pick("logging")), "ascending")]


# --- picks, repetition, order ------------------------------------------------------------------

def test_repeat_counts_matches_kaiyuan_rule():
    rng = np.random.default_rng(0)
    c = repeat_counts(200_000, 2.3, rng)
    assert set(np.unique(c)) == {2, 3}
    assert abs(c.mean() - 2.3) < 0.01
    assert (repeat_counts(10, 1.0, rng) == 1).all()


def test_pick_documents_quality_range_share_and_repeat():
    rng = np.random.default_rng(0)
    ranks = rank_fraction(np.linspace(0, 1, 50))  # doc 49 is the best
    top = pick_documents(Pick("s", quality=(0.0, 0.2), repeat=3), 50, ranks, rng)
    assert sorted(set(top.tolist())) == list(range(40, 50)) and len(top) == 30
    assert len(pick_documents(Pick("s", share=0.2), 50, None, rng)) == 10
    with pytest.raises(ConfigError, match="no quality score"):
        pick_documents(Pick("s", quality=(0.0, 0.5)), 50, None, rng)


@pytest.mark.parametrize("kw, match", [(dict(quality=(0.3, 0.3)), "quality"), (dict(quality=(-0.1, 0.5)), "quality"),
                                       (dict(share=0.0), "share"), (dict(share=1.5), "share"),
                                       (dict(repeat=0), "repeat"), (dict(repeat=float("nan")), "repeat")])
def test_bad_picks_name_the_field(kw, match):
    with pytest.raises(ConfigError, match=match):
        Pick("web", **kw)


def test_bad_phases():
    with pytest.raises(ConfigError, match="order"):
        Phase("p", (Pick("web"),), order="descending")
    with pytest.raises(ConfigError, match="at least one pick"):
        Phase("p", ())


def test_interleaved_ascending_is_monotone_and_proportional():
    rng = np.random.default_rng(1)
    q = [rng.random(300), rng.random(100)]
    which, item = interleaved_ascending(q, rng)
    assert len(which) == 400
    for li in (0, 1):
        got = q[li][item[which == li]]
        assert (np.diff(got) >= 0).all()  # quality rises through the phase in every list
        assert sorted(item[which == li].tolist()) == list(range(len(q[li])))  # every item exactly once
    # the small list is spread evenly: a quarter of every stretch of the order
    for a in range(0, 400, 100):
        assert 20 <= (which[a:a + 100] == 1).sum() <= 30


# --- building the stream ------------------------------------------------------------------------

def test_build_is_deterministic_full_length_and_faithful(corpus):
    cur = build_curriculum(corpus, two_phases(), total_tokens=100_000, seed=3, max_doc_tokens=512)
    assert len(cur.tokens) == len(cur.source_ids) == 100_001
    assert cur.phases == ["broad", "best"] and cur.phase_starts[0] == 0 < cur.phase_starts[1] < 100_001
    again = build_curriculum(corpus, two_phases(), total_tokens=100_000, seed=3, max_doc_tokens=512)
    assert np.array_equal(cur.tokens, again.tokens)
    other = build_curriculum(corpus, two_phases(), total_tokens=100_000, seed=4, max_doc_tokens=512)
    assert not np.array_equal(cur.tokens, other.tokens)
    # every placed piece holds exactly the corpus tokens of that piece, and source ids agree
    for row in cur.items.sample(40, random_state=0).itertuples():
        piece = cur.tokens[row.start:row.start + row.length]
        assert np.array_equal(piece, corpus.tokens(row.source)[row.offset:row.offset + len(piece)])
        offs = corpus.offsets(row.source)
        assert offs[row.doc] <= row.offset and row.offset + row.length <= offs[row.doc + 1]
        assert (cur.source_ids[row.start:row.start + len(piece)] == cur.sources.index(row.source)).all()
    best = cur.items[(cur.items.phase == "best") & (cur.items.source == "email")]
    assert len(best) > 5
    assert best["rank"].max() < 0.2 and best["rank"].is_monotonic_decreasing
    assert cur.items[cur.items.source == "logging"]["rank"].isna().all()
    assert abs(sum(cur.phase_shares().values()) - 1.0) < 1e-9


def test_long_documents_are_cut_into_pieces(corpus):
    cur = build_curriculum(corpus, two_phases(), total_tokens=20_000, seed=0, max_doc_tokens=64)
    assert cur.items.length.max() <= 64


def test_top_pieces_are_shown_more_often(corpus):
    cur = build_curriculum(corpus, two_phases(), total_tokens=100_000, seed=0)
    exp = cur.exposure("email")
    assert exp[exp["rank"] < 0.2].copies.mean() > 1.5
    assert exp[exp["rank"] >= 0.2].copies.max() == 1


def test_small_corpus_is_upsampled_and_says_so(corpus):
    cur = build_curriculum(corpus, two_phases(), total_tokens=2_000_000, seed=0)
    assert cur.upsampled and len(cur.tokens) == 2_000_001


def test_build_bad_input(corpus):
    with pytest.raises(ConfigError, match="unknown source 'nope'"):
        build_curriculum(corpus, [Phase("p", (Pick("nope"),))], 1000)
    with pytest.raises(ConfigError, match="no quality score"):
        build_curriculum(corpus, [Phase("p", (Pick("logging", quality=(0, 0.5)),))], 1000)
    with pytest.raises(ConfigError, match="total_tokens"):
        build_curriculum(corpus, two_phases(), 0)
    with pytest.raises(ConfigError, match="no phases"):
        build_curriculum(corpus, [], 1000)


def test_kaiyuan_phases_tighten_and_translate_tops():
    phases = kaiyuan_phases()
    tops = [[pk.quality[1] for pk in p.picks if pk.source == "enwiki_sample"][0] for p in phases]
    assert tops == sorted(tops, reverse=True) and tops[0] == 1.0
    cal = pd.DataFrame({"source": ["stackexchange_small_sites"] * 3, "task": ["mean"] * 3,
                        "position": [0.0, 0.3, 0.6], "equivalent_position": [0.0, 0.6, 0.9]})
    cal.attrs["reference"] = "enwiki_sample"
    assert calibrated_top(cal, "stackexchange_small_sites", 0.6) == pytest.approx(0.3)
    translated = kaiyuan_phases(cal)
    se = [[pk.quality[1] for pk in p.picks if pk.source == "stackexchange_small_sites"][0] for p in translated]
    assert se[1] == pytest.approx(0.2)  # reference top 40% ~ top 20% of the other source


# --- the loader and training through it -----------------------------------------------------------

def test_loader_walks_the_stream_in_order(corpus):
    cur = build_curriculum(corpus, two_phases(), total_tokens=10_000, seed=0)
    ld = CurriculumLoader(cur, seq_len=32, batch_size=4)
    rows = torch.cat([ld.next_batch() for _ in range(ld.total_steps)])
    flat = torch.cat([rows[0, :-1]] + [r[:-1] for r in rows[1:]])
    assert np.array_equal(flat.numpy(), cur.tokens[:len(flat)])
    assert ld.phase_at(0) == "broad" and ld.phase_at(ld.total_steps - 1) == "best"
    with pytest.raises(ConfigError, match="used up"):
        ld.next_batch()
    fresh = CurriculumLoader(build_curriculum(corpus, two_phases(), 10_000, seed=1), 32, 4)
    with pytest.raises(ConfigError, match="different"):
        fresh.load_state_dict(ld.state_dict())
    with pytest.raises(ConfigError, match="seq_len"):
        CurriculumLoader(cur, 0, 4)


def tiny_model() -> KaiyuanForCausalLM:
    torch.manual_seed(0)
    return KaiyuanForCausalLM(KaiyuanConfig(vocab_size=256, hidden_size=32, intermediate_size=64,
                                            num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1))


def worker(out_dir: str, sleep: float) -> None:
    "Subprocess body: 10 steps over a curriculum, checkpoints every 2; writes losses.json when it finishes."
    from kaiyuan_nb.train import Callback
    torch.set_num_threads(1)

    class Slow(Callback):
        def on_step_end(self, state, record):
            time.sleep(sleep)

    cur = build_curriculum(StdlibCorpus({"json": True, "email": True, "logging": False}), two_phases(), 10_000, seed=0)
    ld = CurriculumLoader(cur, seq_len=32, batch_size=4)
    cfg = TrainConfig(lr=1e-2, total_steps=10, schedule="wsd", warmup_steps=2, final_lr_ratio=0.3, decay_fraction=0.3,
                      checkpoint_every=2, keep_last=3, progress=False)
    res = train(tiny_model(), ld, cfg, out_dir, resume=True, callbacks=[Slow()] if sleep else [])
    (Path(out_dir) / "losses.json").write_text(json.dumps(res.losses))


def test_sigkill_then_resume_through_the_curriculum_is_bitwise_identical(tmp_path):
    ref_dir, run_dir = tmp_path / "uninterrupted", tmp_path / "killed"
    ref = spawn_worker(HERE, ref_dir, 0.0)
    victim = spawn_worker(HERE, run_dir, 0.3)
    kill_when_exists(victim, run_dir / "checkpoints" / "step_000004.pt")
    assert not (run_dir / "losses.json").exists()
    assert 4 <= load_checkpoint(latest_checkpoint(run_dir))["step"] < 10
    finish(spawn_worker(HERE, run_dir, 0.0))
    finish(ref)
    assert losses(ref_dir) == losses(run_dir)
    # checkpoint averaging of the kept checkpoints equals the hand-made mean
    model = tiny_model()
    used = average_last(model, run_dir, 3)
    assert [Path(p).name for p in used] == [p.name for p in checkpoint_paths(run_dir)[-3:]]
    states = [load_checkpoint(p)["model"] for p in used]
    for k, v in model.state_dict().items():
        if torch.is_floating_point(v):
            assert torch.allclose(v, sum(s[k] for s in states) / 3, atol=1e-6)
    with pytest.raises(ConfigError, match="fewer than k=5"):
        average_last(model, run_dir, 5)
    with pytest.raises(ConfigError, match="weighting"):
        average_last(model, run_dir, 2, weighting="ema")


# --- CDMA verdicts: paired per-document differences -----------------------------------------------

def canned(order: str, ratio: float, seed: int, shift: float, rng: np.random.Generator, diverged: bool = False) -> dict:
    "A grid record over 2 domains x 30 documents: bpb = 1 + shift + a per-document level + noise."
    if diverged:
        return {"order": order, "final_lr_ratio": ratio, "seed": seed, "diverged": True}
    level = np.linspace(0, 0.5, 60)
    def docs(extra):
        bpb = 1 + shift + extra + level + rng.normal(0, 0.002, 60)
        return {d: {"nll": (bpb[k * 30:(k + 1) * 30] * 100 * math.log(2)).tolist(), "bytes": [100.0] * 30}
                for k, d in enumerate(("en-edu", "en-web"))}
    return {"order": order, "final_lr_ratio": ratio, "seed": seed, "diverged": False,
            "final_docs": docs(0.0), "averaged_docs": docs(-0.01)}


def grid_records(effect_const: float, effect_decay: float, seeds=(0, 1, 2)) -> dict:
    rng = np.random.default_rng(0)
    return {cdma_run_id(o, r, s): canned(o, r, s, 0.05 * s - (effect_const if r == 1.0 else effect_decay)
                                          * (o == "ascending"), rng)
            for o in ORDERS for r in (1.0, 0.3, 0.03) for s in seeds}


def test_cdma_claims_decide_paired_documents():
    recs = grid_records(0.03, 0.005)
    claims, metrics = cdma_claims(recs, (0, 1, 2), (1.0, 0.3, 0.03))
    status = {c["id"]: c["status"] for c in claims}
    assert status == {"cdma_ascending_beats_random_constant_lr": "reproduced", "cdma_gain_shrinks_with_decay": "reproduced",
                      "cdma_best_ascend_avg_beats_best_uniform": "reproduced"}
    # the seed offsets (0.05 per seed) cancel in the pairs: the estimate is the effect, the CI is tight
    assert metrics["cdma_gain_constant_lr"] == pytest.approx(0.03, abs=1e-3)
    assert metrics["cdma_gain_shrink"] == pytest.approx(0.025, abs=1e-3)
    assert metrics["cdma_gain_constant_lr_ci_hi"] - metrics["cdma_gain_constant_lr_ci_lo"] < 0.01
    best = [c for c in claims if c["id"] == "cdma_best_ascend_avg_beats_best_uniform"][0]
    assert best["n_items"] == 30  # measured on the half of the documents the choice did not see
    assert best_settings(recs, (0, 1, 2), (1.0, 0.3, 0.03), np.arange(60) % 2 == 0)[0] == 1.0  # ascending+avg
    # the opposite effect is contradicted, no effect is inconclusive with its MDE
    flipped = {c["id"]: c for c in cdma_claims(grid_records(-0.03, 0.0), (0, 1, 2), (1.0, 0.3, 0.03))[0]}
    assert flipped["cdma_ascending_beats_random_constant_lr"]["status"] == "contradicted"
    null = cdma_claims(grid_records(0.0, 0.0), (0, 1, 2), (1.0, 0.3, 0.03))[0][0]
    assert null["status"] == "inconclusive" and null["mde"] > 0


def test_cdma_claims_two_seeds_and_diverged_runs_never_decide():
    claims, _ = cdma_claims(grid_records(0.03, 0.0, seeds=(0, 1)), (0, 1), (1.0, 0.3, 0.03))
    assert all(c["status"] == "inconclusive" for c in claims) and claims[0]["n_seeds"] == 2
    recs = grid_records(0.03, 0.0)
    recs["shuffle__lr1__s1"] = canned("shuffle", 1.0, 1, 0, None, diverged=True)
    claims, metrics = cdma_claims(recs, (0, 1, 2), (1.0, 0.3, 0.03))
    assert metrics["diverged_runs_shuffle"] == 1 and metrics["diverged_runs_ascending"] == 0
    assert claims[0]["n_seeds"] == 2 and claims[0]["status"] == "inconclusive"
    assert sorted(cdma_seed_diffs(recs, (0, 1, 2), [(1.0, "shuffle", 1.0, "final")])) == [0, 2]
    with pytest.raises(ConfigError, match="no per-document 'final' results"):
        doc_bpb(recs["shuffle__lr1__s1"])


def test_repetition_check_and_untested_claims(corpus):
    cur = build_curriculum(corpus, two_phases(), total_tokens=100_000, seed=0)
    check = repetition_check(cur.exposure("email"), "email")
    assert check["kind"] == "check" and check["status"] == "passed" and check["estimate"] >= 2
    none = repetition_check(cur.exposure("email").query("rank >= 0.5"), "email")
    assert none["status"] == "failed" and none["estimate"] is None
    (untested,) = cdma_untested_claims()
    assert untested["status"] == "inconclusive" and untested["estimate"] is None and "30B" in untested["claim"]


class ByteTokenizer:
    "UTF-8 bytes as token ids, EOS 0: enough of the HF tokenizer interface for `document_nll`."
    eos_token_id, bos_token_id, pad_token_id = 0, None, 0

    def __len__(self):
        return 256

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [list(t.encode("utf-8")) for t in texts]}


# --- the powered grid (kaiyuan_nb.cdma_grid): graded corpus, orders, branch-off, EMA ------------------

ENGLISH = [" ".join(f"The {w} of section {i} explains how the method works in practice, step {j}."
                    for j in range(12)) for i, w in enumerate(["history", "theory", "design", "result", "use", "cost",
                                                                 "limit", "origin", "effect", "scope", "role", "form"] * 3)]


def test_graded_corpus_is_deterministic_balanced_and_graded():
    from kaiyuan_nb.cdma_grid import degradation_profile, graded_docset
    a = graded_docset(ENGLISH, ByteTokenizer(), 4, 6_000, seed=2)
    b = graded_docset(ENGLISH, ByteTokenizer(), 4, 6_000, seed=2)
    c = graded_docset(ENGLISH, ByteTokenizer(), 4, 6_000, seed=3)
    assert [t.tolist() for t in a.tokens] == [t.tolist() for t in b.tokens] and a.label.tolist() == b.label.tolist()
    assert [t.tolist() for t in a.tokens] != [t.tolist() for t in c.tokens]  # another seed, another pool
    assert np.bincount(a.label).tolist() == [len(a.label) // 4] * 4 and a.n_tokens >= 6_001
    assert (a.quality == -a.label).all()
    prof = degradation_profile(ENGLISH[:12], 4).bigram_change_rate.to_numpy()
    assert prof[0] == 0.0 and (np.diff(prof) > 0.05).all()  # each level changes clearly more of the text
    with pytest.raises(ConfigError, match="levels"):
        graded_docset(ENGLISH, ByteTokenizer(), 1, 100, 0)


def test_orders_permute_one_pool_and_place_the_best_data():
    from kaiyuan_nb.cdma_grid import ORDERS as ALL_ORDERS, order_documents
    q = -np.repeat(np.arange(4), 10).astype(float)
    for o in ALL_ORDERS:
        assert sorted(order_documents(q, o, 1).tolist()) == list(range(40))
    assert (q[order_documents(q, "late", 1, 0.25)[-10:]] == 0).all()
    assert (q[order_documents(q, "early", 1, 0.25)[:10]] == 0).all()
    assert (np.diff(q[order_documents(q, "ascending", 1)]) >= 0).all()
    with pytest.raises(ConfigError, match="best_share"):
        order_documents(q, "late", 1, 1.5)


def _tiny_branch_setup():
    from kaiyuan_nb.cdma_grid import BranchPlan, doc_stream, graded_docset, order_documents
    pool = graded_docset(ENGLISH, ByteTokenizer(), 4, 4_000, seed=0)
    stream, _ = doc_stream(pool, order_documents(pool.quality, "shuffle", 0), 12 * 4 * 32)
    return stream, BranchPlan(12, 2, 6, (1.0, 0.1), lr=3e-3, average_k=3, average_every=2, ema_beta=0.9)


def test_branch_off_reproduces_the_straight_run_of_the_trainer():
    "A decay branched off the stable run equals chapter 03's `train` run straight through with that WSD schedule."
    from kaiyuan_nb.cdma_grid import train_branches
    stream, plan = _tiny_branch_setup()
    torch.set_num_threads(1)
    branched = train_branches(tiny_model(), stream, 32, 4, plan)
    cur = Curriculum(stream.astype(np.int32), np.zeros(len(stream), np.int16), ["x"], ["p"], [0],
                     pd.DataFrame(columns=["start"]), 1.0, False)
    model = tiny_model()
    cfg = TrainConfig(lr=3e-3, total_steps=12, schedule="wsd", warmup_steps=2, final_lr_ratio=0.1,
                      decay_fraction=0.5, progress=False)
    straight = train(model, CurriculumLoader(cur, 32, 4), cfg, out_dir=None)
    np.testing.assert_allclose(branched[0.1]["loss"], straight.losses, rtol=1e-5)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(branched[0.1]["final"][k], v, rtol=1e-5, atol=1e-6)
    assert branched[1.0]["loss"][:6] == branched[0.1]["loss"][:6]  # one stable run, shared
    assert branched[1.0]["loss"][6:] != branched[0.1]["loss"][6:]


def test_ema_and_last_k_average_math():
    from kaiyuan_nb.cdma_grid import BranchPlan, WeightTrack, ema_update
    ema = {"w": torch.tensor([1.0])}
    for t in (2.0, 3.0, 4.0):
        ema_update(ema, {"w": torch.tensor([t])}, 0.5)
    assert ema["w"].item() == pytest.approx(0.125 * 1 + 0.125 * 2 + 0.25 * 3 + 0.5 * 4)  # weights sum to one
    plan = BranchPlan(10, 0, 6, (1.0,), average_k=3, average_every=2, ema_beta=0.5)
    model = torch.nn.Linear(1, 1, bias=False)
    w0 = model.weight.item()
    track, seen = WeightTrack(model, plan), []
    for step in range(1, 11):
        with torch.no_grad():
            model.weight.fill_(float(step))
        seen.append(float(step))
        track.update(model, step)
    assert track.averaged(model)["weight"].item() == pytest.approx(np.mean([6.0, 8.0, 10.0]))  # steps T, T-2, T-4
    expect = w0  # the EMA starts at the initial weights
    for s in seen:
        expect = 0.5 * expect + 0.5 * s
    assert track.ema["weight"].item() == pytest.approx(expect)


def test_cdma_claims_tag_names_another_pool():
    claims, metrics = cdma_claims(grid_records(0.03, 0.005), (0, 1, 2), (1.0, 0.3, 0.03), tag="controlled",
                                  where=" (pool X)")
    assert {c["id"] for c in claims} == {"cdma_controlled_ascending_beats_random_constant_lr",
                                         "cdma_controlled_gain_shrinks_with_decay",
                                         "cdma_controlled_best_ascend_avg_beats_best_uniform"}
    assert all(c["claim"].endswith("(pool X)") and c["mde"] is not None for c in claims)
    assert metrics["cdma_controlled_gain_constant_lr"] == pytest.approx(0.03, abs=1e-3)


if __name__ == "__main__" and sys.argv[1] == "worker":
    worker(sys.argv[2], float(sys.argv[3]))
