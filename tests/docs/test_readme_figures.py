"""Every figure the benchmark tables of README.md and docs/*.md print comes from
benchmarks/results/*.json.

Tables are found by their header row in any of those files (so sections can move between them;
a header found twice fails), every number is compared with the JSON value at the precision the
text prints it, and a row that has no JSON counterpart fails. The main job's timing sentence is
checked in README.md itself.
"""

import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
# README.md and the docs the benchmark tables and lab notes live in, by path relative to REPO.
TEXTS = {
    str(path.relative_to(REPO)): path.read_text()
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
}
README_MD = TEXTS["README.md"]
ALL_TEXT = "\n\n".join(TEXTS.values())  # every text at once, for the sentences checked below


def _results(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def _cells(line: str) -> list[str]:
    return [c.strip().replace("**", "") for c in line.strip().strip("|").split("|")]


def _find_table(starts: Callable[[str], bool], what: str) -> tuple[str, list[str]]:
    """The one table (in README.md or docs/*.md) whose header line ``starts`` accepts: its
    file and its lines from the header on, up to the first line that is not a table row."""
    found = [
        (name, lines[i:])
        for name, text in TEXTS.items()
        for lines in [text.splitlines()]
        for i, line in enumerate(lines)
        if line.startswith("|") and starts(line)
    ]
    assert found, f"neither README.md nor docs/*.md has a table with header {what}"
    assert len(found) == 1, f"table {what} is in more than one place: {[n for n, _ in found]}"
    name, lines = found[0]
    assert len(lines) > 1 and re.fullmatch(r"\|[-|: ]+\|", lines[1].strip()), (
        f"{name}: no separator under {lines[0]}"
    )
    return name, list(itertools.takewhile(lambda line: line.startswith("|"), lines))


def table(first_header_cells: list[str]) -> list[dict[str, str]]:
    """The table whose header starts with these cells, as one dict per body row."""
    _, lines = _find_table(
        lambda line: _cells(line)[: len(first_header_cells)] == first_header_cells,
        str(first_header_cells),
    )
    header = _cells(lines[0])
    return [dict(zip(header, _cells(body), strict=True)) for body in lines[2:]]


def number(text: str) -> tuple[float, int]:
    """The first number in ``text`` ("1,687", "98.42", "5.28x") and its printed decimals."""
    match = re.search(r"-?\d[\d,]*(?:\.(\d+))?", text)
    assert match, f"no number in {text!r}"
    return float(match.group(0).replace(",", "")), len(match.group(1) or "")


def printed_as(text: str, actual: float) -> bool:
    """Does ``text`` show ``actual`` rounded to the decimals it prints?"""
    value, decimals = number(text)
    return abs(actual - value) <= 0.5 * 10.0**-decimals + 1e-9 * max(1.0, abs(value))


def check(row: dict, column: str, actual: float, where: str) -> None:
    assert printed_as(row[column], actual), (
        f"{where}, column {column!r}: {row[column]!r} but the JSON has {actual!r}"
    )


def test_main_job_timing_sentence_matches_the_benchmark_run():
    lineage = _results("mnist_lenet5.json")["lineage"]
    match = re.search(
        r"about (\d+) s per ancestor epoch, (\d+)-(\d+) s per\s+fine-tuning epoch of an "
        r"offspring, ~(\d+) minutes in all",
        README_MD,
    )
    assert match, "README's main-job timing sentence changed; update this test with it"
    ancestor, low, high, minutes = (int(g) for g in match.groups())
    assert round(lineage[0]["seconds"] / lineage[0]["epochs"]) == ancestor
    per_epoch = [r["seconds"] / (r["epochs"] * r["attempts"]) for r in lineage[1:]]
    assert (round(min(per_epoch)), round(max(per_epoch))) == (low, high)
    assert round(sum(r["seconds"] for r in lineage) / 60) == minutes


@pytest.mark.parametrize(
    "gen_header, json_name",
    [("gen", "mnist_lenet5.json"), ("gen (ReLU)", "mnist_lenet5_relu.json")],
)
def test_lenet5_table_matches_its_json(gen_header, json_name):
    results = _results(json_name)
    lineage = {r["generation"]: r for r in results["lineage"]}
    rows = table([gen_header, "val %", "test %", "synapses"])
    generation = {id(r): int(r[gen_header].split()[0]) for r in rows}  # "15 (final)" -> 15
    assert [generation[id(r)] for r in rows] == sorted(lineage)
    best = results["verdict"]["best_generation"]
    for row in rows:
        record, where = lineage[generation[id(row)]], f"{json_name} gen {row[gen_header]}"
        assert row[gen_header].endswith("(final)") == bool(record.get("final")), where
        check(row, "val %", 100 * record["accuracy"], where)  # the selection split
        check(row, "test %", 100 * record["test_accuracy"], where)
        check(row, "synapses", record["synapses"], where)
        check(row, "clusters", record["clusters"], where)
        check(row, "synaptic eff.", record["synaptic_efficiency"], where)
        check(row, "cluster eff.", record["cluster_efficiency"], where)
        accepted = row["accepted"]
        if record["generation"] == 0:
            assert accepted == "ancestor"
        else:
            assert accepted.startswith("yes" if record["accepted"] else "no"), where
            assert ("(best)" in accepted) == (record["generation"] == best), where


def test_lenet5_prose_about_the_best_generation_matches():
    results = _results("mnist_lenet5.json")
    best = results["verdict"]["best_generation"]
    layers = {layer["name"]: layer for layer in results["lineage"][best]["layers"]}
    match = re.search(
        r"Generation (\d+) keeps conv1 (\d+)/(\d+) filters, conv2 (\d+)/(\d+), fc1 (\d+)/(\d+)",
        ALL_TEXT,
    )
    assert match, "The sentence about the best LeNet-5 generation changed"
    values = [int(g) for g in match.groups()]
    assert values[0] == best
    for i, name in enumerate(("conv1", "conv2", "fc1")):
        alive, total = values[1 + 2 * i], values[2 + 2 * i]
        assert (layers[name]["clusters"], layers[name]["total_clusters"]) == (alive, total), name


LATENCY_VARIANTS = {
    "ancestor": "ancestor",
    "masked offspring": "masked_offspring",
    "compacted offspring": "compact_offspring",
    "TF-MOT pruned + stripped": "tfmot_pruned",
}


def test_latency_table_matches_latency_lenet5_json():
    variants = _results("latency_lenet5.json")["variants"]
    rows = table(["variant", "params", "nonzero weights"])
    assert {r["variant"] for r in rows} == set(LATENCY_VARIANTS)
    for row in rows:
        entry, where = variants[LATENCY_VARIANTS[row["variant"]]], f"latency {row['variant']}"
        check(row, "params", entry["parameters"], where)
        check(row, "nonzero weights", entry["nonzero_kernel_weights"], where)
        check(row, "MACs", entry["macs"], where)
        check(row, "TFLite KB", entry["tflite_bytes"] / 1024, where)
        for column, key in (
            ("TFLite 1 thread", "tflite_1t"),
            ("TFLite 2 threads", "tflite_2t"),
            ("SavedModel", "savedmodel"),
        ):
            check(row, column, entry["latency"][key]["median_ms"], where)
            speedup = re.search(r"\(([\d.]+)x\)", row[column]).group(1)
            assert printed_as(speedup, entry["speedup_vs_ancestor"][key]), f"{where} {column}"


BREAKDOWN_COLUMNS = {  # table column -> op families summed (latency_breakdown_detectnet.json)
    "stem conv": ("stem conv",),
    "inception + head conv": ("inception conv", "head conv"),
    "LRN": ("LRN",),
    "pools, concats, pad, mean": ("max pool", "concat", "pad+mean", "sigmoid"),
}


def test_detectnet_breakdown_table_matches_its_json():
    variants = _results("latency_breakdown_detectnet.json")["variants"]
    rows = table(["DetectNet 96x320, 1 thread", "MACs ratio"])
    assert {r["DetectNet 96x320, 1 thread"] for r in rows} == set(variants)
    for row in rows:
        name = row["DetectNet 96x320, 1 thread"]
        entry, where = variants[name], f"DetectNet breakdown {name}"
        check(row, "MACs ratio", entry["macs_ratio"], where)
        check(row, "ms", entry["measured_ms"], where)
        check(row, "speedup", entry["speedup"], where)
        share = entry["share_of_promised_saving"]
        assert row["share"] == "-" if share is None else printed_as(row["share"], share), where
        for column, families in BREAKDOWN_COLUMNS.items():
            check(row, column, sum(entry["family_ms"][f] for f in families), where)
        check(row, "rest", entry["rest_ms"], where)
        check(row, "XNNPACK partitions", entry["partitions"], where)


def _tfmot_name(label: str) -> str:
    if label == "ancestor":
        return "ancestor (gen 0)"
    if m := re.fullmatch(r"TF-MOT (\d+:\d+)", label):
        return f"tfmot {m.group(1)}"
    if m := re.fullmatch(r"TF-MOT ([\d.]+)", label):
        return f"tfmot poly {m.group(1)}"
    if m := re.fullmatch(r"evolution gen (\d+)", label):
        return f"evo gen {m.group(1)}"
    raise AssertionError(f"TF-MOT table row {label!r} has no JSON counterpart")


def test_tfmot_comparison_table_matches_compare_tfmot_json():
    by_name = {r["name"]: r for r in _results("compare_tfmot.json")["rows"]}
    rows = table(["row", "acc %", "synapses"])
    assert rows
    for row in rows:
        entry, where = by_name[_tfmot_name(row["row"])], f"TF-MOT table {row['row']}"
        check(row, "acc %", 100 * entry["accuracy"], where)
        check(row, "synapses", entry["synapses"], where)
        check(row, "syn. eff.", entry["synaptic_efficiency"], where)
        check(row, "clusters", entry["clusters"], where)
        check(row, "clu. eff.", entry["cluster_efficiency"], where)
        check(row, "MACs deployed", entry["macs"], where)
        check(row, "TFLite ms", entry["latency_ms"], where)
        check(row, "speedup", entry["speedup_vs_ancestor"], where)


CIFAR_NETWORKS = {"ResNet-56": "resnet56", "AlexNet": "alexnet_cifar"}


def test_cifar10_table_matches_cifar10_json():
    models = _results("cifar10.json")["models"]
    rows = table(["network", "gen", "acc %"])
    network, seen = None, set()
    for row in rows:
        network = row["network"] or network  # a blank cell continues the network above
        model = models[CIFAR_NETWORKS[network]]
        entry = {g["generation"]: g for g in model["generations"]}[int(row["gen"])]
        where = f"CIFAR-10 {network} gen {row['gen']}"
        check(row, "acc %", 100 * entry["accuracy"], where)
        check(row, "synapses", entry["synapses"], where)
        check(row, "clusters", entry["clusters"], where)
        check(row, "syn. eff.", entry["synaptic_efficiency"], where)
        check(row, "clu. eff.", entry["cluster_efficiency"], where)
        check(row, "MACs compacted", entry["macs"], where)
        latency = row["TFLite ms (vs ancestor)"]
        check(row, "TFLite ms (vs ancestor)", entry["tflite_ms"], where)
        speedup = re.search(r"\(([\d.]+)x\)", latency).group(1)
        assert printed_as(speedup, entry["latency_speedup"]), where
        assert ("rejected" in latency) == (not entry["accepted"]), where
        seen.add((network, int(row["gen"])))
    expected = {
        (label, g["generation"])
        for label, key in CIFAR_NETWORKS.items()
        for g in models[key]["generations"]
    }
    assert seen == expected, "The CIFAR-10 table misses generations the JSON has"


def test_cifar10_throughput_sentence_matches_cifar10_json():
    models = _results("cifar10.json")["models"]
    alexnet, resnet = models["alexnet_cifar"]["throughput"], models["resnet56"]["throughput"]
    match = re.search(
        r"AlexNet ([\d,]+) img/s \(ancestor\) vs ([\d,]+) img/s \(compacted generation (\d+), "
        r"([\d.]+)x\)",
        ALL_TEXT,
    )
    assert match, "The AlexNet throughput sentence changed; update this test with it"
    assert printed_as(match.group(1), alexnet["ancestor"]["images_per_second"])
    assert printed_as(match.group(2), alexnet["compact_best"]["images_per_second"])
    assert int(match.group(3)) == alexnet["best_generation"]
    assert printed_as(match.group(4), alexnet["speedup"])
    match = re.search(r"single timed epoch \((\d+) vs (\d+) img/s\)", ALL_TEXT)
    assert match, "The ResNet-56 throughput sentence changed; update this test with it"
    assert printed_as(match.group(1), resnet["ancestor"]["images_per_second"])
    assert printed_as(match.group(2), resnet["compact_best"]["images_per_second"])


@pytest.mark.parametrize(
    "text, actual, ok",
    [
        ("98.42", 98.42, True),
        ("1,687", 1687.1, True),
        ("5.28x", 5.2813, True),
        ("5.28x", 5.3, False),
    ],
)
def test_printed_as_compares_at_the_printed_precision(text, actual, ok):
    assert printed_as(text, actual) is ok


NETWORK_ROWS = {  # table "network" cell -> (network key, JSON files whose cells the row fills)
    "LeNet-5 (trained widths)": ("lenet5", ("align0",)),
    "LeNet-5 (drawn)": ("lenet5", ("align16",)),
    "ResNet-56": ("resnet56", ("align0", "align16")),
    "AlexNet": ("alexnet_cifar", ("align0", "align16")),
    "DetectNet": ("detectnet", ("align0", "align16")),
}


def _network_table_rows() -> list[list[str]]:
    """Body rows of the per-generation table as cell lists (its column names repeat)."""
    _, lines = _find_table(lambda line: line.startswith("| network | gen | MACs"), "network/gen")
    return [_cells(line) for line in lines[2:]]


def test_network_generation_table_matches_latency_networks_jsons():
    results = {a: _results(f"latency_networks_{a}.json")["networks"] for a in ("align0", "align16")}
    name = None
    for cells in _network_table_rows():
        name = cells[0] or name
        network, files = NETWORK_ROWS[name]
        where = f"per-generation table {name} gen {cells[1]}"
        columns = {"align0": (2, ("1", "2")), "align16": (8, ("1",))}
        for align in files:
            rows = results[align][network]["rows"]
            (entry,) = [r for r in rows if r["generation"] == int(cells[1])]
            first, threads = columns[align]
            values = [entry["macs_ratio"]]
            for t in threads:
                values += [entry["speedup"][t], entry["share_of_promised_saving"][t]]
            values.append(entry["predicted_speedup"])
            for offset, actual in enumerate(values):
                assert printed_as(cells[first + offset], actual), (
                    f"{where}, cell {first + offset}: {cells[first + offset]!r} but "
                    f"latency_networks_{align}.json has {actual!r}"
                )


def test_final_fine_tuning_table_matches_its_json():
    """The ReLU run resumed with final_epochs = 12 and 20: the final record's accuracies, its
    seconds and the whole evolution's cost; row 0 is the generation it polished."""
    rows = {r["final epochs"].split()[0]: r for r in table(["final epochs", "val %", "test %"])}
    assert sorted(rows) == ["0", "12", "20"]
    for epochs in ("12", "20"):
        results = _results(f"mnist_lenet5_relu_final{epochs}.json")
        final = results["lineage"][-1]
        where = f"final {epochs}"
        assert final["final"] and final["epochs"] == int(epochs), where
        check(rows[epochs], "val %", 100 * final["accuracy"], where)
        check(rows[epochs], "test %", 100 * final["test_accuracy"], where)
        check(rows[epochs], "final seconds", final["seconds"], where)
        check(rows[epochs], "evolution / ancestor", results["verdict"]["time"]["ratio"], where)
        polished = results["lineage"][final["parent"]]
        check(rows["0"], "val %", 100 * polished["accuracy"], where)
        check(rows["0"], "test %", 100 * polished["test_accuracy"], where)
        offspring = sum(r["seconds"] for r in results["lineage"][1:-1])
        ancestor = results["lineage"][0]["seconds"]
        check(rows["0"], "evolution / ancestor", offspring / ancestor, where)


def test_final_fine_tuning_sentence_on_the_main_run_matches_its_json():
    lineage = _results("mnist_lenet5_final20.json")["lineage"]
    final, polished = lineage[-1], lineage[lineage[-1]["parent"]]
    assert final["final"] and final["epochs"] == 20
    flat = " ".join(ALL_TEXT.split())
    val, test = 100 * polished["accuracy"], 100 * polished["test_accuracy"]
    before = f"from {val:.2f}% validation / {test:.2f}% test"
    after = f"to **{100 * final['accuracy']:.2f}% / {100 * final['test_accuracy']:.2f}% test**"
    assert before in flat and after in flat
    assert f"{final['synaptic_efficiency']:.1f}x / {final['cluster_efficiency']:.2f}x" in flat


def test_kitti_table_is_the_benchmarks_own():
    """docs/benchmarks.md prints the KITTI lineage exactly as benchmarks/kitti_detectnet.py
    printed it (its JSON keeps the printed table)."""
    printed = _results("kitti_detectnet.json")["table"]
    rows = table(printed["header"][:2])
    assert [list(r) for r in rows[:1]] == [printed["header"]]
    assert [list(r.values()) for r in rows] == printed["rows"]
