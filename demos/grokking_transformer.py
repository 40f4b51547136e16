"""Does a significant synergy peak precede grokking in a one-layer transformer (Nanda et al. 2023)?

Configuration: the flags, e.g. ``--seeds 0 1 2 3 4 --steps 3000 --lr 3e-3 --name sweep``;
``--help`` lists them all (the training defaults are Nanda et al.'s setting shrunk for a 2-core
CPU). ``python -m oinfo_monitor.experiments.grokking_transformer`` runs the same experiment from an
installed package. The code: oinfo_monitor/experiments/grokking_transformer.py.
"""

from oinfo_monitor.experiments.grokking_transformer import main

if __name__ == "__main__":
    main()
