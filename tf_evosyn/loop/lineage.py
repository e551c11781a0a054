"""The record of an evolutionary run: one JSON line per generation in ``lineage.jsonl``.

Generation 0 is the ancestor network; every later line is one offspring (accepted or not). The
file is the source of truth for resuming a killed run and for the paper-style results table, so
it is always rewritten atomically and validated strictly on load. Tables, plots and TensorBoard
summaries of a lineage live in lineage_report.py, which reads this module (never the reverse).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from tf_evosyn.storage import fs, io_utils

__all__ = [
    "LAYER_KEYS",
    "LINEAGE_FILENAME",
    "Lineage",
    "REQUIRED_KEYS",
    "metric_of",
    "score_of",
    "efficiencies",
    "upgrade_record",
    "validate_record",
]

LINEAGE_FILENAME = "lineage.jsonl"

REQUIRED_KEYS: tuple[str, ...] = (
    "generation",
    "metric",  # the primary score's name ("accuracy" for classification)
    "score",  # the primary score (higher is better); classification records also keep "accuracy"
    "synapses",
    "clusters",
    "synaptic_efficiency",
    "cluster_efficiency",
    "accepted",
    "seconds",
    "seed",
    "layers",
)
LAYER_KEYS: tuple[str, ...] = ("name", "synapses", "clusters", "total_synapses", "total_clusters")

_CRITERIA = ("most_efficient", "most_accurate")


def efficiencies(
    ancestor_synapses: int, ancestor_clusters: int, synapses: int, clusters: int
) -> tuple[float, float]:
    """Return (synaptic, cluster) efficiency = ancestor count / current count, as in the paper.

    A network with no living synapses/clusters left has infinite efficiency (and is useless);
    that is reported as ``inf`` rather than raising so the run log still records it.
    """
    if ancestor_synapses <= 0 or ancestor_clusters <= 0:
        raise ValueError(
            f"ancestor counts must be positive, got synapses={ancestor_synapses}, "
            f"clusters={ancestor_clusters}"
        )
    if synapses < 0 or clusters < 0:
        raise ValueError(f"counts must be >= 0, got synapses={synapses}, clusters={clusters}")
    syn = ancestor_synapses / synapses if synapses else math.inf
    clu = ancestor_clusters / clusters if clusters else math.inf
    return float(syn), float(clu)


def upgrade_record(record: Any) -> Any:
    """Records written before tasks existed have ``accuracy`` only: give them ``metric`` and
    ``score`` so that old classification run directories still load and resume."""
    if isinstance(record, Mapping) and "score" not in record and "accuracy" in record:
        return {**record, "metric": "accuracy", "score": record["accuracy"]}
    return record


def score_of(record: Mapping[str, Any]) -> float:
    """The primary score of a record (``accuracy`` for records older than tasks)."""
    return upgrade_record(record)["score"]


def metric_of(records: Sequence[Mapping[str, Any]]) -> str:
    """The name of the primary score of a run's records."""
    return upgrade_record(records[0]).get("metric", "accuracy") if records else "accuracy"


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _record_problems(record: Any) -> list[str]:
    """List what is wrong with a record (empty if it is valid)."""
    if not isinstance(record, Mapping):
        return [f"record must be a JSON object/dict, got {type(record).__name__}"]
    record = upgrade_record(record)
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        return [f"missing required key(s) {missing}"]
    problems = []
    for key in ("generation", "synapses", "clusters", "seed"):
        if not _is_int(record[key]):
            problems.append(f"{key!r} must be an int, got {record[key]!r}")
    for key in ("score", "synaptic_efficiency", "cluster_efficiency", "seconds"):
        if not _is_number(record[key]):
            problems.append(f"{key!r} must be a number, got {record[key]!r}")
    if not isinstance(record["metric"], str) or not record["metric"]:
        problems.append(f"'metric' must be the primary score's name, got {record['metric']!r}")
    if "accuracy" in record and not _is_number(record["accuracy"]):
        problems.append(f"'accuracy' must be a number, got {record['accuracy']!r}")
    elif "accuracy" in record and not 0.0 <= record["accuracy"] <= 1.0:
        problems.append(f"'accuracy' must be a fraction in [0, 1], got {record['accuracy']!r}")
    if not isinstance(record["accepted"], bool):
        problems.append(f"'accepted' must be a bool, got {record['accepted']!r}")
    layers = record["layers"]
    if not isinstance(layers, list):
        problems.append(f"'layers' must be a list, got {type(layers).__name__}")
    else:
        for i, layer in enumerate(layers):
            if not isinstance(layer, Mapping):
                problems.append(f"layers[{i}] must be an object, got {type(layer).__name__}")
                continue
            lmissing = [k for k in LAYER_KEYS if k not in layer]
            if lmissing:
                problems.append(f"layers[{i}] is missing key(s) {lmissing}")
    return problems


def validate_record(record: Mapping[str, Any]) -> None:
    """Raise ValueError listing every problem, so a bad record never reaches the file."""
    problems = _record_problems(record)
    if problems:
        gen = record.get("generation", "?") if isinstance(record, Mapping) else "?"
        raise ValueError(f"invalid lineage record (generation {gen}): " + "; ".join(problems))


