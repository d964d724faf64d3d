"""Tests of kaiyuan_nb.train: loader, schedules, optimizer groups, exact resume after SIGKILL,
divergence handling, checkpoint averaging, bad input. Real text: bytes of a stdlib source file."""
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from killtest import finish, kill_when_exists, losses, spawn_worker
from kaiyuan_nb.core import ConfigError
from kaiyuan_nb.model import KaiyuanConfig, KaiyuanForCausalLM
from kaiyuan_nb.train import (Callback, LRSchedule, MixtureLoader, MixtureStages, TrainConfig,
                              TrainingDiverged, average_checkpoints, checkpoint_paths, latest_checkpoint,
                              load_checkpoint, param_groups, train)

HERE = Path(__file__).resolve()


def text_tokens() -> dict[str, np.ndarray]:
    "Two real-text byte streams (vocabulary 256): the json package's decoder and encoder sources."
    import json.decoder, json.encoder
    return {name: np.frombuffer(Path(mod.__file__).read_bytes(), dtype=np.uint8).astype(np.int32)
            for name, mod in (("decoder", json.decoder), ("encoder", json.encoder))}


def tiny_model(seed: int = 0) -> KaiyuanForCausalLM:
    torch.manual_seed(seed)
    return KaiyuanForCausalLM(KaiyuanConfig(vocab_size=256, hidden_size=32, intermediate_size=64,
                                            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2))


def tiny_loader(batch_size: int = 4, **kw) -> MixtureLoader:
    return MixtureLoader(text_tokens(), {"decoder": 1, "encoder": 2}, seq_len=32, batch_size=batch_size, **kw)


def cfg(**kw) -> TrainConfig:
    base = dict(lr=1e-2, total_steps=6, warmup_steps=2, schedule="cosine", checkpoint_every=2, progress=False)
    return TrainConfig(**{**base, **kw})


# --- the SIGKILL resume test -------------------------------------------------------------------

class _Slow(Callback):
    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_step_end(self, state, record):
        time.sleep(self.seconds)


def worker(out_dir: str, sleep: float) -> None:
    "Subprocess body: a 12-step run with checkpoints every 3 steps; writes losses.json when it finishes."
    torch.set_num_threads(1)
    model = tiny_model()
    loader = tiny_loader()
    c = cfg(total_steps=12, checkpoint_every=3, keep_last=2, schedule="wsd", decay_fraction=0.5,
            final_lr_ratio=0.2, z_loss=1e-3)
    res = train(model, loader, c, out_dir, resume=True, callbacks=[_Slow(sleep)] if sleep else [])
    model.save_pretrained(Path(out_dir) / "model")
    (Path(out_dir) / "losses.json").write_text(json.dumps(res.losses))


def test_sigkill_then_resume_is_bitwise_identical(tmp_path):
    ref_dir, run_dir = tmp_path / "uninterrupted", tmp_path / "killed"
    ref = spawn_worker(HERE, ref_dir, 0.0)
    victim = spawn_worker(HERE, run_dir, 0.25)
    kill_when_exists(victim, run_dir / "checkpoints" / "step_000006.pt", timeout=120)
    assert not (run_dir / "losses.json").exists()  # it really died mid-run
    killed_at = load_checkpoint(latest_checkpoint(run_dir))["step"]
    assert 6 <= killed_at < 12
    assert not list((run_dir / "checkpoints").glob("*.tmp"))  # no half-written checkpoint is visible
    finish(spawn_worker(HERE, run_dir, 0.0))
    finish(ref)
    a, b = losses(ref_dir), losses(run_dir)
    assert len(a) == len(b) == 12
    assert a == b  # bitwise: the floats are written with full precision
    assert [p.name for p in checkpoint_paths(run_dir)] == ["step_000009.pt", "step_000012.pt"]  # keep_last=2
    # the trained model loads through the transformers Auto classes and generates
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(run_dir / "model").eval()
    prompt = torch.tensor([list(b"def ")])
    assert m.generate(prompt, max_new_tokens=5, do_sample=False, pad_token_id=0).shape == (1, 9)


# --- loader ------------------------------------------------------------------------------------

