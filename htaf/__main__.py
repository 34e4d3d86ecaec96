"""Command line: ``python -m htaf {list, run, results}``.

Examples::

    python -m htaf list
    python -m htaf run mlp --profile smoke --set epochs=2 --set hidden=[64,64]
    python -m htaf results mlp --profile smoke
    torchrun --nproc_per_node=2 -m htaf run mlp --profile cpu

Unknown experiments, profiles or config keys exit with status 2 and a message
that lists the valid choices; a missing dataset exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

import pandas as pd

from htaf import distributed, experiments, results
from htaf.data import DatasetNotFoundError
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
    for name, help_text in (("run", "train one run (reusing a finished result)"), ("results", "print an experiment's results table")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("experiment")
        command.add_argument("--profile", help="smoke, cpu or gpu (default: $HTAF_PROFILE, else smoke)")
        command.add_argument("--results-dir", help="results root (default: $HTAF_RESULTS, else results/)")
    commands.choices["run"].add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                                         help="override a config key (repeatable)")
    commands.choices["results"].add_argument("--history", action="store_true", help="per-epoch metrics instead")
    return parser


def list_experiments() -> None:
    for name in experiments.available():
        experiment = experiments.get(name)
        print(f"{name:<20} [{', '.join(experiment.profiles)}]  {experiment.description}")


def run_experiment(args: argparse.Namespace) -> None:
    record = run(args.experiment, args.profile, args.results_dir, **parse_assignments(args.assignments))
    if distributed.from_env().is_main:
        path = results.result_path(record["experiment"], record["profile"], record["hash"], args.results_dir)
        print(json.dumps(record["metrics"], indent=1))
        print(f"result: {path}")


def show_results(args: argparse.Namespace) -> None:
    experiment = experiments.get(args.experiment).name
    profile = experiments.resolve_profile(args.profile)
    load = results.load_history if args.history else results.table
    frame = load(experiment, profile, args.results_dir)
    if frame.empty:
        print(f"no results for {experiment!r} under profile {profile!r} in {results.results_root(args.results_dir)}")
        return
    with pd.option_context("display.max_columns", None, "display.width", 200):
        print(frame.to_string(index=False))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    commands = {"list": lambda _: list_experiments(), "run": run_experiment, "results": show_results}
    try:
        commands[args.command](args)
    except experiments.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except DatasetNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
