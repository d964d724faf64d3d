"""Run report chapters cold (fresh run directory, results outside the repository) and compare every metric and
claim with the committed results/*.json: what a reader's `make report` would get. Timing metrics (tokens/s,
speed ratios, MFU, seconds, load averages, page faults) depend on the machine and are listed apart; any other
difference is a reproducibility failure (exit 1) when the committed results were computed on the same CPU model.
Across CPU models bit-for-bit agreement is not expected: MKL picks its kernels by CPU, even with MKL_CBWR=AVX2 (an
Intel Xeon and an AMD EPYC differ in the last bits of a matmul, and a training run carries that on); there the
check fails only when a claim's status differs, and lists the other differences for reading. Chapters run one at
a time, in order, so each finds the artifacts of the chapters it needs; a summary is rewritten after each one
(<work>/reproduce.json), so a check cut short keeps what it verified. CPU-heavy: nothing else should run meanwhile.
Usage: python tools/reproduce_check.py [--work DIR] [--scale report] [CHAPTER ...]   (default: every chapter)"""
import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMING = re.compile(r"tokens_per_s|tokens_per_cpu_s|docs_per_s|speedup|speed_ratio|mfu|seconds|load_avg|gflops|"
                    r"page_faults|system_cpu|slowdown|stage_s_|_eval_s$|_train_s$|compute_s$|time_ratio")


def compare(committed: dict, fresh: dict) -> dict:
    "Metric and claim differences between two results records, split into timing and other."
    out = {"timing": [], "other": []}
    a, b = committed.get("metrics", {}), fresh.get("metrics", {})
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            out["timing" if TIMING.search(key) else "other"].append([key, a.get(key), b.get(key)])
    claims_a = {c["id"]: c for c in committed.get("claims", [])}
    claims_b = {c["id"]: c for c in fresh.get("claims", [])}
    for cid in sorted(set(claims_a) | set(claims_b)):
        ca, cb = claims_a.get(cid, {}), claims_b.get(cid, {})
        for field in ("status", "estimate", "ci", "mde"):
            if ca.get(field) != cb.get(field):
                timing = TIMING.search(str(ca.get("metric") or cb.get("metric") or ""))
                out["timing" if timing else "other"].append([f"claim {cid}.{field}", ca.get(field), cb.get(field)])
    return out


def judge(committed: dict, fresh: dict) -> dict:
    """`compare` plus the verdict: on the CPU model the committed results name, any non-timing difference fails;
    on another, only a changed claim status does (the rest is rounding carried through, listed for reading)."""
    diff = compare(committed, fresh)
    cpus = committed.get("machine", {}).get("cpu"), fresh.get("machine", {}).get("cpu")
    status_flips = [d for d in diff["other"] if d[0].startswith("claim ") and d[0].endswith(".status")]
    return {**diff, "committed_cpu": cpus[0], "cpu": cpus[1], "status_flips": status_flips,
            "failed": bool(diff["other"]) if cpus[0] == cpus[1] else bool(status_flips)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("chapters", nargs="*", help="chapters to check, in order (default: all with committed results)")
    ap.add_argument("--work", default="/tmp/kaiyuan_reproduce", help="run directory and results of the cold run")
    ap.add_argument("--scale", default="report")
    args = ap.parse_args(argv)
    work = Path(args.work)
    os.environ["KAIYUAN_RESULTS_DIR"] = str(work / "results")  # set before the library picks its results dir
    from kaiyuan_nb.core import atomic_write_json, list_chapters, run_chapters
    committed_dir = ROOT / "results"
    chapters = args.chapters or [c for c in list_chapters(ROOT / "nbs") if (committed_dir / f"{c}.json").exists()]
    summary_path, summary = work / "reproduce.json", {}
    failed = False
    for chapter in chapters:
        start = time.perf_counter()
        run_chapters(args.scale, run_dir=work / "run", only=[chapter])
        fresh = json.loads((work / "results" / f"{chapter}.json").read_text())
        committed = json.loads((committed_dir / f"{chapter}.json").read_text())
        diff = judge(committed, fresh)
        summary[chapter] = {"minutes": round((time.perf_counter() - start) / 60, 1), **diff,
                            "metrics": len(fresh.get("metrics", {})), "claims": len(fresh.get("claims", []))}
        atomic_write_json(summary_path, summary)
        failed |= diff["failed"]
        note = "" if diff["cpu"] == diff["committed_cpu"] else (
            f" (committed on {diff['committed_cpu']}, run on {diff['cpu']}: rounding may differ; "
            f"{len(diff['status_flips'])} claim status changes)")
        print(f"{chapter}: {summary[chapter]['metrics']} metrics, {summary[chapter]['claims']} claims; "
              f"{len(diff['timing'])} timing differences; "
              + (f"{len(diff['other'])} OTHER DIFFERENCES: {diff['other'][:5]}" if diff["other"] else "the rest identical")
              + note, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
