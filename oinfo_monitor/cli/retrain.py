"""``oinfo-monitor retrain ...``: retrain the sub-network that synergy picks and compare it with baselines."""

from __future__ import annotations

import argparse

from oinfo_monitor.cli.options import PROG, Commands, add_command, add_forwarding

RETRAIN_EXPERIMENT = "oinfo_monitor.experiments.retrain_subnetwork"
"""The experiment module ``oinfo-monitor retrain`` runs."""


def retrain_experiment(args: argparse.Namespace) -> str:
    """The experiment module of ``retrain``, whatever its arguments."""
    return RETRAIN_EXPERIMENT


def add_parser(commands: Commands) -> None:
    """The ``retrain`` subcommand."""
    parser = add_command(
        commands,
        "retrain",
        "Retrain the sub-network that synergy picks and compare it with baselines.",
        f"Runs {RETRAIN_EXPERIMENT} (built on oinfo_monitor.retrain): every\n"
        "argument (except --debug) goes to it; its options are listed below.",
        add_help=False,
        allow_abbrev=False,
        epilog=f"example:\n  {PROG} retrain --quick",
    )
    add_forwarding(parser, retrain_experiment)
