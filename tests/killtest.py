"""Shared plumbing of the resume-after-SIGKILL tests: each test file runs its own training body in a
subprocess (`python <test file> worker <out_dir> <sleep>`), kills one run mid-way and resumes it."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def spawn_worker(test_file: str | Path, out_dir: Path, sleep: float) -> subprocess.Popen:
    "Start `<test_file> worker <out_dir> <sleep>` in a one-thread subprocess."
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(test_file), "worker", str(out_dir), str(sleep)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_when_exists(victim: subprocess.Popen, marker: Path, timeout: float = 150) -> None:
    "SIGKILL `victim` as soon as `marker` exists (failing if the process ends or the marker never comes)."
    deadline = time.time() + timeout
    while not marker.exists():
        assert victim.poll() is None, victim.communicate()[1][-2000:]
        assert time.time() < deadline, f"{marker} did not appear within {timeout} s"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL


def finish(proc: subprocess.Popen, timeout: float = 180) -> None:
    "Wait for a worker and fail with the tail of its stderr if it did not exit cleanly."
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-2000:]


def losses(out_dir: Path) -> list[float]:
    "The per-step losses a worker wrote when it finished."
    return json.loads((out_dir / "losses.json").read_text())
