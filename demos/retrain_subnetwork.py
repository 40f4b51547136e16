"""Retrain the sub-network that synergy picks and compare it with baselines.

Configuration: the flags, e.g. ``--quick``, ``--run runs/<name> --step peak`` (grokking) or
``--mnist``; ``--help`` lists them all. ``oinfo-monitor retrain`` runs the same experiment from an
installed package.
The code: oinfo_monitor/experiments/retrain_subnetwork.py.
"""

from oinfo_monitor.experiments.retrain_subnetwork import main

if __name__ == "__main__":
    main()
