"""Tests of kaiyuan_nb.sft (chapter 09): chat template round trip, exact assistant-mask positions, packing
(no conversation split across rows; long ones split at user turns or truncated with a warning), packed
attention = attention alone, dict batches in the trainer, bad input naming file and row, the vendored data,
and resume after SIGKILL of the SFT loop (bitwise equal to an uninterrupted run)."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from kaiyuan_nb.core import ConfigError
from kaiyuan_nb.data import sha256_file, train_tokenizer
from kaiyuan_nb.model import KaiyuanForCausalLM, config_for_scale
from kaiyuan_nb import sft as S
from kaiyuan_nb import sft_experiment as E
from kaiyuan_nb.train import batch_loss, checkpoint_paths, latest_checkpoint, load_checkpoint, split_batch

HERE = Path(__file__).resolve()


pytestmark = pytest.mark.usefixtures("one_thread")


def make_tokenizer():
    "A small byte-level BPE with chapter 01's specials and chat template, trained on real SFT text."
    convs = S.load_sft_source("sft_self_instruct_seed") + S.load_sft_source("sft_crosswoz_zh")[:40]
    return train_tokenizer([m["content"] for c in convs for m in c.messages], 600)


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


def tiny_model(vocab: int, seed: int = 0) -> KaiyuanForCausalLM:
    torch.manual_seed(seed)
    return KaiyuanForCausalLM(config_for_scale("smoke", vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                               num_attention_heads=4, num_key_value_heads=2, sandwich_norm=True,
                                               final_logit_softcap=30.0))


CHAT = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 12 + 30?"},
        {"role": "assistant", "content": "12 + 30 = 42.\n#### 42"}, {"role": "user", "content": "请推荐一家餐馆。"},
        {"role": "assistant", "content": "推荐您去全聚德。"}]


# ---------------------------------------------------------------- template and mask
def test_template_round_trip(tok):
    ids, mask = S.encode_chat(tok, CHAT)
    assert ids[0] == tok.eos_token_id and mask[0] == 0  # the document-boundary token starts every conversation
    assert tok.decode(ids[1:]) == tok.apply_chat_template(CHAT, tokenize=False)
    assert tok.decode(ids[1:]).count("<|im_start|>") == len(CHAT)
    prompt, pmask = S.encode_chat(tok, CHAT[:2], add_generation_prompt=True)
    assert tok.decode(prompt[1:]).endswith("<|im_start|>assistant\n") and not any(pmask)


def test_mask_marks_exactly_assistant_content_and_its_end_token(tok):
    ids, mask = S.encode_chat(tok, CHAT)
    header = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    end = tok.convert_tokens_to_ids("<|im_end|>")
    expected = set()
    for i in range(len(ids) - len(header) + 1):
        if ids[i:i + len(header)] == header:  # an assistant header: train from its end through the next <|im_end|>
            j = i + len(header)
            k = ids.index(end, j)
            expected |= set(range(j, k + 1))
    assert expected and {i for i, m in enumerate(mask) if m} == expected
    trained = [ids[i] for i in sorted(expected)]
    assert tok.decode(trained) == "12 + 30 = 42.\n#### 42<|im_end|>推荐您去全聚德。<|im_end|>"
    ex = S.Example(np.array(ids, np.int32), np.array(mask, np.uint8), "t", "c")
    labels = S.labels_of(ex)
    assert (labels[sorted(expected)] == np.array(trained)).all()
    assert (np.delete(labels, sorted(expected)) == -100).all()


# ---------------------------------------------------------------- packing
def _convs(n: int, source: str = "sft_self_instruct_seed") -> list:
    return S.load_sft_source(source)[:n]


def test_packing_never_splits_a_conversation(tok):
    examples = S.tokenize_conversations(tok, _convs(60), max_len=200)
    for method in ("greedy", "bfd", "none"):
        rows = S.pack_examples(examples, 200, tok.pad_token_id, method)
        assert rows.real_tokens == sum(len(e) for e in examples)
        found = []
        for r in range(rows.input_ids.shape[0]):
            seg = S.segment_ids(torch.from_numpy(rows.position_ids[r:r + 1]))[0].numpy()
            for s in np.unique(seg):
                sel = seg == s
                if (rows.labels[r, sel] != -100).any():
                    found.append(tuple(rows.input_ids[r, sel].tolist()))
                    assert rows.position_ids[r, sel].tolist() == list(range(sel.sum()))
        assert sorted(found) == sorted(tuple(e.ids.tolist()) for e in examples)  # each one whole, exactly once
    lengths = [len(e) for e in examples]
    eff = {m: S.packing_efficiency(lengths, S.pack_lengths(lengths, 200, m), 200) for m in S.PACKING_METHODS}
    assert eff["none"] < eff["greedy"] <= eff["bfd"] <= 1.0


def test_long_multiturn_chat_is_split_at_user_turns(tok):
    conv = next(c for c in S.load_sft_source("sft_crosswoz_zh") if len(c.messages) >= 12)
    full, _ = S.encode_chat(tok, conv.messages)
    max_len = len(full) // 3
    pieces = S.tokenize_conversations(tok, [conv], max_len=max_len)
    assert len(pieces) >= 3 and all(len(p) <= max_len for p in pieces)
    for p in pieces:  # every piece is the template's rendering of whole exchanges, starting with a user turn
        text = tok.decode(p.ids[1:])
        assert text.startswith("<|im_start|>user\n") and text.endswith("<|im_end|>\n")
    if not any(p.truncated for p in pieces):  # every exchange lands in exactly one piece
        assert sum(int(p.mask.sum()) for p in pieces) == S.encode_chat(tok, conv.messages)[1].count(1)


def test_overlong_single_exchange_is_truncated_with_a_warning(tok):
    conv = S.Conversation("x", "demo", ({"role": "user", "content": "Say a lot."},
                                        {"role": "assistant", "content": "word " * 400}))
    with pytest.warns(UserWarning, match=r"\{'demo': 1\} piece\(s\) longer than max_len=64 tokens were truncated"):
        (ex,) = S.tokenize_conversations(tok, [conv], max_len=64)
    assert ex.truncated and len(ex) == 64 and ex.mask[-1] == 1
    with pytest.raises(ConfigError, match="outside 1..capacity=32"):
        S.pack_lengths([len(ex)], 32)


# ---------------------------------------------------------------- attention, trainer batches, generation
def test_packed_attention_equals_attention_alone(tok):
    model = tiny_model(len(tok)).eval()
    a, _ = S.encode_chat(tok, CHAT[1:3])
    b, _ = S.encode_chat(tok, CHAT[3:])
    row = torch.tensor([a + b])
    pos = torch.tensor([list(range(len(a))) + list(range(len(b)))])
    with torch.no_grad():
        alone_b = model(input_ids=torch.tensor([b])).logits[0]
        alone_a = model(input_ids=torch.tensor([a])).logits[0]
        with S.packed_attention(model) as state:
            packed = model(input_ids=row, position_ids=pos).logits[0]
            plain = model(input_ids=torch.tensor([b])).logits[0]  # no restart: untouched
        leaky = model(input_ids=row, position_ids=pos).logits[0]
    assert state["calls"] == 1
    torch.testing.assert_close(packed[:len(a)], alone_a, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(packed[len(a):], alone_b, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(plain, alone_b)
    assert (leaky[len(a):] - alone_b).abs().max() > 1e-3  # hooks are gone after the block
    with pytest.raises(ConfigError, match="expected a KaiyuanForCausalLM"):
        with S.packed_attention(torch.nn.Linear(2, 2)):
            pass


def test_dict_batch_loss_is_the_mean_over_trained_tokens(tok):
    model = tiny_model(len(tok))
    rows = S.pack_examples(S.tokenize_conversations(tok, _convs(12), 128), 128, tok.pad_token_id)
    batch = rows.batch(range(3))
    with S.packed_attention(model):
        fused = batch_loss(model, batch)[1]  # the model's fused loss path
        x, y, extra = split_batch(batch)
        logits = model(input_ids=x, **extra).logits
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(fused, ref, atol=1e-5, rtol=1e-5)
    assert int((y != -100).sum()) == int((rows.labels[:3, 1:] != -100).sum()) > 0
    with pytest.raises(ConfigError, match=r"missing \['labels'\]"):
        split_batch({"input_ids": batch["input_ids"]})
    with pytest.raises(ConfigError, match="shape of input_ids"):
        split_batch({"input_ids": batch["input_ids"], "labels": batch["labels"][:, :-1]})


def test_chat_generate_batched_equals_one_by_one(tok):
    model = tiny_model(len(tok)).eval()
    prompts = [CHAT[1:2], CHAT[3:4], CHAT[:2]]
    alone = [S.chat_generate(model, tok, [p], max_new_tokens=5)[0] for p in prompts]
    assert S.chat_generate(model, tok, prompts, max_new_tokens=5) == alone
    assert all(not r["ended"] or r["new_tokens"] <= 5 for r in alone)


def test_chat_generate_blocks_repeated_ngrams(tok, monkeypatch):
    model = tiny_model(len(tok)).eval()
    calls = []
    real = model.generate
    def spy(**kw):
        calls.append(kw)
        return real(**kw)
    monkeypatch.setattr(model, "generate", spy)
    prompt = [CHAT[1:2]]
    S.chat_generate(model, tok, prompt, max_new_tokens=12)
    S.chat_generate(model, tok, prompt, max_new_tokens=12, no_repeat_ngram=1)
    assert "no_repeat_ngram_size" not in calls[0] and calls[1]["no_repeat_ngram_size"] == 1
    new = calls[1]["input_ids"].shape[1]
    end = tok.convert_tokens_to_ids("<|im_end|>")
    ids = real(**calls[1])[0, new:].tolist()
    ids = ids[:ids.index(end)] if end in ids else ids
    assert len(ids) == len(set(ids)) > 1  # no token twice: the 1-gram block reached generate
    with pytest.raises(ConfigError, match="no_repeat_ngram"):
        S.chat_generate(model, tok, prompt, no_repeat_ngram=-1)


def test_plain_greedy_closes_follows_all_replies_order(tok):
    model = tiny_model(len(tok)).eval()
    gsm8k = [{"question": "What is 2 + 3?"}, {"question": "Name a colour."}]
    convs = [("b", S.Conversation("x", "b", tuple(CHAT[:3]))), ("a", S.Conversation("y", "a", tuple(CHAT[3:])))]
    budget = S.BUDGETS["smoke"]
    got = E.plain_greedy_closes(model, tok, gsm8k, sorted(convs, key=lambda nc: nc[0]), budget)
    gen = lambda prompts, n: [E.reply_closes(r) for r in S.chat_generate(model, tok, prompts, max_new_tokens=n)]
    want = gen([[{"role": "user", "content": g["question"]}] for g in gsm8k], budget.gsm8k_max_new_tokens)
    want += gen([convs[1][1].first_prompt, convs[0][1].first_prompt], budget.reply_max_new_tokens)
    assert got == want and len(got) == 4


def test_gsm8k_answer_parsing_and_no_test_item_in_sft():
    assert S.gsm8k_answer("3 + 4 = 7\n#### 7") == "7"
    assert S.gsm8k_answer("#### 1,200\n####  -2.5 ") == "-2.5"
    assert S.gsm8k_answer("The final answer is 7.") is None
    assert S.numbers_equal("42", "42.0") and not S.numbers_equal("41", "42") and not S.numbers_equal(None, "1")
    norm = lambda t: " ".join(t.split()).lower()
    test_q = {norm(r["question"]) for r in S.load_gsm8k_test()}
    assert len(test_q) > 1300
    for name in S.SFT_SOURCES:
        for c in S.load_sft_source(name):
            assert not any(m["role"] == "user" and norm(m["content"]) in test_q for m in c.messages), (name, c.id)


def test_vendored_sft_sources_manifests_and_licenses():
    from kaiyuan_nb.core import repo_root
    from kaiyuan_nb.data import load_manifest
    total = 0
    for name in S.SFT_SOURCES:
        m = load_manifest(name)
        assert m.role == "sft" and m.license in ("MIT", "Apache-2.0") and m.upstream["revision"]
        for f in m.extra["license_files"]:
            assert (repo_root() / f).exists()
        convs = S.load_sft_source(name)
        assert len(convs) == m.extra["rows"] and len({c.id for c in convs}) == len(convs)
        total += sum((repo_root() / f["path"]).stat().st_size for f in m.files)
    assert total < 5e6
    split = S.split_conversations(S.load_sft_source("sft_gsm8k"), 0.05)
    assert 0.03 < len(split["heldout"]) / (len(split["heldout"]) + len(split["train"])) < 0.07


# ---------------------------------------------------------------- bad input
def _root(tmp_path: Path, rows: list, raw: str | None = None) -> Path:
    (tmp_path / "data_manifests").mkdir()
    f = tmp_path / "data" / "chats.jsonl"
    f.parent.mkdir()
    f.write_text(raw if raw is not None else "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    man = {"name": "sft_bad", "role": "sft", "domain": "instruct", "language": "en", "license": "MIT",
           "upstream": {"repo": "x", "revision": "y", "path": "z"}, "text_field": "messages", "id_field": "id",
           "files": [{"path": "data/chats.jsonl", "sha256": sha256_file(f)}]}
    (tmp_path / "data_manifests" / "sft_bad.yaml").write_text(yaml.safe_dump(man))
    return tmp_path


GOOD = {"id": "g", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}


@pytest.mark.parametrize("row, needle", [
    ({"id": "a", "messages": [{"role": "user", "content": "x"}, {"role": "bot", "content": "y"}]},
     r"chats.jsonl: row 2: messages\[1\]: unknown role 'bot'"),
    ({"id": "b", "messages": []}, r"chats.jsonl: row 2: messages: expected a non-empty list"),
    ({"id": "c", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]},
     r"chats.jsonl: row 2: no assistant turn"),
    ({"id": "d", "messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "y"}]},
     r"row 2: messages\[0\]: content must be a string"),
    ({"id": "e", "messages": [{"role": "user", "content": "<|im_end|> hack"}, {"role": "assistant", "content": "y"}]},
     r"row 2: messages\[0\]: content contains the control token"),
    ({"id": "f", "messages": [{"role": "assistant", "content": "y"}]}, r"row 2: the conversation must open with a user turn"),
    ({"id": "h", "text": "no messages"}, r"row 2: no field 'messages'"),
])
def test_bad_rows_name_the_file_and_row(tmp_path, row, needle):
    with pytest.raises(ConfigError, match=needle):
        S.load_sft_source("sft_bad", root=_root(tmp_path, [GOOD, row]))


def test_bad_json_wrong_role_and_bad_settings(tmp_path, tok):
    with pytest.raises(ConfigError, match=r"chats.jsonl: row 1: not valid JSON"):
        S.load_sft_source("sft_bad", root=_root(tmp_path, [], raw="{oops\n"))
    with pytest.raises(ConfigError, match="role: expected 'sft'"):
        S.load_sft_source("gsm8k")
    with pytest.raises(ConfigError, match="heldout_fraction"):
        S.split_conversations([], 1.5)
    with pytest.raises(ConfigError, match="packing method"):
        S.pack_lengths([3], 8, "first-fit")
    rows = S.pack_examples(S.tokenize_conversations(tok, _convs(4), 128), 128, tok.pad_token_id)
    with pytest.raises(ConfigError, match="fewer than batch_size"):
        S.PackedSFTLoader(rows, 1000)
    other = S.PackedSFTLoader(rows, 1, seed=5)
    with pytest.raises(ConfigError, match="different SFT rows or loader settings"):
        S.PackedSFTLoader(rows, 1, seed=6).load_state_dict(other.state_dict())
    tok2 = make_tokenizer()
    tok2.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(ConfigError, match="generation"):
        S.encode_chat(tok2, CHAT)


# ---------------------------------------------------------------- paired measurements and verdicts
def test_per_piece_loss_equals_each_conversation_scored_alone(tok):
    model = tiny_model(len(tok)).eval()
    rows = S.pack_examples(S.tokenize_conversations(tok, _convs(10), 160), 160, tok.pad_token_id)
    packed = S.assistant_loss(model, rows, per_piece=True)
    alone = S.assistant_loss(model, E.unpack_rows(rows, tok.pad_token_id), per_piece=True)
    assert len(packed["piece_nll"]) == rows.n_examples and packed["piece_tokens"] == alone["piece_tokens"]
    np.testing.assert_allclose(packed["piece_nll"], alone["piece_nll"], rtol=1e-4, atol=1e-4)
    assert abs(sum(packed["piece_nll"]) / packed["tokens"] - packed["loss"]) < 1e-5


def test_base_must_come_from_chapter_08(tmp_path):
    with pytest.raises(ConfigError, match="chapter 08_training is missing"):
        E.load_base(tmp_path)


def _measurement(ended, answers, golds, ce, bpb):
    g = [{"id": f"g{i}", "ended": e, "new_tokens": 3, "answer": a, "gold": gd}
         for i, (e, a, gd) in enumerate(zip(ended, answers, golds))]
    return {"gsm8k_replies": g, "prompts": {"sft_x": {"replies": [{"id": "p0", "ended": ended[-1], "new_tokens": 3}]}},
            "heldout": {"sft_x": {"piece_nll": [c * 4 for c in ce], "piece_tokens": [4] * len(ce)}},
            "documents": {"en": {"nll": [b * np.log(2) * 50 for b in bpb], "bytes": [50.0] * len(bpb)}}}


def test_sft_claims_signs_pairing_and_at_chance():
    from kaiyuan_nb.verdicts import paired_effect
    before = _measurement([False] * 4, [None] * 3, ["1", "2", "3"], [5.0, 6.0, 7.0], [2.0, 2.1, 2.2])
    after = {s: _measurement([True] * 4, ["9", "9", "9"], ["1", "2", "3"], [4.0 + s / 10, 5.1, 6.0],
                             [2.2, 2.3 + s / 100, 2.4]) for s in range(3)}
    diffs = E.sft_item_diffs(before, after)
    assert diffs["end_of_turn"][0].tolist() == [1.0] * 4  # 3 GSM8K problems + 1 held-out prompt, SFT − base
    assert diffs["heldout_loss"][0].tolist() == pytest.approx([1.0, 0.9, 1.0])  # base − SFT per conversation
    assert diffs["pretrain_bpb"][1].tolist() == pytest.approx([-0.2, -0.21, -0.2])  # base − SFT: SFT raised bpb
    effects = {k: paired_effect(v, 200) for k, v in diffs.items()}
    pk = {m: {"efficiency": e, "rows": 1} for m, e in (("none", 0.4), ("greedy", 0.8), ("bfd", 0.9))}
    rows = {r["id"]: r for r in E.sft_claims(before, after, effects, pk, 0.5, "test")}
    assert rows["sft_lowers_heldout_loss"]["status"] == "reproduced" and rows["sft_lowers_heldout_loss"]["kind"] == "paper"
    assert rows["sft_keeps_pretraining"]["status"] == "contradicted"
    assert rows["sft_gsm8k_exact_match"]["status"] == "inconclusive"  # 0 correct: at chance decides nothing
    assert rows["sft_block_mask_isolation"]["status"] == "failed" and rows["sft_block_mask_isolation"]["kind"] == "check"
    two = {s: after[s] for s in (0, 1)}
    rows2 = E.sft_claims(before, two, {k: paired_effect(v, 200) for k, v in E.sft_item_diffs(before, two).items()}, pk, 0.0, "t")
    assert {r["status"] for r in rows2 if r["kind"] == "paper"} == {"inconclusive"}  # two seeds decide nothing
    with pytest.raises(ConfigError, match="not measured on the same items"):
        E.sft_item_diffs(before, {0: {**after[0], "prompts": {}}})


# ---------------------------------------------------------------- the sweep's bookkeeping
def test_balanced_subset_is_deterministic_and_balanced(tok):
    ex = S.tokenize_conversations(tok, _convs(30), 160)
    sub = S.balanced_subset(ex, 1500)
    assert 0 < sum(map(len, sub)) <= 1500
    assert [e.conv_id for e in S.balanced_subset(ex, 1500)] == [e.conv_id for e in sub]  # same call, same subset
    rev = S.balanced_subset(ex[::-1], 1500)
    assert sorted(e.conv_id for e in rev) == sorted(e.conv_id for e in sub)  # independent of input order
    two = [S.Example(np.zeros(n, np.int32), np.ones(n, np.uint8), src, f"{src}{i}")
           for i, (n, src) in enumerate([(10, "a")] * 6 + [(10, "b")] * 6)]
    got = S.balanced_subset(two, 60)
    assert sum(e.source == "a" for e in got) == sum(e.source == "b" for e in got) == 3  # sources take turns
    with pytest.raises(ConfigError, match="train_tokens"):
        S.balanced_subset(two, -5)
    with pytest.raises(ConfigError, match="fewer than one batch"):
        S.whole_batches([[0], [1], [2]], 4)
    assert S.whole_batches([[0], [1], [2], [3], [4]], 2) == [[0], [1], [2], [3]]


def test_epoch_bookkeeping():
    sch = E.epoch_schedule(32, 8, 5, (1, 2, 3, 5))
    assert sch == {"steps_per_epoch": 4, "total_steps": 20, "eval_steps": {4: 1, 8: 2, 12: 3, 20: 5}}
    with pytest.raises(ConfigError, match="whole batches"):
        E.epoch_schedule(30, 8, 5, (1,))
    with pytest.raises(ConfigError, match="eval_epochs"):
        E.epoch_schedule(32, 8, 5, (3, 2))
    with pytest.raises(ConfigError, match="eval_epochs"):
        dataclasses.replace(S.BUDGETS["report"], eval_epochs=(1, 6))
    b = S.BUDGETS["report"]
    assert b.max_epochs >= 5 and b.eval_epochs[-1] == b.max_epochs


def test_choose_setting_by_heldout_loss_only():
    losses = {(1e-3, 1): 3.0, (1e-3, 2): 2.7, (3e-3, 1): 2.8, (3e-3, 2): 2.6, (3e-3, 5): float("nan")}
    assert E.choose_setting(losses) == (3e-3, 2)
    assert E.choose_setting({(3e-3, 1): 2.0, (1e-3, 3): 2.0, (1e-3, 1): 2.0}) == (1e-3, 1)  # ties: fewer epochs, lower LR
    with pytest.raises(ConfigError, match="no \\(lr, epoch\\)"):
        E.choose_setting({(1e-3, 1): float("nan")})


def test_empty_reply_does_not_close_a_turn():
    assert not E.reply_closes({"ended": True, "new_tokens": 1}) and E.reply_closes({"ended": True, "new_tokens": 2})
    r = E.format_rates([{"ended": True, "new_tokens": 1}, {"ended": True, "new_tokens": 5}, {"ended": False, "new_tokens": 9}])
    assert r["ended"] == pytest.approx(1 / 3) and r["empty"] == pytest.approx(1 / 3)


# ---------------------------------------------------------------- resume after SIGKILL
def worker(out_dir: str, sleep: float) -> None:
    "Subprocess body: 12 SFT steps (run_sft) with checkpoints every 3; writes losses.json at the end."
    torch.set_num_threads(1)
    tok = make_tokenizer()
    ex = S.tokenize_conversations(tok, _convs(48), 128)
    groups = S.pack_lengths([len(e) for e in ex], 128, "bfd")
    assert len(groups) >= 12, len(groups)
    rows = S.pack_examples(ex, 128, tok.pad_token_id, groups=groups[:12])  # 3 steps per epoch of 4 rows
    data = S.SFTData(rows, {}, {}, {})
    budget = dataclasses.replace(S.BUDGETS["smoke"], max_epochs=4, eval_epochs=(2, 4), batch_size=4, warmup_steps=2, seq_len=127)
    if sleep:
        real = S.PackedSFTLoader.next_batch
        def slow(self):
            time.sleep(sleep)
            return real(self)
        S.PackedSFTLoader.next_batch = slow
    res = E.run_sft(tiny_model(len(tok)), data, budget, lr=2e-3, seed=3, out_dir=out_dir, progress=False)
    (Path(out_dir) / "losses.json").write_text(json.dumps(res.losses))


def _spawn(out_dir: Path, sleep: float) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(HERE), "worker", str(out_dir), str(sleep)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sft_sigkill_then_resume_is_bitwise_identical(tmp_path):
    ref_dir, run_dir = tmp_path / "uninterrupted", tmp_path / "killed"
    ref = _spawn(ref_dir, 0.0)
    victim = _spawn(run_dir, 0.3)
    deadline = time.time() + 150
    while time.time() < deadline and not (run_dir / "checkpoints" / "step_000006.pt").exists():
        assert victim.poll() is None, victim.communicate()[1][-2000:]
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not (run_dir / "losses.json").exists()
    killed_at = load_checkpoint(latest_checkpoint(run_dir))["step"]
    assert 6 <= killed_at < 12
    resumed = _spawn(run_dir, 0.0)
    _, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err[-2000:]
    _, err = ref.communicate(timeout=180)
    assert ref.returncode == 0, err[-2000:]
    a = json.loads((ref_dir / "losses.json").read_text())
    b = json.loads((run_dir / "losses.json").read_text())
    assert len(a) == len(b) == 12 and a == b
    assert [p.name for p in checkpoint_paths(run_dir)] == ["step_000012.pt"]
    for e in (2, 4):  # epoch snapshots: the killed-and-resumed run saved the same weights as the uninterrupted one
        a_w, b_w = torch.load(E.snapshot_path(ref_dir, e)), torch.load(E.snapshot_path(run_dir, e))
        assert all(torch.equal(a_w[k], b_w[k]) for k in a_w)
    hist = load_checkpoint(latest_checkpoint(run_dir))["history"]
    assert all(h["target_tokens"] > 0 for h in hist)  # dict batches: the assistant tokens trained per step


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "worker":
    worker(sys.argv[2], float(sys.argv[3]))
