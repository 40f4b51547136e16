"""Layerwise synergy and redundancy of an MNIST MLP, and retraining its most synergistic sub-network.

Configuration: the flags, e.g. ``--quick`` or ``--seeds 20 --epochs 50 --data-root data``; ``--help``
lists them all. The seeds run in a local process pool (``--workers N``), on Ray (``--backend ray``)
or one after the other (``--backend serial``). ``oinfo-monitor demo mnist`` runs the same experiment from an installed package.
The code: oinfo_monitor/experiments/mnist_layerwise.py.
"""

from oinfo_monitor.experiments.mnist_layerwise import main

if __name__ == "__main__":
    main()
