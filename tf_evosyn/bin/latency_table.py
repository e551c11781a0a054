"""Measure and cache a zoo model's per-layer latencies on this machine (the latency model's table).

    python -m tf_evosyn.bin.latency_table --model=resnet56 --threads=1

Every Conv2D/Dense geometry of the model is timed alone once and cached per machine and thread
count (:mod:`tf_evosyn.hardware.latency_model`); ``LatencyBudget`` then reads the cache.
"""

import argparse

import numpy as np

from tf_evosyn import models
from tf_evosyn.hardware.latency_model import LatencyTable


def main() -> None:  # pragma: no cover - a measuring command
    parser = argparse.ArgumentParser(description="Measure and cache a model's layer latencies.")
    parser.add_argument("--model", required=True, choices=models.names())
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    table = LatencyTable(args.threads, runs=args.runs)
    times = table.predict(models.build(args.model))
    print(f"{args.model}: {len(times)} layers, {np.sum(list(times.values())):.3f} ms modelled")
    print(f"cache: {table.path}")


if __name__ == "__main__":  # pragma: no cover
    main()
