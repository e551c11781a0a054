"""Why small shrinks buy nothing: a per-layer latency breakdown of ResNet-56 offspring.

    python benchmarks/latency_breakdown.py [--output=benchmarks/results/latency_breakdown.json]
        [--rounds=3] [--runs=100] [--threads=1]

Latency depends on shapes only, so the lineages are drawn from a random-init ResNet-56 (seed 0):

* ``layer_budget``: two generations of configs/resnet56_cifar10.py's environment (each layer
  keeps ~90% of its clusters), the shape of the benchmark's generation-2 offspring;
* ``constant_0.75``: two syntheses with ConstantFactor(0.75) (the issue's 4x-fewer-MACs case);
* ``flops_0.7``: two generations of FlopsBudget(0.7);
* each of these with ChannelAlignment(multiple=16) (XNNPACK's x86 output-channel tile).

For each compacted variant it prints the TFLite op histogram, the whole-model latency
(interleaved rounds; with 1 thread the invoking thread's CPU time, which a loaded machine does
not inflate with waits; TFLite per-op profiling is not exposed by the pip interpreter, so each
Conv2D/Dense is timed alone as a one-layer model: tf_evosyn.hardware.latency_model), the modelled
time of
block conv1s (their *outputs* shrink) and conv2s (their *inputs* shrink), the unmodelled rest
(adds, pads, gathers, pooling), the MACs ratio, the speedup and the share of the promised saving
(1 - 1/speedup) / (1 - 1/MACs ratio).
"""

from __future__ import annotations

import collections
import os
import statistics
import sys
import tempfile
from pathlib import Path

from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import tflite_ops  # noqa: E402

import tf_evosyn  # noqa: E402,F401  (selects Keras 2)
from tf_evosyn._keras import keras  # noqa: E402
from tf_evosyn.compaction.plan import compact  # noqa: E402
from tf_evosyn.environments.alignment import ChannelAlignment  # noqa: E402
from tf_evosyn.environments.base import ConstantFactor, LayerBudget  # noqa: E402
from tf_evosyn.environments.flops_budget import FlopsBudget  # noqa: E402
from tf_evosyn.hardware.flops import count_flops  # noqa: E402
from tf_evosyn.hardware.latency_model import LatencyTable, LayerShape, layer_shapes  # noqa: E402
from tf_evosyn.models import build  # noqa: E402

_OUTPUT = flags.DEFINE_string("output", "benchmarks/results/latency_breakdown.json", "JSON path.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Interleaved rounds of whole-model timing.")
_RUNS = flags.DEFINE_integer("runs", 100, "Timed invokes per model and round.")
_THREADS = flags.DEFINE_integer("threads", 1, "TFLite threads.")

ENVIRONMENTS = {
    "layer_budget": LayerBudget(0.9, 0.75, 5.0, {"conv1": {"cluster_fraction": 0.95}}),
    "constant_0.75": ConstantFactor(0.75, 1.0),
    "flops_0.7": FlopsBudget(0.7),
}
PROBES = [  # (size, in, out) of a 3x3 conv: which channel steps buy time?
    (32, 16, 16),
    (32, 16, 13),
    (32, 16, 8),
    (32, 13, 16),
    (32, 8, 16),
    (8, 64, 64),
    (8, 64, 56),
    (8, 64, 48),
    (8, 64, 33),
    (8, 64, 32),
    (8, 56, 64),
    (8, 48, 64),
    (8, 32, 64),
]


def lineage(ancestor: keras.Model, environment, generations: int = 2) -> keras.Model:
    model = ancestor
    for generation in range(1, generations + 1):
        model, _ = tf_evosyn.synthesize(model, environment, seed=0, generation=generation)
    return model


def role(name: str) -> str:
    if name.endswith("_conv1"):
        return "block_conv1"
    if name.endswith("_conv2"):
        return "block_conv2"
    return "stem_fc"


