"""Data-parallel training on CPU (gloo, 2 processes under torchrun) through `kaiyuan-train`:
2 processes × half batch equal 1 process × full batch (and × half batch with accumulation); a DDP
run stopped mid-way and resumed equals the uninterrupted one; resuming with another world size and
the same global batch too; and the gpu-dryrun scale (world 2, time windows, release export) end to end."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kaiyuan_nb.core import ConfigError, read_json
from kaiyuan_nb.recipe import load_recipe, max_abs_param_diff, train_command, train_main

pytestmark = pytest.mark.usefixtures("one_thread")
HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
STEPS = 6
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # gloo on CPU, as in CI


def write_recipe(d: Path, name: str, micro_batch: int | None = 4) -> Path:
    """A tiny model on two real-text byte streams (the json package's decoder and encoder sources); a global
    batch of 8 rows, run as micro-batches of `micro_batch` rows per process (None: the whole batch at once)."""
    import json.decoder, json.encoder
    if not (d / "tokens.npz").exists():
        np.savez(d / "tokens.npz", **{n: np.frombuffer(Path(m.__file__).read_bytes(), dtype=np.uint8).astype(np.int32)
                                      for n, m in (("decoder", json.decoder), ("encoder", json.encoder))})
    path = d / name
    path.write_text(
        f"data: {{kind: tokens, path: tokens.npz, vocab_size: 256, batch_size: 8, seq_len: 32,\n"
        + (f"       micro_batch: {micro_batch},\n" if micro_batch else "") +
        "       weights: {decoder: 1, encoder: 2}}\n"
        "model: {hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2}\n"
        f"train: {{lr: 1.0e-2, total_steps: {STEPS}, warmup_steps: 2, schedule: cosine, z_loss: 1.0e-3,\n"
        "        device: cpu, precision: fp32}\n")  # in-process runs stay on CPU where a GPU is visible
    return path


def run_args(d: Path, recipe: str, out: str, *extra: str) -> list:
    return ["--recipe", d / recipe, "--scale", "smoke", "--out", d / out, *extra]


def ddp_worker(d: Path) -> None:
    "Body of each torchrun process: several kaiyuan-train runs in one gloo process group."
    import torch
    import torch.distributed as dist
    from kaiyuan_nb.distributed import init_distributed
    torch.set_num_threads(1)
    rank, world = init_distributed()
    assert world == 2
    assert train_main(run_args(d, "r8.yaml", "ddp_full")) == 0
    assert train_main(run_args(d, "r8.yaml", "ddp_cut", "--max-steps", "3")) == 0  # stopped after 3 of 6 steps
    if rank == 0:
        shutil.copytree(d / "ddp_cut", d / "cut_2to1")  # to be resumed by one process
    dist.barrier()
    assert train_main(run_args(d, "r8.yaml", "ddp_cut")) == 0  # the same command resumes it
    assert train_main(run_args(d, "r8.yaml", "cut_1to2")) == 0  # started by one process, resumed by two
    dist.destroy_process_group()


def test_ddp_matches_one_process_and_resumes_across_world_sizes(tmp_path):
    write_recipe(tmp_path, "r8.yaml")  # 2 processes: 1 micro-batch of 4 rows each; 1 process: 2 accumulated
    write_recipe(tmp_path, "r8full.yaml", micro_batch=None)  # 1 process, all 8 rows at once
    assert train_main(run_args(tmp_path, "r8.yaml", "cut_1to2", "--max-steps", "3")) == 0
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                str(HERE), "worker", str(tmp_path)]
    proc = subprocess.run(torchrun, env=ENV, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    full = read_json(tmp_path / "ddp_full" / "result.json")
    assert (full["world_size"], full["finished"], full["windows"]) == (2, True, 1)
    assert not (tmp_path / "ddp_full" / "checkpoints" / "step_000006.pt.tmp").exists()
    # 1 process × the full batch by accumulating the same two halves: the same sums (halving is exact)
    assert train_main(run_args(tmp_path, "r8.yaml", "one_accum")) == 0
    # 1 process × the full batch at once: other sums, equal to float precision
    assert train_main(run_args(tmp_path, "r8full.yaml", "one_full")) == 0
    for single, tol in (("one_accum", 1e-6), ("one_full", 1e-5)):
        assert read_json(tmp_path / single / "result.json")["world_size"] == 1
        assert max_abs_param_diff(tmp_path / "ddp_full", tmp_path / single) <= tol
        assert read_json(tmp_path / single / "result.json")["losses"] == pytest.approx(full["losses"], abs=tol)
    # stopped after 3 steps and resumed with the same command: the uninterrupted run, bit for bit
    cut = read_json(tmp_path / "ddp_cut" / "result.json")
    assert (cut["world_size"], cut["windows"], cut["step"]) == (2, 2, STEPS)
    assert max_abs_param_diff(tmp_path / "ddp_full", tmp_path / "ddp_cut") <= 1e-6
    assert cut["losses"] == full["losses"]
    # another world size, the same global batch: 2 -> 1 and 1 -> 2
    assert train_main(run_args(tmp_path, "r8.yaml", "cut_2to1")) == 0
    for switched, worlds in (("cut_2to1", 1), ("cut_1to2", 2)):
        res = read_json(tmp_path / switched / "result.json")
        assert (res["world_size"], res["windows"], res["step"]) == (worlds, 2, STEPS)
        assert max_abs_param_diff(tmp_path / "ddp_full", tmp_path / switched) <= 1e-6  # same micro-batches


def test_gpu_dryrun_runs_world_2_in_windows_and_exports(tmp_path):
    """`kaiyuan-train --scale gpu-dryrun`: 2 processes, windows chained by resume, a release at the end. The first
    call's window is shortened (--max-minutes) so that the run surely needs more than one; the later calls use
    the scale's own 3-second window."""
    cmd = train_command(["--recipe", ROOT / "recipes" / "toy.yaml", "--scale", "gpu-dryrun", "--out", tmp_path / "run"])
    calls = 0
    while calls < 8:
        proc = subprocess.run(cmd + (["--max-minutes", "0.002"] if calls == 0 else []), env=ENV, capture_output=True,
                              text=True, timeout=300)
        calls += 1
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        res = read_json(tmp_path / "run" / "result.json")
        assert res["world_size"] == 2 and res["precision"] == "fp32"
        if res["finished"]:
            break
        assert "Resume with the same command" in proc.stdout
    assert res["finished"] and res["windows"] == calls >= 2 and len(res["losses"]) == res["step"] == 40
    release = tmp_path / "run" / "release"
    assert (release / "model.safetensors").exists() and "auto_map" in read_json(release / "config.json")
    assert (tmp_path / "run" / "model" / "tokenizer.json").exists()


@pytest.mark.parametrize("text, needle", [
    ("data: {kind: tokens, path: t.npz}\ntrain: {lr: 3e-3}", "train.lr: expected float"),
    ("data: {kind: tokens, path: t.npz}\ntrain: {warmup: 3}", "train.warmup: unknown key"),
    ("data: {kind: tokens, path: t.npz}\nexport: true", "export: a release needs a tokenizer"),
    ("data: {kind: tokens, path: t.npz, micro_batch: 3}", "data.micro_batch: 3 rows × 1 process(es) do not divide"),
    ("data: {kind: tokens, path: t.npz, micro_batch: 2}\ntrain: {grad_accum: 2}", "data.micro_batch and train.grad_accum"),
    ("data: {kind: text, files: {a: nothing*.txt}}", "data.files.a: 'nothing*.txt' matches no file"),
    ("data: {kind: tokens, path: t.npz, vocab_size: 10}", "data.vocab_size: 10, but"),
    ("data: {kind: tokens, path: t.npz}\nmodel: {hidden_sise: 3}", "model: config_for_scale: unknown KaiyuanConfig field"),
])
def test_recipe_errors_name_the_key(tmp_path, capsys, text, needle):
    np.savez(tmp_path / "t.npz", a=np.arange(1000, dtype=np.int32) % 200)
    (tmp_path / "r.yaml").write_text(text)
    assert train_main(["--recipe", tmp_path / "r.yaml", "--out", tmp_path / "out"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "r.yaml") in err and needle in err


def test_the_toy_recipe_is_valid():
    r = load_recipe(ROOT / "recipes" / "toy.yaml")
    assert r.data["kind"] == "text" and r.export and r.train["total_steps"] == 40


def test_ddp_check_runs_every_process_on_one_thread(tmp_path, monkeypatch):
    """ddp_check compares 2 single-thread ranks with 1 process: that process must run one thread too, since
    MKL's sgemm may round differently with 1 and 2 threads (an Intel Xeon did for the LM-head product)."""
    from kaiyuan_nb.recipe import ddp_check
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # what a user's shell may hold; the check must not inherit it
    tokens = {"text": np.frombuffer(Path(np.__file__).read_bytes() * 20, dtype=np.uint8).astype(np.int32)}
    res = ddp_check("smoke", 0, tmp_path, tokens, 256, steps=2)
    assert res["threads_per_process"] == 1
    assert res["max_abs_param_diff"] == 0.0 and res["resume_world_change_max_abs_diff"] == 0.0


if __name__ == "__main__" and sys.argv[1] == "worker":
    ddp_worker(Path(sys.argv[2]))
