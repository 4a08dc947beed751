"""Read the notebook's own code, so that tests and scripts share its one copy of the math.

Usage (from a script in scripts/ or a test):
    from notebook_code import load_notebook_functions
    nb = load_notebook_functions()          # a dict: name -> function, class or constant
    y = nb["rms_norm"](x, weight, eps)

Only imports, function and class definitions, and ALL_CAPS constants with literal values are kept:
nothing that loads a model or depends on the notebook's parameters runs.
"""

import ast
from pathlib import Path

import nbformat

NOTEBOOK = Path(__file__).resolve().parent.parent / "llama3-from-scratch.ipynb"


def _is_literal_constant(node: ast.stmt) -> bool:
    if not isinstance(node, ast.Assign) or not all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets):
        return False
    try:
        ast.literal_eval(node.value)
    except ValueError:
        return False
    return True


def notebook_source(path: Path = NOTEBOOK) -> str:
    """The notebook's imports, definitions and literal constants, as one Python source."""
    notebook = nbformat.read(path, as_version=4)
    kept = []
    for cell in notebook.cells:
        if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
            continue
        for node in ast.parse(cell.source).body:
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)) \
                    or _is_literal_constant(node):
                kept.append(ast.get_source_segment(cell.source, node))
    return "\n\n".join(kept)


def load_notebook_functions(path: Path = NOTEBOOK) -> dict:
    """Executes notebook_source() and returns its namespace."""
    namespace: dict = {"__name__": "llama3_from_scratch_notebook"}
    exec(compile(notebook_source(path), str(path), "exec"), namespace)
    return namespace
