"""What the CIFAR-10 benchmark prints per model: data, recipe, one row per generation, and the
training throughput line."""

from __future__ import annotations

import common


def format_table(rows: list[dict]) -> str:
    header = [
        "gen",
        "acc %",
        "synapses",
        "clusters",
        "syn. eff",
        "clu. eff",
        "MACs (compact)",
        "MACs x",
        "TFLite ms",
        "vs anc",
        "accepted",
    ]
    table = [header]
    for r in rows:
        latency = r.get("tflite_ms")
        table.append(
            [
                str(r["generation"]),
                "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f}",
                f"{r['synapses']:,}",
                f"{r['clusters']:,}",
                common.efficiency_text(r["synaptic_efficiency"]),
                common.efficiency_text(r["cluster_efficiency"]),
                f"{r['macs']:,}",
                f"{r['mac_reduction']:.2f}x",
                "-" if latency is None else f"{latency:.3f}",
                "-" if r.get("latency_speedup") is None else f"{r['latency_speedup']:.2f}x",
                "yes" if r["accepted"] else "no",
            ]
        )
    return common.aligned_table(table, left_first=False)


def print_model(result: dict, settings: dict) -> None:
    """One model's block: data, recipe, the per-generation table and the throughput line.
    ``settings``: the benchmark's flag values (tflite_threads, latency_rounds, latency_runs,
    throughput_warmup_steps)."""
    data = result["data"]
    train = result["config"]["train"]
    print()
    print(f"== {result['model']} ==  ({result['workdir']})")
    print(f"DATA: {data['description']}")
    if data["warning"]:
        print(f"WARNING: {data['warning']}")
    schedule = train["schedule"]
    if schedule == "piecewise":
        schedule += f" {train['boundaries_epochs']} x{train['decay_factor']}"
    print(
        f"ancestor: {train['epochs']} epoch(s), {train['optimizer']} lr {train['learning_rate']} "
        f"momentum {train['momentum']} {schedule}, batch {train['batch_size']}; "
        f"evolution: {result['config']['evolution']['epochs_per_generation']} epoch(s) per "
        f"generation, environment {result['config']['evolution']['environment']}"
    )
    print(
        f"TFLite: batch 1, {settings['tflite_threads']} thread(s), median of "
        f"{settings['latency_rounds']} rounds x {settings['latency_runs']} runs; MACs per image "
        "after compaction"
    )
    print(format_table(result["generations"]))
    t = result["throughput"]
    print(
        f"training throughput (median of {len(t['ancestor']['epoch_seconds'])} x 1 epoch of "
        f"{t['images_per_epoch']} images, batch "
        f"{t['batch_size']}, {t['replicas']} replica(s), after "
        f"{settings['throughput_warmup_steps']} warm-up steps): ancestor "
        f"{t['ancestor']['images_per_second']:.1f} img/s, compacted "
        f"best (gen {t['best_generation']}) {t['compact_best']['images_per_second']:.1f} img/s "
        f"({t['speedup']:.2f}x)"
    )
