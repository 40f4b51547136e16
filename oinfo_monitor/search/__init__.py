"""Search for the most synergistic (min Ω) and most redundant (max Ω) multiplets of each size.

Every strategy scores multiplets from one `CopulaCovariance` (through `scorer.Scorer`, whose
entropies all come from `oinfo_monitor.estimators.entropy.entropy_bits`), so the samples are
read once:

- ``"exhaustive"`` (`exhaustive`): all C(N, k) multiplets of each size, streamed in chunks with a
  running top-m per size, so memory is bounded whatever the count; the only strategy whose
  results are exact.
- ``"greedy"`` (`greedy`): exhaustive up to a start size, then each of the `beam` best multiplets
  grows by the neuron that lowers (synergy) or raises (redundancy) Ω most (the 2022 paper's
  procedure for ``beam=1``). Every candidate of one multiplet is scored at once from a single k×k
  inverse (see `Scorer.grow`), so one growth step costs O(k² N), not one determinant per
  candidate.
- ``"clusters"`` (`clusters`): the 2024 grokking paper's procedure: Ward clustering of the
  neurons into bins (of their copula-transformed, standardised profiles, computed from the
  covariance alone), then every union of `min_bins`..`bins` bins scored over its member neurons,
  by Schur-complement updates along the subset tree of unions.
- ``"anneal"`` (`anneal`): for wide layers; per size, parallel chains start from greedily grown
  multiplets and make heat-bath swap moves under a cooling temperature, separately minimising
  and maximising Ω.
- ``"auto"`` (`auto`): exhaustive when all requested multiplets fit `time_budget` (by a rough
  cost model), else greedy; `reason` says what it chose and why. A layer of more than 1,024
  neurons is first screened down to 1,024 (`wide`: from its correlations, or for more than 2,048
  neurons, whose state is a `WideCopula` with no N×N covariance, from its copula values); the
  result's `searched_neurons` and `reduced` say so.

Options (keyword-only, checked before any work; unknown names are rejected), one frozen
dataclass per strategy in `options`:

- exhaustive (`ExhaustiveOptions`): ``max_size``.
- greedy (`GreedyOptions`): ``beam=1``; ``start_size`` (default: the largest size ≤ 6 whose
  exhaustive search takes about 0.25 s; when even all triplets would take longer, seed triplets
  are grown from the most correlated pairs); ``max_size``; ``plateau_tol=1e-9``, relative to
  max(1 bit, |Ω|): a neuron independent in the covariance (after the known shift the bias
  correction adds) is a plateau; sampled data is never exactly independent, so pass e.g. 1e-2 to
  flag practical ones.
- clusters (`ClustersOptions`): ``bins=10``, ``min_bins=2``; `sizes`, if given, filters the
  union sizes.
- anneal (`AnnealOptions`): ``steps=50`` and ``chains=8`` (per direction and size),
  ``max_size``, ``temperature=(1.0, 0.01)`` (start, end), in units of the spread of the
  candidates' Ω.
- auto (`AutoOptions`): ``time_budget=1.0`` seconds, ``max_size``.

Results (`results`) are keyed by multiplet size k, the number of neurons (a target is not
counted). Ω of a pair is always 0, so sizes start at 3. Default sizes (`sizes`): exhaustive 3..K
with K ≤ min(N, 20) the largest size whose C(N, k) ≤ 10⁶ (at least 3); greedy 3..min(N, 20);
anneal 3..min(N, 10); clusters every union size; never more than the sample count can estimate.
The entry points `search` and `search_covariance` live in `api`; `beams` holds the running top-m
beams, their one-neuron growth and the pair seeds shared by greedy and anneal.
"""

from oinfo_monitor.search import options, results
from oinfo_monitor.search.api import search, search_covariance
from oinfo_monitor.search.options import check_search
from oinfo_monitor.search.results import Multiplet, SearchResult

STRATEGIES: tuple[str, ...] = options.STRATEGIES
"""The search strategies, ``"auto"`` (the default) first."""

DIRECTIONS: tuple[str, ...] = results.DIRECTIONS
"""The two search directions: most synergistic (min Ω) and most redundant (max Ω)."""

__all__ = [
    "DIRECTIONS",
    "STRATEGIES",
    "Multiplet",
    "SearchResult",
    "check_search",
    "search",
    "search_covariance",
]
