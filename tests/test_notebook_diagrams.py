"""The pictures of the lesson: every step listed in the issue has one, and each shows the sizes of the run it is in.

scripts/diagrams.py draws each picture from the tensors it is handed and records its labels ("D = 576", ...) in
the output's metadata; here they are read back from the committed notebooks and checked against the sizes that
params.json and the prompt give, worked out independently of the pictures. tests/test_notebook.py does the same on
tiny checkpoints of other sizes (assert_pictures_show_the_run).
"""

import json
import re

import nbformat
import pytest

from diagrams import diagrams_in_outputs
from llama3_files import ffn_hidden_size
from notebook_runner import NOTEBOOK, ZH_NOTEBOOK

# The steps of the lesson and the picture each one gets, by section.
REQUIRED = {1: {"overview"}, 2: {"tokens"}, 4: {"embedding_lookup"}, 5: {"rms_norm_step"},
            6: {"head_slice", "one_head_qkv", "rope_pairs", "scores_step", "mask_step", "softmax_step", "values_step"},
            7: {"gqa"}, 8: {"heads_join"}, 9: {"swiglu"}, 10: {"layer_block"}, 11: {"final_output"},
            15: {"kv_cache"}, 16: {"top_p"}, 17: {"chat_layout"}}


def diagrams_by_section(notebook) -> dict[int, list[dict]]:
    found, section = {}, 0
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            match = re.match(r"## (\d+)\. ", cell.source)
            section = int(match.group(1)) if match else 20 if cell.source.startswith("## ") else section
        elif cell.cell_type == "code":
            found.setdefault(section, []).extend(diagrams_in_outputs(cell.outputs))
    return found


def expected_sizes(params: dict, T: int) -> dict[str, int]:
    """Every size symbol a picture may label, from params.json and the prompt's length, as the notebook defines them."""
    D, H = params["dim"], params["n_heads"]
    H_KV = params.get("n_kv_heads") or H
    Dh = D // H
    F = ffn_hidden_size(D, params["multiple_of"], params.get("ffn_dim_multiplier"))
    return {"T": T, "D": D, "H": H, "H_KV": H_KV, "Dh": Dh, "N_REP": H // H_KV, "L": params["n_layers"], "F": F,
            "V": params["vocab_size"], "H·Dh": H * Dh, "H_KV·Dh": H_KV * Dh, "Dh/2": Dh // 2}


def assert_pictures_show_the_run(notebook, params: dict, T: int, chat_T: int | None = None) -> None:
    """Every required picture is there, and every size it labels is this run's (none of another model's).

    The chat picture's T is the chat prompt's length (chat_T, checked when given), not the prompt's.
    """
    sections = diagrams_by_section(notebook)
    for section, names in REQUIRED.items():
        missing = names - {d["name"] for d in sections.get(section, [])}
        assert not missing, f"section {section} has no picture of {sorted(missing)}"
    expected = expected_sizes(params, T)
    checked = set()
    for section, drawn in sections.items():
        for diagram in drawn:
            for symbol, value in diagram["labels"].items():
                if diagram["name"] == "chat_layout" and symbol == "T":
                    assert chat_T is None or value == chat_T, f"the chat picture's T = {value}, its prompt has {chat_T}"
                elif symbol in expected:
                    assert value == expected[symbol], \
                        f"section {section}, {diagram['name']}: {symbol} = {value}, but this run's {symbol} is {expected[symbol]}"
                    checked.add(symbol)
    assert {"T", "D", "H", "H_KV", "Dh", "N_REP", "L", "F", "V"} <= checked, checked


def committed_run_sizes(notebook) -> tuple[dict, int, int]:
    """params.json as the committed run printed it, T from its prompt cell, and the chat prompt's length."""
    outputs = {cell.source.splitlines()[0]: "".join(o.get("text", "") for o in cell.outputs)
               for cell in notebook.cells if cell.cell_type == "code" and cell.source}
    params = json.loads(next(text for first, text in outputs.items() if first.startswith("read_params(model_dir)")))
    T = int(re.search(r"\nT = (\d+) tokens", next(text for text in outputs.values() if "\nT = " in text)).group(1))
    chat_T = int(re.match(r"(\d+) tokens:", next(text for first, text in outputs.items()
                                                  if first.startswith("chat_tokens = "))).group(1))
    return params, T, chat_T


@pytest.mark.parametrize("path", [NOTEBOOK, ZH_NOTEBOOK], ids=["en", "zh"])
def test_every_step_has_a_picture_of_this_runs_sizes(path):
    notebook = nbformat.read(path, as_version=4)
    params, T, chat_T = committed_run_sizes(notebook)
    assert_pictures_show_the_run(notebook, params, T, chat_T)
    assert sum(len(d) for d in diagrams_by_section(notebook).values()) >= 15


def test_a_missing_picture_or_a_wrong_size_is_caught():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    params, T, _ = committed_run_sizes(notebook)
    with pytest.raises(AssertionError, match="this run's D is"):
        assert_pictures_show_the_run(notebook, {**params, "dim": params["dim"] * 2}, T)
    for cell in notebook.cells:  # take the GQA picture out
        cell.outputs = [o for o in cell.get("outputs", []) if o.get("metadata", {}).get("diagram", {}).get("name") != "gqa"]
    with pytest.raises(AssertionError, match=r"section 7 has no picture of \['gqa'\]"):
        assert_pictures_show_the_run(notebook, params, T)
