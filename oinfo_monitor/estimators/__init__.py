"""The math layer: Gaussian-copula estimators of higher-order information, on tensors only.

Nothing here knows about neural networks (`torch.nn` is never imported). The data path is:
samples → `validation` (checks, dead/duplicate neurons) → `copula` (ranks to normal quantiles) →
`covariance` → `state.CopulaCovariance` (one object holding the covariance(s)) → `logdets` (blocks
of it) → `entropy` (the only home of the entropy algebra) → `measures` (`oinfo`, `sinfo`, `tc`,
`dtc`). `multiplets` parses and enumerates index sets; `baselines` holds the single-neuron MI
baselines. All information values are in bits.
"""

from oinfo_monitor.estimators.baselines import mi_mixture, mi_model
from oinfo_monitor.estimators.copula import TIE_POLICIES, TiePolicy, copnorm
from oinfo_monitor.estimators.covariance import covariance
from oinfo_monitor.estimators.entropy import (
    SAMPLES_PER_VARIABLE,
    entropy_bias,
    gaussian_entropy,
    supported_size,
)
from oinfo_monitor.estimators.measures import dtc, oinfo, sinfo, tc
from oinfo_monitor.estimators.state import (
    CopulaCovariance,
    CopulaValues,
    copula_covariance,
    copula_values,
)
from oinfo_monitor.estimators.validation import NeuronFilter, distinct_neurons

__all__ = [
    "SAMPLES_PER_VARIABLE",
    "TIE_POLICIES",
    "CopulaCovariance",
    "CopulaValues",
    "NeuronFilter",
    "TiePolicy",
    "copnorm",
    "copula_covariance",
    "copula_values",
    "covariance",
    "distinct_neurons",
    "dtc",
    "entropy_bias",
    "gaussian_entropy",
    "mi_mixture",
    "mi_model",
    "oinfo",
    "sinfo",
    "supported_size",
    "tc",
]
