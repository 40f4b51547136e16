"""What do the noise and the chance level cost? The grokking demo's layer, plain against trusted.

The 2024 paper's MLP (194 -> 250 -> 97) is trained for --steps steps on (a+b) mod 97; then the
monitor evaluates its 250 post-ReLU hidden neurons on the 3,763 training samples with the clusters
search (10 bins) --evaluations times, once without noise and chance levels (noise_resamples=0,
surrogates=0) and once with the defaults (10 bootstrap resamples every evaluation, 19 surrogates
every 20 evaluations), the two interleaved, best of --repeats. It prints seconds per evaluation
and their ratio, and the split of the trusted evaluation's extra time.

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
    parser.add_argument("--evaluations", type=int, default=20, help="evaluations per monitor")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--noise-resamples", type=int, default=10)
    parser.add_argument("--surrogates", type=int, default=19)
    parser.add_argument("--null-every", type=int, default=20)
    return parser.parse_args()


def seconds_per_evaluation(monitor: OInfoMonitor, evaluations: int) -> tuple[float, float]:
    """Wall seconds per evaluation, and the part of them spent on noise and chance levels."""
    trust = 0.0
    began = time.perf_counter()
    for step in range(evaluations):
        evaluation = monitor.evaluate(step)
        assert evaluation is not None and evaluation.records
        trust += evaluation.records[0]["trust_seconds"]
    return (time.perf_counter() - began) / evaluations, trust / evaluations


def main() -> None:
    """Train once, then time the two monitors on the same model."""
    args = parse_args()
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
    plain, trusted = [], []
    for _ in range(args.repeats):
        monitor = OInfoMonitor(model, data.x_train, noise_resamples=0, surrogates=0, **common)
        plain.append(seconds_per_evaluation(monitor, args.evaluations)[0])
        monitor = OInfoMonitor(
            model,
            data.x_train,
            noise_resamples=args.noise_resamples,
            surrogates=args.surrogates,
            null_every=args.null_every,
            **common,
        )
        trusted.append(seconds_per_evaluation(monitor, args.evaluations))
    best_plain = min(plain)
    best_trusted, trust_part = min(trusted)
    print(f"probe: {data.x_train.shape[0]} samples, layer 'hidden' (250 neurons), clusters")
    print(
        f"noise_resamples={args.noise_resamples} surrogates={args.surrogates} null_every={args.null_every}"
    )
    print(
        f"plain evaluation:    {best_plain:.3f} s   (runs: {', '.join(f'{p:.3f}' for p in plain)})"
    )
    print(
        f"with noise + chance: {best_trusted:.3f} s   (runs: {', '.join(f'{t:.3f}' for t, _ in trusted)})"
    )
    print(f"  of which noise and chance: {trust_part:.3f} s")
    print(f"ratio: {best_trusted / best_plain:.2f}x the plain evaluation")


if __name__ == "__main__":
    main()