def test_loader_exact_proportions_and_windows():
    ld = tiny_loader(batch_size=6)
    toks = text_tokens()
    batches = [ld.next_batch() for _ in range(10)]
    assert ld.drawn == {"decoder": 20, "encoder": 40}
    for _ in range(3):
        b = ld.next_batch()
        for row, src in zip(b, ld.last_sources):
            stream = torch.from_numpy(toks[src].astype(np.int64))  # a window is a 33-token slice at a multiple of 32
            assert any(torch.equal(stream[s:s + 33], row) for s in range(0, len(stream) - 32, 32))
    assert batches[0].dtype == torch.int64 and batches[0].shape == (6, 33)


def test_loader_epochs_shuffle_and_state():
    ld = MixtureLoader({"a": np.arange(101, dtype=np.int32)}, {"a": 1}, seq_len=10, batch_size=5, seed=3)
    first_epoch = torch.cat([ld.next_batch(), ld.next_batch()])
    assert sorted(first_epoch[:, 0].tolist()) == list(range(0, 100, 10))  # each window once per epoch
    assert ld.epoch["a"] == 1
    second_epoch = torch.cat([ld.next_batch(), ld.next_batch()])
    assert not torch.equal(first_epoch, second_epoch)  # a new permutation
    ordered = MixtureLoader({"a": np.arange(101, dtype=np.int32)}, {"a": 1}, seq_len=10, batch_size=5, shuffle=False)
    assert ordered.next_batch()[:, 0].tolist() == [0, 10, 20, 30, 40]
    st = ld.state_dict()
    nxt = ld.next_batch()
    ld2 = MixtureLoader({"a": np.arange(101, dtype=np.int32)}, {"a": 1}, seq_len=10, batch_size=5, seed=3)
    ld2.load_state_dict(st)
    assert torch.equal(ld2.next_batch(), nxt)
    halves = MixtureLoader({"a": np.arange(101, dtype=np.int32)}, {"a": 1}, seq_len=10, batch_size=1, seed=3)
    halves.load_state_dict(st)  # the position counts rows: another batch size continues the same rows
    assert torch.equal(torch.cat([halves.next_batch() for _ in range(5)]), nxt)
    other = MixtureLoader({"a": np.arange(101, dtype=np.int32)}, {"a": 1}, seq_len=9, batch_size=5, seed=3)
    with pytest.raises(ConfigError, match="different data or loader settings"):
        other.load_state_dict(st)


@pytest.mark.parametrize("kwargs, needle", [
    (dict(tokens={}, weights={"a": 1}), "non-empty dict"),
    (dict(weights={"zz": 1}), "unknown source"),
    (dict(weights={"decoder": -1}), "expected a finite number >= 0"),
    (dict(weights={"decoder": 0}), "at least one weight must be positive"),
    (dict(seq_len=0), "seq_len"),
    (dict(tokens={"a": np.arange(5)}, weights={"a": 1}), "fewer than seq_len"),
    (dict(tokens={"a": np.zeros((4, 50), dtype=np.int32)}, weights={"a": 1}), "1-D integer array"),
])
def test_loader_bad_input(kwargs, needle):
    args = dict(tokens=text_tokens(), weights={"decoder": 1}, seq_len=32, batch_size=4) | kwargs
    with pytest.raises(ConfigError, match=needle):
        MixtureLoader(**args)


# --- schedules and optimizer groups ------------------------------------------------------------

