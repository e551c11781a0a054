"""The Colab notebooks: committed without outputs, and executed (small, on real data) by nbclient.

Each notebook has a cell tagged ``parameters`` (papermill style) holding its sizes; the run
inserts a cell after it with :data:`CI_PARAMETERS`, executes the notebook in a temporary folder
with ``EVOSYN_DATA_DIR`` pointing at the real datasets, and fails on any cell that raises.
"""

import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

REPO = Path(__file__).resolve().parents[2]
COLAB = REPO / "colab"
NOTEBOOKS = sorted(p.name for p in COLAB.glob("*.ipynb"))
# The placeholder GitHub org of the "Open in Colab" links (colab/README.md says so).
ORG = "your-org"

# Small sizes on real subsets for CI; every notebook in colab/ must have an entry.
CI_PARAMETERS = {
    "01_evolve_lenet5_mnist.ipynb": {
        "TRAIN_LIMIT": 2000,
        "TEST_LIMIT": 500,
        "ANCESTOR_EPOCHS": 2,
        "GENERATIONS": 2,
        "EPOCHS_PER_GENERATION": 1,
        "LATENCY_RUNS": 50,
    },
    "02_your_own_model.ipynb": {
        "DATASET": "cifar10_subset",
        "BACKBONE_WEIGHTS": None,  # CI downloads nothing
        "IMAGE_SIZE": 32,
        "TRAIN_LIMIT": 256,
        "TEST_LIMIT": 128,
        "HEAD_EPOCHS": 1,
        "ANCESTOR_EPOCHS": 0,  # the flow, not the accuracy: offspring still train an epoch
        "GENERATIONS": 1,
        "EPOCHS_PER_GENERATION": 1,
        "ACCURACY_TOLERANCE": 1.0,  # a random-init backbone on 256 images: accept, test flow
        "LATENCY_RUNS": 20,
    },
    "03_tfmot.ipynb": {
        "TRAIN_LIMIT": 2000,
        "TEST_LIMIT": 500,
        "ANCESTOR_EPOCHS": 1,
        "FINETUNE_EPOCHS": 1,
        "SCHEDULE_EPOCHS": 2,
        "GENERATIONS": 3,
    },
    "04_kitti_detection.ipynb": {
        "IMAGE_HEIGHT": 192,
        "IMAGE_WIDTH": 640,
        "TRAIN_LIMIT": 8,
        "ANCESTOR_EPOCHS": 1,
        "GENERATIONS": 1,
        "EPOCHS_PER_GENERATION": 1,
        "DRAW_IMAGES": 2,
    },
}


def _read(name: str):
    return nbformat.read(COLAB / name, as_version=4)


def test_every_notebook_is_executed_in_ci():
    assert NOTEBOOKS, "colab/ has no notebooks"
    assert set(NOTEBOOKS) == set(CI_PARAMETERS), "add the notebook's small sizes to CI_PARAMETERS"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_has_no_outputs(name):
    notebook = _read(name)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name} cell {index} has outputs: strip them"
            assert cell.execution_count is None, f"{name} cell {index} has an execution count"
        assert "execution" not in cell.metadata, f"{name} cell {index} has execution metadata"
    assert "widgets" not in notebook.metadata


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_links_colab_installs_first_and_has_parameters(name):
    notebook = _read(name)
    link = f"https://colab.research.google.com/github/{ORG}/tf_evosyn/blob/main/colab/{name}"
    assert link in notebook.cells[0].source
    first_code = next(c for c in notebook.cells if c.cell_type == "code")
    assert "pip" in first_code.source and 'find_spec("tf_evosyn")' in first_code.source
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name} needs exactly one cell tagged 'parameters'"
    for key in CI_PARAMETERS.get(name, {}):
        assert f"\n{key} = " in "\n" + tagged[0].source, f"{name}: parameter {key} not defined"


def _with_parameters(notebook, values: dict):
    """Insert a cell assigning ``values`` after the ``parameters`` cell (as papermill does)."""
    index = next(
        i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])
    )
    source = "# Parameters injected by tests/colab/test_notebooks.py\n" + "".join(
        f"{key} = {value!r}\n" for key, value in values.items()
    )
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    cell.id = "injected-parameters"
    notebook.cells.insert(index + 1, cell)
    return notebook


def _images(notebook) -> int:
    return sum(
        1
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name, tmp_path, datasets_dir, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("EVOSYN_DATA_DIR", str(datasets_dir))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = _with_parameters(_read(name), CI_PARAMETERS[name])
    client = NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, if any cell raises
    seconds = time.perf_counter() - start
    nbformat.write(notebook, tmp_path / name)  # the executed copy, to look at after a failure
    print(f"{name}: executed in {seconds:.0f} s ({tmp_path / name})")
    assert _images(notebook) >= 1, f"{name} showed no figure"
    runs = tmp_path / "runs"
    assert runs.is_dir() and any(runs.iterdir()), f"{name} wrote nothing under runs/"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_readme_links_every_notebook(name):
    assert f"(colab/{name})" in (REPO / "README.md").read_text()
    assert f"({name})" in (COLAB / "README.md").read_text()
