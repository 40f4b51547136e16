"""Is the synergistic sub-network different from random ones? See `oinfo_monitor.experiments.retrain_significance`."""

from oinfo_monitor.experiments.retrain_significance import main

if __name__ == "__main__":
    main()
