"""Command line: ``python -m htaf {list, run, results, reproduce, migrate}``.

Examples::

    python -m htaf list
    python -m htaf run mlp --profile smoke --set epochs=2 --set hidden=[64,64]
    python -m htaf results mlp --profile smoke
    python -m htaf reproduce --profile cpu --dry-run
    python -m htaf reproduce --profile cpu --only snn,dhn
    python -m htaf reproduce --profile cpu --jobs 14        # 14 runs at once, one thread each
    python -m htaf reproduce --profile gpu --cluster tcp://head:8786   # on a Dask cluster (htaf[cluster])
    python -m htaf migrate
    torchrun --nproc_per_node=2 -m htaf run mlp --profile cpu

Every config is checked before any data loads. Bad input (unknown experiments, profiles, config keys or
values), a damaged dataset file, an unwritable results folder or a run in progress elsewhere exit with
status 2 and a one-line message; a missing dataset exits with status 1 and explains the expected layout, a
missing optional package (torchvision, tonic) with status 1 and one line naming the extra that installs it, and
``reproduce --cluster`` with status 1 when a run failed (the others go on).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from typing import Any, Sequence

from htaf import distributed, experiments, results
from htaf.data import DatasetCorruptError, DatasetNotFoundError, MissingDependencyError
from htaf.reproduction import reproduce
from htaf.train import run

USAGE_ERROR = 2


def parse_value(text: str) -> Any:
    """``--set`` values: JSON when it parses (``3``, ``1e-3``, ``true``, ``[64, 64]``), Python's
    ``True``/``False``/``None``, else the text itself.

    >>> parse_value("1e-3"), parse_value("True"), parse_value("[64,64]"), parse_value("relu")
    (0.001, True, [64, 64], 'relu')
    """
    python_literals = {"True": True, "False": False, "None": None}
    if text in python_literals:
        return python_literals[text]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_assignments(assignments: Sequence[str]) -> dict[str, Any]:
    """``["epochs=2", "lr=0.1"]`` -> ``{"epochs": 2, "lr": 0.1}``."""
    parsed = {}
    for assignment in assignments:
        key, separator, value = assignment.partition("=")
        if not separator or not key:
            raise experiments.ConfigError(f"--set expects KEY=VALUE, got {assignment!r}")
        parsed[key] = parse_value(value)
    return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m htaf", description="Run HTAF experiments and show their results.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the experiments and their profiles")
    results_dir_help = "results root (default: $HTAF_RESULTS, else results/ of the project root)"
    for name, help_text in (("run", "train one run (reusing a finished result)"), ("results", "print an experiment's results table")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("experiment")
        command.add_argument("--profile", help="smoke, cpu or gpu (default: $HTAF_PROFILE, else smoke)")
        command.add_argument("--results-dir", help=results_dir_help)
    commands.choices["run"].add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                                         help="override a config key (repeatable)")
    commands.choices["results"].add_argument("--history", action="store_true", help="per-epoch metrics instead")
    book = commands.add_parser("reproduce", help="run every chapter's sweeps through the cache (only missing runs train)")
    book.add_argument("--profile", help="smoke, cpu or gpu (default: $HTAF_PROFILE, else smoke)")
    book.add_argument("--only", help="comma-separated experiments (default: all)")
    book.add_argument("--dry-run", action="store_true", help="only count cached and missing runs per chapter")
    book.add_argument("--results-dir", help=results_dir_help)
    book.add_argument("--estimate-from", metavar="PROFILE",
                      help="with --dry-run: estimate the training time from the times recorded under PROFILE "
                           "(its seconds per epoch times this profile's epochs)")
    book.add_argument("--jobs", type=int, default=1,
                      help="train this many missing runs at once in worker processes (default 1)")
    book.add_argument("--threads", type=int, default=None,
                      help="torch threads of each run, in this process, a --jobs worker or a --cluster task (default 1, "
                           "as the committed cpu runs)")
    book.add_argument("--cluster", metavar="ADDRESS",
                      help="send every missing run to the Dask cluster at ADDRESS (tcp://host:8786, or a "
                           "scheduler file *.json), one task per run; 'local' starts one on this machine with --jobs "
                           "workers (needs htaf[cluster])")
    book.add_argument("--device", choices=["cpu", "cuda"],
                      help="device of every run with --cluster (default: cuda for the gpu profile, else cpu); "
                           "a cuda run asks for one worker resource GPU")
    migrate = commands.add_parser("migrate", help="update results files to the current schema")
    migrate.add_argument("--results-dir", help=results_dir_help)
    return parser


def list_experiments(args: argparse.Namespace) -> None:
    for name in experiments.available():
        experiment = experiments.get(name)
        print(f"{name:<20} [{', '.join(experiment.profiles)}]  {experiment.description}")


def run_experiment(args: argparse.Namespace) -> None:
    record = run(args.experiment, args.profile, args.results_dir, announce=False, **parse_assignments(args.assignments))
    if distributed.from_env().is_main:
        print(json.dumps(record["metrics"], indent=1))
        print(f"result: {record.path}")


def show_results(args: argparse.Namespace) -> None:
    import pandas as pd

    experiment = experiments.get(args.experiment).name
    profile = experiments.resolve_profile(args.profile)
    load = results.load_history if args.history else results.table
    frame = load(experiment, profile, args.results_dir)
    if frame.empty:
        print(f"no results for {experiment!r} under profile {profile!r} in {results.results_root(args.results_dir)}")
        return
    with pd.option_context("display.max_columns", None, "display.width", 200):
        print(frame.to_string(index=False))


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def _hours(seconds: float) -> str:
    return _minutes(seconds) if seconds < 3600 else f"{seconds / 3600:.1f} h"


def print_estimate(profile: str, measured: str, only: list[str] | None, results_dir: str | None) -> None:
    """The table of :func:`htaf.reproduction.estimate`: this profile's epochs at ``measured``'s seconds per epoch."""
    from htaf.reproduction import estimate

    found = estimate(profile, measured, only, results_dir)
    print(f"estimate for profile {profile}: its epochs x the seconds per epoch recorded under profile {measured} "
          "(not measured)")
    print(f"{'experiment':<16} {'runs':>5} {'epochs':>7} {measured + ' runs':>9} {'s/epoch':>8} {'estimate':>9} "
          f"{'longest run':>12}")
    for name, entry in found.items():
        if entry["estimate_s"] is None:
            print(f"{name:<16} {entry['runs']:>5} {entry['epochs']:>7} {0:>9}  no finished {measured} run")
            continue
        print(f"{name:<16} {entry['runs']:>5} {entry['epochs']:>7} {entry['measured_runs']:>9} "
              f"{entry['seconds_per_epoch']:>8.3f} {_hours(entry['estimate_s']):>9} {_hours(entry['longest_run_s']):>12}")
    total = sum(entry["estimate_s"] or 0.0 for entry in found.values())
    longest = max((entry["longest_run_s"] or 0.0 for entry in found.values()), default=0.0)
    print(f"estimated total: {_hours(total)} on one device, {_hours(total / 8)} on 8 (the runs are independent; "
          f"the longest one takes {_hours(longest)})")


def reproduce_book(args: argparse.Namespace) -> int:
    only = [name.strip() for name in args.only.split(",") if name.strip()] if args.only else None
    profile = experiments.resolve_profile(args.profile)
    if args.estimate_from and not args.dry_run:
        raise experiments.ConfigError("--estimate-from goes with --dry-run (an estimate trains nothing)")
    started = time.perf_counter()
    summary = reproduce(profile, only, args.results_dir, dry_run=args.dry_run, jobs=args.jobs, threads=args.threads,
                        cluster=args.cluster, device=args.device)
    header = f"{'experiment':<16} {'runs':>5} {'cached':>7} {'missing':>8}"
    header += "  recorded training time" if args.dry_run else f" {'trained':>8} {'this call':>10}  recorded training time"
    print(f"profile {profile}{' (dry run: nothing trained)' if args.dry_run else ''}")
    print(header)
    for name, entry in summary.items():
        line = f"{name:<16} {entry['runs']:>5} {entry['cached']:>7} {entry['missing']:>8}"
        if not args.dry_run:
            line += f" {entry['trained']:>8} {_minutes(entry['wall_time_s']):>10}"
        print(f"{line}  {_minutes(entry['recorded_time_s'])}")
    total = sum(entry["recorded_time_s"] for entry in summary.values())
    print(f"total recorded training time: {_minutes(total)}; this call: {_minutes(time.perf_counter() - started)}")
    for name, entry in summary.items():
        print(f"results of {name}: {entry['folder']}")
    if args.estimate_from:
        print_estimate(profile, args.estimate_from, only, args.results_dir)
    held = sum(entry["held"] for entry in summary.values())
    if held:
        print(f"{held} run(s) in progress elsewhere were skipped (listed above); run again when they finish",
              file=sys.stderr)
    failed = sum(entry["failed"] for entry in summary.values())
    if failed:
        print(f"error: {failed} run(s) failed (listed above, with their errors); the others are kept; "
              "run again to retry them", file=sys.stderr)
        return 1
    return 0


def migrate_results(args: argparse.Namespace) -> None:
    moved = results.migrate(args.results_dir)
    for old, new in moved:
        print(f"{old} -> {new.name}" if old != new else f"{old} (updated in place)")
    print(f"migrated {len(moved)} file(s) under {results.results_root(args.results_dir)} to schema {results.SCHEMA}")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


COMMANDS = {"list": list_experiments, "run": run_experiment, "results": show_results,
            "reproduce": reproduce_book, "migrate": migrate_results}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", results.ResultsWarning)
            warnings.showwarning = _show_warning
            status = COMMANDS[args.command](args) or 0
    except (experiments.ConfigError, results.ResultsError, DatasetCorruptError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except (DatasetNotFoundError, MissingDependencyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        distributed.shutdown()
    return status


if __name__ == "__main__":
    sys.exit(main())
