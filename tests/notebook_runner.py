"""Execute the notebook top to bottom with papermill and read back the names other code relies on."""

from pathlib import Path

import nbformat
import papermill
import torch

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "llama3-from-scratch.ipynb"
ZH_NOTEBOOK = REPO / "llama3-from-scratch.zh.ipynb"

# Appended to a copy of the notebook: saves what the tests compare. The notebook itself is not changed.
SAVE_CELL = """
import torch as _torch
_torch.save({{name: globals()[name] for name in {names!r} if name in globals()}}, {path!r})
"""
SAVED_NAMES = ("next_token_logits", "prompt_tokens", "T", "tied", "generated_tokens", "chat_tokens", "answer",
               "stop_tokens", "cached_tokens", "no_cache_tokens", "prompts", "batch_prompt_tokens",
               "batch_generated_tokens")


def run_notebook(work_dir: Path, names: tuple[str, ...] = SAVED_NAMES, notebook=None, **parameters) -> dict:
    """Runs the notebook (or the given nbformat notebook) with papermill parameters; returns the saved names.

    Raises PapermillExecutionError. The executed copy is left at work_dir / "output.ipynb".
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    saved = work_dir / "saved.pt"
    notebook = nbformat.read(NOTEBOOK, as_version=4) if notebook is None else nbformat.reads(nbformat.writes(notebook), as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(SAVE_CELL.format(names=tuple(names), path=str(saved))))
    source = work_dir / "input.ipynb"
    nbformat.write(notebook, source)
    # request_save_on_cell_execute=False: papermill would otherwise write the whole growing notebook (about 2 MB
    # with its pictures) after every one of its ~280 cells, which took more than half of a run's time. The copy is
    # still written once at the end, and on an error with the failing cell marked.
    papermill.execute_notebook(str(source), str(work_dir / "output.ipynb"), parameters=parameters, cwd=str(REPO),
                               kernel_name="python3", progress_bar=False, log_output=False,
                               request_save_on_cell_execute=False)
    return torch.load(saved, weights_only=False)
