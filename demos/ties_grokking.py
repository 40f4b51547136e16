"""How the copula's tie policy changes the synergy/redundancy curves of a grokking run.

Configuration: the flags, e.g. ``--quick`` (seed 0, 600 steps) or ``--publish`` (seeds 0-4, 2,000
steps, figure and JSON to docs/img/: run it from the repository root); ``--help`` lists them all.
``python -m oinfo_monitor.experiments.ties_grokking`` runs the same experiment from an installed
package.
The code: oinfo_monitor/experiments/ties_grokking.py.
"""

from oinfo_monitor.experiments.ties_grokking import main

if __name__ == "__main__":
    main()
