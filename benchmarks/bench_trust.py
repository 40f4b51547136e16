"""What do the noise and the chance level cost? The grokking demo's layer, plain against trusted.

The 2024 paper's MLP (194 -> 250 -> 97) is trained for --steps steps on (a+b) mod 97; then the
monitor evaluates its 250 post-ReLU hidden neurons on the 3,763 training samples with the clusters
search (10 bins) --evaluations times (default: one null cadence, so that the surrogate searches
are counted once per window, as in a run), once without noise and chance levels
(noise_resamples=0, surrogates=0) and once with the defaults (10 bootstrap resamples every
evaluation, 19 surrogates every 50 evaluations), the two interleaved, best of --repeats. It prints
seconds per evaluation and their ratio, and the split of the trusted evaluation's extra time.

    python benchmarks/bench_trust.py                      # the docs' figure
    python benchmarks/bench_trust.py --noise-resamples 5  # another setting
"""

from __future__ import annotations

import argparse
import time

import torch

from oinfo_monitor import OInfoMonitor
from oinfo_monitor.experiments.grokking_setup import (
    GrokkingConfig,
    build_model,
    grokking_data,
    train_grokking,
)


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300, help="training steps before measuring")
    parser.add_argument(
        "--evaluations",
        type=int,
        default=None,
        help="evaluations per monitor (default: --null-every)",
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--noise-resamples", type=int, default=10)
    parser.add_argument("--surrogates", type=int, default=19)
    parser.add_argument("--null-every", type=int, default=50)
    return parser.parse_args()


def timed(monitor: OInfoMonitor, step: int) -> tuple[float, float]:
    """Wall seconds of one evaluation, and the part of them spent on noise and chance levels."""
    began = time.perf_counter()
    evaluation = monitor.evaluate(step)
    seconds = time.perf_counter() - began
    assert evaluation is not None and evaluation.records
    return seconds, evaluation.records[0]["trust_seconds"]


def main() -> None:
    """Train once, then time the two monitors on the same model, one evaluation of each in turn
    (so that both meet the same load on a shared machine); the ratio of the total times."""
    args = parse_args()
    evaluations = args.evaluations or args.null_every
    torch.manual_seed(0)
    config = GrokkingConfig(steps=args.steps)
    model, data = build_model(config), grokking_data(config)
    train_grokking(config, model=model)
    common = {
        "layers": ["hidden"],
        "capture": "post",
        "strategy": "clusters",
        "track_phases": False,
    }
    print(f"probe: {data.x_train.shape[0]} samples, layer 'hidden' (250 neurons), clusters")
    print(
        f"noise_resamples={args.noise_resamples} surrogates={args.surrogates} "
        f"null_every={args.null_every}, {evaluations} evaluations of each, interleaved"
    )
    ratios = []
    for repeat in range(args.repeats):
        plain = OInfoMonitor(model, data.x_train, noise_resamples=0, surrogates=0, **common)
        trusted = OInfoMonitor(
            model,
            data.x_train,
            noise_resamples=args.noise_resamples,
            surrogates=args.surrogates,
            null_every=args.null_every,
            **common,
        )
        plain_seconds = trusted_seconds = trust_seconds = 0.0
        for step in range(evaluations):
            plain_seconds += timed(plain, step)[0]
            seconds, trust = timed(trusted, step)
            trusted_seconds += seconds
            trust_seconds += trust
        ratios.append(trusted_seconds / plain_seconds)
        print(
            f"repeat {repeat}: plain {plain_seconds / evaluations:.3f} s, with noise + chance "
            f"{trusted_seconds / evaluations:.3f} s (noise and chance "
            f"{trust_seconds / evaluations:.3f} s) per evaluation: {ratios[-1]:.2f}x"
        )
    print(f"ratio: {min(ratios):.2f}x to {max(ratios):.2f}x the plain evaluation")


if __name__ == "__main__":
    main()
