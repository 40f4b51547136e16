"""The experiments behind the demos, shipped with the package: ``oinfo-monitor demo`` and ``retrain`` run them.

Each experiment module has a ``main(argv)`` and runs as ``python -m oinfo_monitor.experiments.<name>``:

- `grokking`: synergy while an MLP groks modular addition (Clauw, Stramaglia & Marinazzo 2024);
- `grokking_sweep`: the synergy peak against the grokking step over seeds and settings;
- `mnist_layerwise`: layerwise synergy and redundancy of an MNIST MLP, and rewinding sub-networks
  (Clauw, Marinazzo & Stramaglia 2022);
- `retrain_subnetwork`: retrain the sub-network that synergy picks and compare it with baselines;
- `ties_grokking`: how the copula's tie policy changes the grokking findings.

Their support: `data` (the modular-arithmetic task, MNIST from IDX files), `grokking_setup` (the
grokking model, data and training loop) and `common` (the flags, run folders and curves they share).
This package is the top layer: nothing else in `oinfo_monitor` imports it but the command line.
"""