@pytest.mark.parametrize("kind", ["constant", "cosine", "linear", "wsd"])
def test_schedules(kind):
    s = LRSchedule(kind, total_steps=50, warmup_steps=5, final_lr_ratio=0.25, decay_fraction=0.4)
    lrs = [s(i) for i in range(50)]
    assert lrs[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert all(a >= b - 1e-12 for a, b in zip(lrs[5:], lrs[6:]))  # non-increasing after warmup
    assert lrs[-1] == pytest.approx(1.0 if kind == "constant" else 0.25)
    if kind == "wsd":
        assert lrs[5:30] == [1.0] * 25 and lrs[31] < 1.0  # stable until the last 40 %


@pytest.mark.parametrize("kwargs, needle", [
    (dict(schedule="exponential"), "unknown schedule 'exponential'"),
    (dict(lr=0.0), "positive learning rate"),
    (dict(lr=-1e-3), "positive learning rate"),
    (dict(warmup_steps=20, total_steps=10), "warmup_steps"),
    (dict(final_lr_ratio=1.5), "final_lr_ratio"),
    (dict(grad_accum=0), "grad_accum"),
    (dict(precision="bf16"), "precision"),
])
def test_train_config_bad_input(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        TrainConfig(**kwargs)


def test_param_groups_no_decay_on_norms_and_embeddings():
    m = tiny_model()
    decay, no_decay = param_groups(m, 0.1)
    names = {id(p): n for n, p in m.named_parameters()}
    assert all("norm" in names[id(p)] or "embed" in names[id(p)] for p in no_decay["params"])
    assert all(p.ndim == 2 and "embed" not in names[id(p)] for p in decay["params"])
    assert len(param_groups(m, 0.1, no_decay_norms_embeddings=False)) == 1


# --- training loop -----------------------------------------------------------------------------

def test_grad_accumulation_matches_big_batch():
    a = train(tiny_model(), tiny_loader(batch_size=8), cfg(total_steps=3, grad_clip=None))
    b = train(tiny_model(), tiny_loader(batch_size=4), cfg(total_steps=3, grad_clip=None, grad_accum=2))
    assert a.losses == pytest.approx(b.losses, abs=1e-5)
    assert a.tokens == b.tokens == 3 * 8 * 32


def test_eval_does_not_perturb_training_and_stages_switch(tmp_path):
    calls = []
    def eval_fn(model):
        torch.randn(10)  # uses the RNG; training must not notice
        np.random.rand()
        calls.append(model.training)
        return {"probe": 1.0}
    plain = train(tiny_model(), tiny_loader(), cfg(total_steps=4))
    evald = train(tiny_model(), tiny_loader(), cfg(total_steps=4, eval_every=2), eval_fn=eval_fn,
                  callbacks=[MixtureStages({0: {"decoder": 1, "encoder": 2}, 2: {"decoder": 1}})])
    assert calls == [False, False] and [e["step"] for e in evald.evals] == [2, 4]
    assert plain.losses[:2] == evald.losses[:2]
    assert evald.history[3]["sources"] == {"decoder": 4}
    assert evald.history[0]["sources"] == {"encoder": 3, "decoder": 1}


def test_z_loss_and_history_fields():
    res = train(tiny_model(), tiny_loader(), cfg(total_steps=3, z_loss=1e-2))
    h = res.history[-1]
    assert h["z_loss"] > 0 and h["grad_norm"] > 0 and h["tokens"] == 3 * 4 * 32
    assert res.tokens_per_s > 0 and res.final_loss(2) == pytest.approx(np.mean(res.losses[-2:]))


class _Poison(Callback):
    def on_step_start(self, state):
        if state.step == 5:
            with torch.no_grad():
                state.model.model.layers[0].mlp.down_proj.weight.fill_(float("inf"))


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"step 6.*step_000004\.pt"):
        train(tiny_model(), tiny_loader(), cfg(total_steps=8), tmp_path, callbacks=[_Poison()])
    good = load_checkpoint(tmp_path / "checkpoints" / "step_000004.pt")
    assert good["step"] == 4 and all(torch.isfinite(v).all() for v in good["model"].values())
    res = train(tiny_model(), tiny_loader(), cfg(total_steps=8, on_nonfinite="stop"), tmp_path / "b",
                callbacks=[_Poison()])
    assert res.stopped and "non-finite" in res.stopped and len(res.losses) == 5


def test_resume_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope" / "step_000003.pt"
    with pytest.raises(ConfigError, match=str(missing)):
        train(tiny_model(), tiny_loader(), cfg(), tmp_path / "x", resume=missing)
    train(tiny_model(), tiny_loader(), cfg(total_steps=2), tmp_path / "y")
    bad = latest_checkpoint(tmp_path / "y")
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ConfigError, match=str(bad)):
        train(tiny_model(), tiny_loader(), cfg(total_steps=4), tmp_path / "y")


