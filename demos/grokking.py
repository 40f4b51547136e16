"""Watch synergy rise and fall while an MLP groks modular addition (Clauw et al. 2024).

Configuration: the flags, every default the paper's setting, e.g. ``--steps 4000 --weight-decay 2.0
--strategy clusters --bins 10 --runs-dir runs``; ``--help`` lists them all. ``make demo`` runs this
with the defaults; ``oinfo-monitor demo grokking`` runs the same experiment from an installed package.
The code: oinfo_monitor/experiments/grokking.py.
"""

from oinfo_monitor.experiments.grokking import main

if __name__ == "__main__":
    main()
