"""oinfo-monitor: layerwise synergy and redundancy (O-information) of a PyTorch model while it trains.

All information values are in bits. The public API:

- estimation: `copnorm`, `oinfo`, `sinfo`, `tc`, `dtc`, `copula_covariance`, `gaussian_entropy`,
  `entropy_bias`, and the single-neuron baselines `mi_model`, `mi_mixture`;
- search: `search`, `search_covariance`, `SearchResult`, `Multiplet`;
- monitoring: `OInfoMonitor`, `Evaluation`, `PhaseTracker`.
"""

from oinfo_monitor.estimators import (
    CopulaCovariance,
    copnorm,
    copula_covariance,
    covariance,
    dtc,
    entropy_bias,
    gaussian_entropy,
    mi_mixture,
    mi_model,
    oinfo,
    sinfo,
    tc,
)
from oinfo_monitor.monitor import Evaluation, OInfoMonitor, OInfoMonitorWarning
from oinfo_monitor.monitor.phases import Phase, PhaseTracker
from oinfo_monitor.search import Multiplet, SearchResult, search, search_covariance

__version__ = "0.1.0"

__all__ = [
    "CopulaCovariance",
    "Evaluation",
    "Multiplet",
    "OInfoMonitor",
    "OInfoMonitorWarning",
    "Phase",
    "PhaseTracker",
    "SearchResult",
    "copnorm",
    "copula_covariance",
    "covariance",
    "dtc",
    "entropy_bias",
    "gaussian_entropy",
    "mi_mixture",
    "mi_model",
    "oinfo",
    "search",
    "search_covariance",
    "sinfo",
    "tc",
]