def main(argv):
    del argv
    keras.utils.set_random_seed(0)
    ancestor = tf_evosyn.evolvable(build("resnet56"))
    variants = {"ancestor": ancestor}
    for name, environment in ENVIRONMENTS.items():
        variants[name] = lineage(ancestor, environment)
        variants[f"{name}+align16"] = lineage(ancestor, ChannelAlignment(environment, 16))
    table = LatencyTable(_THREADS.value, runs=_RUNS.value)
    results = {"variants": {}, "threads": _THREADS.value, "load_average": [os.getloadavg()]}
    tmp = Path(tempfile.mkdtemp(prefix="evosyn_breakdown_"))
    paths = {}
    for name, model in variants.items():
        plain = compact(model)
        paths[name] = tflite_ops.export_tflite(plain, tmp / name)
        ops = tflite_ops.op_histogram(paths[name])
        layer_ms = table.predict(plain)
        by_role = collections.defaultdict(float)
        for layer, ms in layer_ms.items():
            by_role[role(layer)] += ms
        shapes = layer_shapes(plain)
        results["variants"][name] = {
            "macs": count_flops(plain).total_dense_macs,
            "ops": dict(ops),
            "modelled_ms": dict(by_role),
            "block_conv1_out_channels": [
                s.out_channels for n, s in shapes.items() if role(n) == "block_conv1"
            ],
            "stream_channels": [s.out_channels for n, s in shapes.items() if n.endswith("conv2")],
        }
    samples = tflite_ops.interleaved_ms(
        paths, (1, 32, 32, 3), _THREADS.value, _ROUNDS.value, _RUNS.value, warmup=10
    )
    results["load_average"].append(os.getloadavg())
    probes = {}
    for size, cin, cout in PROBES:
        shape = LayerShape("conv", size, size, cin, cout, 3, 1, "same")
        probes[f"{size}x{size} {cin}->{cout}"] = {"ms": table.latency(shape), "macs": shape.macs()}
    table.save()
    results["probes_3x3"] = probes

    base = results["variants"]["ancestor"]
    base_ms = statistics.median(samples["ancestor"])
    rows = []
    for name, v in results["variants"].items():
        v["measured_ms"] = statistics.median(samples[name])
        v["round_ms"] = samples[name]
        v["modelled_total_ms"] = sum(v["modelled_ms"].values())
        v["unmodelled_ms"] = v["measured_ms"] - v["modelled_total_ms"]
        v["macs_ratio"] = base["macs"] / v["macs"]
        v["speedup"] = base_ms / v["measured_ms"]
        v["predicted_speedup"] = base["modelled_total_ms"] / v["modelled_total_ms"]
        v["share_of_promised_saving"] = common.promised_saving_share(v["speedup"], v["macs_ratio"])
        s = v["share_of_promised_saving"]
        rows.append(
            [
                name,
                f"{v['macs_ratio']:.2f}x",
                f"{v['measured_ms']:.3f}",
                f"{v['speedup']:.2f}x",
                "-" if s is None else f"{s:.2f}",
                f"{v['predicted_speedup']:.2f}x",
                f"{v['modelled_ms']['block_conv1']:.3f}",
                f"{v['modelled_ms']['block_conv2']:.3f}",
                f"{v['modelled_ms']['stem_fc']:.3f}",
                f"{v['unmodelled_ms']:.3f}",
                str(v["ops"].get("CONV_2D", 0)),
            ]
        )
    header = [
        "variant",
        "MACs ratio",
        "ms",
        "speedup",
        "share",
        "predicted",
        "conv1s ms",
        "conv2s ms",
        "stem+fc ms",
        "rest ms",
        "CONV_2D ops",
    ]
    print(
        f"ResNet-56, TFLite XNNPACK batch 1, {_THREADS.value} thread(s); load average "
        f"{results['load_average'][0][0]:.2f} -> {results['load_average'][1][0]:.2f}"
    )
    print(common.format_table(header, rows))
    print("3x3 conv alone (size in->out: ms, MACs):")
    print("\n".join(f"{k}: {v['ms']:.4f} ms / {v['macs']:,}" for k, v in probes.items()))
    common.write_results(_OUTPUT.value, results)


if __name__ == "__main__":
    app.run(main)
