"""What the committed ``cpu`` profile costs on one idle CPU core, measured on a sample of its runs.

The training times recorded in the results files were measured on machines shared with other training jobs (a
2-core machine at load 3-4, 13 to 16 runs at once on a 16-core one), so their sum overstates what a run takes on a
core of its own. This script retrains a seeded random sample of each experiment's committed runs (those trained on
a CPU), one after another on one torch thread, into a scratch folder (the committed files are never touched), and
scales each experiment's recorded total by the ratio of the sample's measured to recorded time (a ratio estimator).
It also reports how many retrained runs reproduced their committed test metric exactly.

    python benchmarks/bench_profile_cost.py --per-experiment 4 --out htaf/benchmarks/profile_cost_cpu.json

Run it on an otherwise idle machine (it uses one core). ``HTAF_DATA`` must point at the data sets the runs need.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch

from htaf import reproduction, results


def _metric(record: dict) -> float | None:
    metrics = record["metrics"]
    return metrics.get("test_accuracy", metrics.get("test_loss"))


def measure(per_experiment: int, seed: int = 0, results_dir: str | Path | None = None, profile: str = "cpu") -> dict:
    """Retrain ``per_experiment`` sampled runs of every experiment; per experiment the recorded and measured seconds
    of the sample, the recorded total of all its CPU runs and the scaled estimate; and the total estimate."""
    rng = random.Random(seed)
    torch.set_num_threads(1)
    rows, experiments = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for item in reproduction.plan(profile, None, results_dir):
            if not item.cached:
                continue
            record = results.read_result(item.path)
            if record["environment"].get("device_type", "cpu") != "cpu":
                continue
            experiments.setdefault(item.experiment, []).append((item, record))
        for name, runs in sorted(experiments.items()):
            for item, record in rng.sample(runs, min(per_experiment, len(runs))):
                started = time.perf_counter()
                fresh, _ = reproduction._run_planned(name, profile, scratch, item.overrides)
                rows.append({"experiment": name, "sweep": item.sweep, "hash": record["hash"],
                             "recorded_s": record["wall_time_s"], "measured_s": fresh["wall_time_s"],
                             "call_s": time.perf_counter() - started,
                             "recorded_on": record["environment"].get("device"),
                             "same_metric": _metric(fresh) == _metric(record)})
                print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for name, runs in sorted(experiments.items()):
        sample = [r for r in rows if r["experiment"] == name]
        ratio = sum(r["measured_s"] for r in sample) / sum(r["recorded_s"] for r in sample)
        recorded = sum(record["wall_time_s"] for _, record in runs)
        summary[name] = {"runs": len(runs), "sampled": len(sample), "ratio": ratio, "recorded_s": recorded,
                         "estimate_s": recorded * ratio}
    return {"profile": profile, "machine": results.environment(torch.device("cpu")),
            "per_experiment": per_experiment, "seed": seed, "runs": rows, "experiments": summary,
            "recorded_s": sum(e["recorded_s"] for e in summary.values()),
            "estimate_s": sum(e["estimate_s"] for e in summary.values()),
            "same_metric": sum(r["same_metric"] for r in rows), "sampled": len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-experiment", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results-dir", default=None)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--out", default=None, help="write the measurement here (JSON)")
    args = parser.parse_args()
    found = measure(args.per_experiment, args.seed, args.results_dir, args.profile)
    for name, entry in found["experiments"].items():
        print(f"{name:16s} {entry['runs']:5d} runs, sample of {entry['sampled']}: measured/recorded "
              f"{entry['ratio']:.2f}, recorded {entry['recorded_s'] / 60:6.1f} min -> {entry['estimate_s'] / 60:6.1f} min")
    print(f"total: recorded {found['recorded_s'] / 3600:.1f} h of CPU runs, about {found['estimate_s'] / 3600:.1f} h "
          f"on one idle core; {found['same_metric']} of {found['sampled']} retrained runs matched their metric exactly")
    if args.out:
        Path(args.out).write_text(json.dumps(found, indent=1) + "\n")


if __name__ == "__main__":
    main()
