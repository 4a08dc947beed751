"""The committed notebook: outputs from one clean top-to-bottom run, nothing of the author's machine in it."""

import ast
import re
from pathlib import Path

import nbformat
import pytest

from notebook_runner import NOTEBOOK, REPO

notebook = nbformat.read(NOTEBOOK, as_version=4)
code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
TEST_ONLY = {"pytest", "papermill", "fairscale", "transformers", "accelerate", "safetensors"}


def test_execution_counts_are_one_clean_run():
    assert [cell.execution_count for cell in code_cells] == list(range(1, len(code_cells) + 1))


def test_no_error_outputs():
    errors = [o for cell in code_cells for o in cell.outputs if o.output_type == "error"]
    assert not errors, [f"{o.ename}: {o.evalue}" for o in errors]
    stderr = "".join(o.text for cell in code_cells for o in cell.outputs if o.get("name") == "stderr")
    assert "Traceback" not in stderr and "Warning" not in stderr


DEFINITIONS = (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom, ast.Assign)


def test_every_code_cell_ran_and_the_plots_are_there():
    # A cell that only defines things prints nothing; every other cell shows what it did.
    silent = [cell.source for cell in code_cells if not cell.outputs and "parameters" not in cell.metadata.get("tags", [])
              and not all(isinstance(node, DEFINITIONS) for node in ast.parse(cell.source).body)]
    assert not silent, f"cells without output that do more than define: {silent}"
    images = [o for cell in code_cells for o in cell.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 8


def test_no_local_paths_or_editor_metadata():
    text = NOTEBOOK.read_text()
    for pattern in [r"/work/", r"/tmp/", r"/home/", r"/root/", r"/Users/", r"site-packages", r"[A-Z]:\\\\"]:
        assert not re.search(pattern, text), f"the notebook contains a local path matching {pattern}"
    assert "widgets" not in notebook.metadata and "colab" not in notebook.metadata
    assert not any("colab" in cell.metadata or "widgets" in cell.metadata for cell in notebook.cells)


def test_first_code_cell_holds_the_parameters():
    first = code_cells[0]
    assert "parameters" in first.metadata.get("tags", [])
    names = {target.id for node in ast.parse(first.source).body for target in node.targets}
    assert {"MODEL_DIR", "PROMPT", "DEVICE", "MAX_NEW_TOKENS"} <= names


def test_the_notebook_needs_no_test_only_package():
    imported = set()
    for cell in code_cells:
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert not imported & TEST_ONLY


@pytest.mark.parametrize("literal", ["17", "128", "4096", "128000", "128256", "14336"])
def test_no_model_size_written_as_a_literal_in_the_math(literal):
    # Sizes come from params.json and the tensors. Markdown may name the 8B's sizes, and a list of token ids
    # is data (Meta's tokenizer test); code may not.
    offending = [cell.source for cell in code_cells
                 if re.search(rf"(?<![\w.]){literal}(?![\w.])", re.sub(r"#.*|\".*?\"|'.*?'|\[[\d,\s]+\]", "", cell.source))]
    assert not offending, offending
