"""Where DetectNet's TFLite time goes, by op family, before and after CrossChannelLRN's lowering.

    python benchmarks/latency_breakdown_detectnet.py [--input_size=96,320] [--generations=3]
        [--align_channels=32] [--rounds=3] [--runs=100] [--layer_runs=30]
        [--output=benchmarks/results/latency_breakdown_detectnet.json]

The lineage is latency.py's (benchmarks/latency_lineages.py: random-init DetectNet, seed 0,
configs/detectnet_kitti.py's environment wrapped in ChannelAlignment). The ancestor and the last
generation are each exported twice: with GoogLeNet's norm1/norm2 as TF's LRN op (what
CrossChannelLRN computed before: TFLite's builtin LOCAL_RESPONSE_NORMALIZATION, which XNNPACK
cannot take) and as CrossChannelLRN computes it now (a banded 1x1 convolution, exp and log; all
delegated). For each it prints the TFLite op histogram, the XNNPACK partitions and the ops left
outside them, and the 1-thread time of each op family -- every layer timed alone at its shapes
in the network (benchmarks/tflite_ops.py; convolutions by tf_evosyn.hardware.latency_model) less the
invoke overhead -- beside the whole model's time (interleaved rounds, CPU time), the MACs ratio,
the speedup and the share of the promised saving (1 - 1/speedup) / (1 - 1/MACs ratio).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import latency_lineages  # noqa: E402
import tflite_ops  # noqa: E402
from detectnet_breakdown import (  # noqa: E402
    FAMILIES,
    family_ms,
    lrn_ms,
    max_relative_difference,
    with_builtin_lrn,
)

from tf_evosyn.hardware.flops import count_flops  # noqa: E402
from tf_evosyn.hardware.latency_model import LatencyTable  # noqa: E402

_OUTPUT = flags.DEFINE_string(
    "output", "benchmarks/results/latency_breakdown_detectnet.json", "JSON path."
)
_INPUT_SIZE = flags.DEFINE_list("input_size", ["96", "320"], "HEIGHT,WIDTH (multiples of 16).")
_GENERATIONS = flags.DEFINE_integer("generations", 3, "The offspring compared: this generation.")
_ALIGN = flags.DEFINE_integer("align_channels", 32, "ChannelAlignment multiple (0: none).")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Interleaved rounds of whole-model timing.")
_RUNS = flags.DEFINE_integer("runs", 100, "Timed invokes per model and round.")
_LAYER_RUNS = flags.DEFINE_integer("layer_runs", 30, "Timed invokes per layer alone.")


def input_size() -> tuple[int, int]:
    sizes = _INPUT_SIZE.value
    if len(sizes) != 2 or not all(v.strip().isdigit() for v in sizes):
        raise app.UsageError(f"--input_size wants HEIGHT,WIDTH (e.g. 96,320), got {sizes}.")
    return int(sizes[0]), int(sizes[1])


def main(argv):
    del argv
    size = input_size()
    environment = latency_lineages.environment_for("detectnet", 0.0, _ALIGN.value)
    lineage = latency_lineages.drawn_lineage("detectnet", _GENERATIONS.value, environment, size)
    generations = {"ancestor": lineage[0], f"generation {_GENERATIONS.value}": lineage[-1]}
    table = LatencyTable(threads=1)
    results = {
        "input_size": list(size),
        "generation": _GENERATIONS.value,
        "align_channels": _ALIGN.value,
        "environment": repr(environment),
        "load_average": [os.getloadavg()],
        "variants": {},
    }
    tmp = Path(tempfile.mkdtemp(prefix="evosyn_breakdown_detectnet_"))
    paths = {}
    for gen_name, model in generations.items():
        builtin = with_builtin_lrn(model)
        difference = max_relative_difference(model, builtin)
        delegated = family_ms(model, table, _LAYER_RUNS.value)
        builtin_lrn = lrn_ms(builtin, table, _LAYER_RUNS.value)
        for lowering, variant, families in (
            ("builtin LRN", builtin, {**delegated, "LRN": builtin_lrn}),
            ("delegated LRN", model, delegated),
        ):
            name = f"{gen_name}, {lowering}"
            paths[name] = tflite_ops.export_tflite(variant, tmp / name.replace(" ", "_"))
            results["variants"][name] = {
                "macs": count_flops(model).total_dense_macs,
                "ops": tflite_ops.op_histogram(paths[name]),
                **tflite_ops.delegation(paths[name]),
                "family_ms": families,
                "lowering_max_relative_difference": difference,
            }
    samples = tflite_ops.interleaved_ms(
        paths, (1, *size, 3), 1, _ROUNDS.value, _RUNS.value, warmup=5
    )
    results["load_average"].append(os.getloadavg())
    report(results, samples)
    common.write_results(_OUTPUT.value, results)


def share_text(share: float | None) -> str:
    return "-" if share is None else f"{share:.2f}"


def report(results: dict, samples: dict[str, list[float]]) -> None:
    """Fill in measured times, speedups and shares; print the family and summary tables."""
    variants = results["variants"]
    names = list(variants)
    for name, v in variants.items():
        v["round_ms"] = samples[name]
        v["measured_ms"] = statistics.median(samples[name])
        v["sum_of_families_ms"] = sum(v["family_ms"].values())
        v["rest_ms"] = v["measured_ms"] - v["sum_of_families_ms"]
    for name, v in variants.items():
        base = variants[names[0] if "builtin" in name else names[1]]
        v["macs_ratio"] = base["macs"] / v["macs"]
        v["speedup"] = base["measured_ms"] / v["measured_ms"]
        v["share_of_promised_saving"] = common.promised_saving_share(v["speedup"], v["macs_ratio"])

    header = ["family"] + [f"{n} ms (%)" for n in names]
    rows = []
    for kind in (*FAMILIES, "rest (measured - sum)"):
        row = [kind]
        for v in variants.values():
            ms = v["rest_ms"] if kind.startswith("rest") else v["family_ms"][kind]
            row.append(f"{ms:.2f} ({100 * ms / v['measured_ms']:.0f}%)")
        rows.append(row)
    rows.append(["measured"] + [f"{v['measured_ms']:.2f}" for v in variants.values()])
    load = results["load_average"]
    print(
        f"DetectNet {results['input_size']}, align {results['align_channels']}, TFLite XNNPACK "
        f"batch 1, 1 thread (CPU time); load average {load[0][0]:.2f} -> {load[1][0]:.2f}"
    )
    print(common.format_table(header, rows))
    summary = [
        [
            name,
            f"{v['macs_ratio']:.2f}x",
            f"{v['measured_ms']:.2f}",
            f"{v['speedup']:.2f}x",
            "-"
            if v["share_of_promised_saving"] is None
            else f"{v['share_of_promised_saving']:.2f}",
            str(v["partitions"]),
            ", ".join(v["undelegated"]) or "-",
            f"{v['lowering_max_relative_difference']:.1e}",
        ]
        for name, v in variants.items()
    ]
    header = ["variant", "MACs ratio", "ms", "speedup", "share", "XNNPACK partitions"]
    print(common.format_table(header + ["not delegated", "lowering rel. diff"], summary))


if __name__ == "__main__":
    app.run(main)