def test_resume_keeps_the_global_batch(tmp_path):
    "grad_accum may change on resume when grad_accum × loader batch (the global batch) does not; otherwise an error."
    full = train(tiny_model(), tiny_loader(batch_size=4), cfg(total_steps=4, grad_clip=None))
    train(tiny_model(), tiny_loader(batch_size=4), cfg(total_steps=4, grad_clip=None), tmp_path, callbacks=[_StopAt(2)])
    with pytest.raises(ConfigError, match="global batch of 4 rows per step, this run has 8"):
        train(tiny_model(), tiny_loader(batch_size=8), cfg(total_steps=4, grad_clip=None), tmp_path)
    split = train(tiny_model(), tiny_loader(batch_size=2), cfg(total_steps=4, grad_clip=None, grad_accum=2), tmp_path)
    assert split.losses[:2] == full.losses[:2] and split.losses == pytest.approx(full.losses, abs=1e-5)


class _StopAt(Callback):
    def __init__(self, n):
        self.n = n

    def on_step_end(self, state, record):
        state.stop = state.step >= self.n


def test_average_checkpoints(tmp_path):
    res = train(tiny_model(), tiny_loader(), cfg(total_steps=4, checkpoint_every=1, keep_last=3), tmp_path)
    paths = checkpoint_paths(tmp_path)
    assert [p.name for p in paths] == ["step_000002.pt", "step_000003.pt", "step_000004.pt"]
    states = [load_checkpoint(p)["model"] for p in paths]
    avg = average_checkpoints(paths, [1, 1, 2])
    k = "model.layers.0.mlp.down_proj.weight"
    assert torch.allclose(avg[k], (states[0][k] + states[1][k] + 2 * states[2][k]) / 4, atol=1e-7)
    m = tiny_model()
    m.load_state_dict(avg)
    with pytest.raises(ConfigError, match="weights"):
        average_checkpoints(paths, [1, 1])
    assert len(res.checkpoints) == 3


if __name__ == "__main__" and sys.argv[1] == "worker":
    worker(sys.argv[2], float(sys.argv[3]))


def test_bench_flags_a_loaded_machine(monkeypatch):
    "The benchmark records the load average and flags a start above the idle limit instead of reporting silently."
    import os
    from kaiyuan_nb.bench import bench_train, theoretical_peak_gflops
    cfg = tiny_model().config
    batches = [torch.randint(0, cfg.vocab_size, (2, 17)) for _ in range(2)]
    monkeypatch.setattr(os, "getloadavg", lambda: (5.0, 5.0, 5.0))
    loaded = bench_train(cfg, batches, rounds=2, threads=1, peak_n=64, progress=False)
    assert loaded["loaded"] and loaded["load_avg_start"] == 5.0
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    idle = bench_train(cfg, batches, rounds=2, threads=1, peak_n=64, progress=False)
    assert not idle["loaded"] and idle["ours_tokens_per_cpu_s"] > 0 and idle["same_losses"]
    assert idle["mfu_vs_theoretical"] > 0 and theoretical_peak_gflops(1) * 2 == pytest.approx(theoretical_peak_gflops(2))
    for arm in ("ours", "hf_qwen3"):
        assert idle[f"{arm}_page_faults_per_step"] >= 0 and 0 <= idle[f"{arm}_system_cpu_share"] <= 1


def test_bench_counts_the_page_faults_of_fresh_memory():
    pytest.importorskip("resource")
    from kaiyuan_nb.bench import _kernel_counters
    import mmap
    fresh = mmap.mmap(-1, 32 << 20)  # a new anonymous mapping: no page of it is backed yet
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        fresh.madvise(mmap.MADV_NOHUGEPAGE)  # 4 KiB pages even where transparent huge pages are always on
    _, before = _kernel_counters()
    np.frombuffer(fresh, dtype=np.uint8)[::4096] = 1  # first touch of each 4 KiB page
    _, after = _kernel_counters()
    assert after - before >= 1000


def test_fp32_flop_per_cycle():
    from kaiyuan_nb.bench import fp32_flop_per_cycle
    assert fp32_flop_per_cycle({"avx2", "fma", "avx"}, "AuthenticAMD", 25) == 32  # Zen 3
    assert fp32_flop_per_cycle({"avx512f", "avx2", "fma"}, "AuthenticAMD", 25) == 32  # Zen 4: 256-bit pipes
    assert fp32_flop_per_cycle({"avx512f", "avx2", "fma"}, "GenuineIntel", 6) == 64
    assert fp32_flop_per_cycle({"avx"}, "GenuineIntel", 6) == 16
