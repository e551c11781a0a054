"""Keras Applications coverage table: evolve, synthesize, compact every family and check it.

    EVOSYN_DATA_DIR=/work/shared/datasets python benchmarks/zoo_coverage.py \
        [--selection=default|all|VGG16,Xception,...] [--output=benchmarks/results/zoo_coverage.json]

``default`` is one constructor per family (what ``tests/package/test_zoo_coverage.py`` runs);
``all`` is every constructor of :data:`tf_evosyn.zoo.FAMILIES` (the largest need tens of GB of
memory). Each constructor runs in its own process (memory is returned between models) through
:func:`tf_evosyn.zoo.check_application`: ``weights=None``, the smallest input, 10 classes, random
BatchNorm statistics, ``ConstantFactor(0.7, 1.0)``, 4 real CIFAR-10 images resized to the input.
Prints a Markdown table (the README's) and writes every row as JSON, atomically.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from absl import app, flags

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tf_evosyn import zoo  # noqa: E402
from tf_evosyn.storage.io_utils import atomic_write_json  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("selection", "default", "default | all | comma-separated constructors")
flags.DEFINE_string("output", str(REPO / "benchmarks/results/zoo_coverage.json"), "JSON output")
flags.DEFINE_integer("timeout", 3600, "seconds per constructor")

_ONE = """
import json, sys
import numpy as np
import tf_evosyn
from tf_evosyn import zoo
from tf_evosyn._keras import tf
name, size = sys.argv[1], zoo.input_size(sys.argv[1])
with np.load(sys.argv[2] + "/cifar10_subset/cifar10_data_batch_1_first4000.npz") as data:
    images = tf.image.resize(data["x"][:4].astype(np.float32) / 255.0, (size, size)).numpy()
print("RESULT " + json.dumps(zoo.check_application(name, images).as_dict()))
"""


def _selection(value: str) -> list[str]:
    if value in ("default", "all"):
        return [
            name
            for members in zoo.FAMILIES.values()
            for name, _ in (members if value == "all" else members[:1])
        ]
    return [name.strip() for name in value.split(",") if name.strip()]


def _run(name: str, data_dir: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    try:
        done = subprocess.run(
            [sys.executable, "-c", _ONE, name, data_dir],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=FLAGS.timeout,
        )
    except subprocess.TimeoutExpired:
        return {"constructor": name, "family": zoo.family_of(name), "error": "timeout"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"constructor": name, "family": zoo.family_of(name), "error": tail[0][:300]}


def table(rows: list[dict]) -> str:
    lines = [
        "| family | constructor | input | passes | params before | params after | removed "
        "| clusters | rel. difference | seconds |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['family']} | {r['constructor']} | | no: {r['error']} | | | | | | |")
            continue
        lines.append(
            f"| {r['family']} | {r['constructor']} | {r['input_size']} "
            f"| {'yes' if r['passes'] else 'no'} | {r['params_before']:,} | {r['params_after']:,} "
            f"| {r['removed_fraction']:.1%} | {r['clusters_before']:,} -> {r['clusters_after']:,} "
            f"| {r['relative_difference']:.1e} "
            f"| {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    del argv
    data_dir = os.environ.get("EVOSYN_DATA_DIR", "/work/shared/datasets")
    rows = []
    for name in _selection(FLAGS.selection):
        rows.append(_run(name, data_dir))
        print(json.dumps(rows[-1]), flush=True)
    print(table(rows))
    atomic_write_json(Path(FLAGS.output), {"selection": FLAGS.selection, "rows": rows})


if __name__ == "__main__":
    app.run(main)
