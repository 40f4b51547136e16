"""Does the synergy peak come before grokking, whatever delays grokking? A sweep over seeds and settings.

Configuration: the flags, e.g. ``--settings wd0.1 wd2 wd10 alpha8 --seeds 0 1 2 3 4 --steps 4000``
or ``--quick``; ``--help`` lists them all. The runs go to a local process pool (``--workers N``),
to Ray (``--backend ray``, ``--ray-address`` for a cluster) or one after the other
(``--backend serial``). ``python -m oinfo_monitor.experiments.grokking_sweep`` runs the same
experiment from an installed package.
The code: oinfo_monitor/experiments/grokking_sweep.py.
"""

from oinfo_monitor.experiments.grokking_sweep import main

if __name__ == "__main__":
    main()
