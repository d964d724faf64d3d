"tools/reproduce_check.py: which differences between committed and fresh results fail the check."
import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("reproduce_check", Path(__file__).parents[1] / "tools" / "reproduce_check.py")
reproduce_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reproduce_check)


def record(cpu: str, loss: float, status: str = "passed", tokens_per_s: float = 100.0) -> dict:
    return {"machine": {"cpu": cpu}, "metrics": {"loss": loss, "train_tokens_per_s": tokens_per_s},
            "claims": [{"id": "c", "metric": "loss", "status": status, "estimate": loss, "ci": None, "mde": None}]}


def test_timing_never_fails_and_same_cpu_must_match_bit_for_bit():
    assert not reproduce_check.judge(record("A", 1.0), record("A", 1.0, tokens_per_s=90.0))["failed"]
    res = reproduce_check.judge(record("A", 1.0), record("A", 1.0 + 1e-7))
    assert res["failed"] and ["loss", 1.0, 1.0 + 1e-7] in res["other"]


def test_another_cpu_fails_only_on_a_changed_claim_status():
    res = reproduce_check.judge(record("AMD EPYC", 1.0), record("Intel Xeon", 1.0 + 1e-7))
    assert not res["failed"] and res["other"] and not res["status_flips"]
    res = reproduce_check.judge(record("AMD EPYC", 1.0), record("Intel Xeon", 1.0 + 1e-7, status="failed"))
    assert res["failed"] and res["status_flips"] == [["claim c.status", "passed", "failed"]]