def _encode_line(record: Mapping[str, Any]) -> str:
    return json.dumps(io_utils.to_jsonable(record), sort_keys=True, separators=(",", ":"))


TIMING_KEYS = ("seconds", "seconds_per_epoch")


def without_timing(value: Any) -> Any:
    """Records without their wall-clock fields (``seconds`` and ``seconds_per_epoch`` at any
    depth: every candidate has them), so lineages of the same run made apart (resumed, or by
    other numbers of workers) compare equal."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


class Lineage:
    """Append-only, crash-safe list of generation records backed by ``lineage.jsonl``.

    ``path`` is either the ``.jsonl`` file itself or the run directory that holds
    ``lineage.jsonl``, local or remote (:mod:`tf_evosyn.storage.fs`). Existing records are loaded
    and
    validated, so a resumed run continues from ``last_generation + 1``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        p = fs.path(path)
        self.path: fs.RunPath = p if str(p).endswith(".jsonl") else fs.join(p, LINEAGE_FILENAME)
        self._records: list[dict[str, Any]] = []
        if fs.exists(self.path):
            self._records = self._load()

    def reload(self) -> Lineage:
        """Read the file again (another process, the leading worker, commits to it)."""
        self._records = self._load() if fs.exists(self.path) else []
        return self

    def _corrupt(self, lineno: int, why: str) -> ValueError:
        return ValueError(
            f"{self.path}, line {lineno}: {why}. The lineage file is corrupt; restore "
            f"{fs.basename(self.path)} from a backup, or delete the run directory "
            f"{fs.parent(self.path)} to start the run over."
        )

    def _load(self) -> list[dict[str, Any]]:
        lines = fs.read_text(self.path).split("\n")
        while lines and not lines[-1].strip():
            lines.pop()  # the trailing newline (or blank tail) is not a record
        records: list[dict[str, Any]] = []
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                raise self._corrupt(lineno, "empty line")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise self._corrupt(lineno, f"not valid JSON ({e.msg} at column {e.colno})") from e
            problems = _record_problems(record)
            if problems:
                raise self._corrupt(lineno, "; ".join(problems))
            record = upgrade_record(record)
            expected = records[-1]["generation"] + 1 if records else 0
            if record["generation"] != expected:
                raise self._corrupt(
                    lineno,
                    f"generation {record['generation']} where {expected} was expected "
                    "(generations must count up from 0 without gaps)",
                )
            records.append(record)
        return records

    @property
    def records(self) -> list[dict[str, Any]]:
        """All records, oldest first (a new list; the dicts themselves are shared)."""
        return list(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(list(self._records))

    @property
    def last_generation(self) -> int:
        """Generation of the newest record, -1 if there is none (so the next one is +1)."""
        return self._records[-1]["generation"] if self._records else -1

    @property
    def ancestor(self) -> dict[str, Any] | None:
        """The generation-0 record, the baseline for efficiencies; None before it is written."""
        return self._records[0] if self._records else None

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and add the next generation, rewriting the file atomically.

        Returns the stored (JSON-normalised) record. Numpy numbers are converted first, so
        ``np.float32`` accuracies and ``np.int64`` counts are accepted.
        """
        normalised = upgrade_record(json.loads(_encode_line(record)))
        validate_record(normalised)
        expected = self.last_generation + 1
        if normalised["generation"] != expected:
            raise ValueError(
                f"{self.path}: cannot append generation {normalised['generation']}; the next "
                f"generation must be {expected} (last recorded is {self.last_generation})"
            )
        new_records = [*self._records, normalised]
        text = "".join(_encode_line(r) + "\n" for r in new_records)
        io_utils.atomic_write_text(self.path, text)
        self._records = new_records
        return normalised

    def accepted_records(self) -> list[dict[str, Any]]:
        """Records whose offspring was kept (the ancestor counts if it is marked accepted)."""
        return [r for r in self._records if r["accepted"]]

    def best(self, criterion: str = "most_efficient") -> dict[str, Any] | None:
        """Pick the record to report/export.

        ``most_efficient``: accepted offspring (generation >= 1) with the highest cluster
        efficiency, then synaptic efficiency; None if no offspring was accepted.
        ``most_accurate``: highest primary score (accuracy for classification) among the
        ancestor and accepted offspring.
        Ties go to the later generation (the smaller network in practice).
        """
        if criterion == "most_efficient":
            pool = [r for r in self._records if r["accepted"] and r["generation"] >= 1]
            key = lambda r: (r["cluster_efficiency"], r["synaptic_efficiency"], r["generation"])
        elif criterion == "most_accurate":
            pool = [r for r in self._records if r["accepted"] or r["generation"] == 0]
            key = lambda r: (r["score"], r["generation"])
        else:
            raise ValueError(f"unknown criterion {criterion!r}; expected one of {_CRITERIA}")
        return max(pool, key=key) if pool else None
