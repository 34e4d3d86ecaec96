"""What the committed ``cpu`` profile costs on one idle CPU core, measured on a sample of its runs.

The training times recorded in the results files were measured on machines shared with other training jobs (a
2-core machine at load 3-4, 13 to 16 runs at once on a 16-core one), so their sum overstates what a run takes on a
core of its own. This script groups each experiment's committed runs (those trained on a CPU) by the setup that recorded
them (CPU, torch version, thread count), retrains a seeded random sample of every group, one after another on one torch
thread, into a scratch folder (the committed files are never touched), and scales each group's recorded total by the
ratio of its sample's measured to recorded training time (a stratified ratio estimator: how crowded a machine was
depends on the setup). It also reports the time a retrained run spent outside its recorded training (building the
model, loading data) and how many retrained runs reproduced their committed test metric exactly.

    python benchmarks/bench_profile_cost.py --per-group 2 --out htaf/benchmarks/profile_cost_cpu.json

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

from htaf import reproduction, results, train


def _metric(record: dict) -> float | None:
    metrics = record["metrics"]
    return metrics.get("test_accuracy", metrics.get("test_loss"))


def _setup(record: dict) -> str:
    environment = record["environment"]
    return f"{environment.get('device')} | torch {environment.get('torch')} | {environment.get('cpu_threads')} thread(s)"


def measure(per_group: int, seed: int = 0, results_dir: str | Path | None = None, profile: str = "cpu") -> dict:
    """Retrain ``per_group`` sampled runs of every (experiment, setup) group; per group the recorded and measured
    seconds of the sample, the recorded total of all its runs and the scaled estimate; per experiment and in total
    the sums of those."""
    rng = random.Random(seed)
    torch.set_num_threads(1)
    rows, groups = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for item in reproduction.plan(profile, None, results_dir):
            if not item.cached:
                continue
            record = results.read_result(item.path)
            if record["environment"].get("device_type", "cpu") != "cpu":
                continue
            groups.setdefault((item.experiment, _setup(record)), []).append((item, record))
        for (name, setup), runs in sorted(groups.items()):
            for item, record in rng.sample(runs, min(per_group, len(runs))):
                started = time.perf_counter()
                fresh = train.run(name, profile, scratch, progress=False, announce=False, **item.overrides)
                rows.append({"experiment": name, "setup": setup, "sweep": item.sweep, "hash": record["hash"],
                             "recorded_s": record["wall_time_s"], "measured_s": fresh["wall_time_s"],
                             "call_s": time.perf_counter() - started,
                             "resumed": record.get("resumed_from_epoch") is not None,
                             "same_metric": _metric(fresh) == _metric(record)})
                print(json.dumps(rows[-1]), flush=True)
    strata, experiments = [], {}
    for (name, setup), runs in sorted(groups.items()):
        sample = [r for r in rows if r["experiment"] == name and r["setup"] == setup]
        ratio = sum(r["measured_s"] for r in sample) / sum(r["recorded_s"] for r in sample)
        recorded = sum(record["wall_time_s"] for _, record in runs)
        overhead = sum(r["call_s"] - r["measured_s"] for r in sample) / len(sample)
        strata.append({"experiment": name, "setup": setup, "runs": len(runs), "sampled": len(sample), "ratio": ratio,
                       "recorded_s": recorded, "estimate_s": recorded * ratio, "overhead_s": overhead * len(runs)})
        entry = experiments.setdefault(name, {"runs": 0, "sampled": 0, "recorded_s": 0.0, "estimate_s": 0.0,
                                              "overhead_s": 0.0})
        for key in entry:
            entry[key] += strata[-1][key]
    return {"profile": profile, "machine": results.environment(torch.device("cpu")), "per_group": per_group,
            "seed": seed, "runs": rows, "strata": strata, "experiments": experiments,
            "recorded_s": sum(e["recorded_s"] for e in experiments.values()),
            "estimate_s": sum(e["estimate_s"] for e in experiments.values()),
            "overhead_s": sum(e["overhead_s"] for e in experiments.values()),
            "same_metric": sum(r["same_metric"] for r in rows), "sampled": len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-group", type=int, default=2, help="runs retrained per (experiment, setup) group")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results-dir", default=None)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--out", default=None, help="write the measurement here (JSON)")
    args = parser.parse_args()
    found = measure(args.per_group, args.seed, args.results_dir, args.profile)
    for entry in found["strata"]:
        print(f"{entry['experiment']:16s} {entry['setup']:52s} {entry['runs']:4d} runs, sample of {entry['sampled']}: "
              f"measured/recorded {entry['ratio']:.2f}, {entry['recorded_s'] / 60:6.1f} -> {entry['estimate_s'] / 60:6.1f} min")
    print(f"total: recorded {found['recorded_s'] / 3600:.1f} h of CPU runs, about {found['estimate_s'] / 3600:.1f} h "
          f"of training on one idle core, {found['overhead_s'] / 3600:.1f} h besides (model builds, data loading); "
          f"{found['same_metric']} of {found['sampled']} retrained runs matched their metric exactly")
    if args.out:
        Path(args.out).write_text(json.dumps(found, indent=1) + "\n")


if __name__ == "__main__":
    main()
