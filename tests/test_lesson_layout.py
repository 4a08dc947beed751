"""The notebook reads as a lesson: short cells on the path from params.json to the next token, Llama's math only.

Measured on the committed notebook: the lesson path is sections 2 to 13 (tokenizer to "How many layers does it
take?"). Its code cells are short (median at most 6 lines, none over 25), nothing before the embeddings
validates files or speeds anything up (that is llama3_files.py's job, and section 19's), and the teaching
functions are the plain ones.
"""

import ast
import re
import statistics

import nbformat

from notebook_runner import NOTEBOOK

cells = nbformat.read(NOTEBOOK, as_version=4).cells
SPEED_NAMES = ("wqkv", "w13", "scaled_dot_product_attention", "get_num_threads", "perf_counter", "STACK_MAX_BYTES")


def section_start(number: int) -> int:
    """The index of the cell whose heading is '## NUMBER. ...'."""
    starts = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith(f"## {number}. ")]
    assert len(starts) == 1, f"no single section {number}"
    return starts[0]


def code_between(first: int, last: int) -> list[str]:
    return [c.source for c in cells[first:last] if c.cell_type == "code"]


LESSON = code_between(section_start(2), section_start(14))
BEFORE_EMBEDDINGS = code_between(0, section_start(4))


def test_the_lesson_path_is_made_of_short_cells():
    lengths = [len(source.splitlines()) for source in LESSON]
    assert statistics.median(lengths) <= 6, sorted(lengths)
    assert max(lengths) <= 25, [source.splitlines()[0] for source in LESSON if len(source.splitlines()) > 25]


def test_nothing_before_the_embeddings_checks_files_or_speeds_up():
    # Checks are one call into llama3_files each; no raise, try or except of their own here.
    for source in BEFORE_EMBEDDINGS:
        tree = ast.parse(source)
        assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Raise, ast.Try))], source
        assert "InputError(" not in source and not any(name in source for name in SPEED_NAMES), source


def test_the_lesson_path_has_no_speed_code():
    for source in LESSON:
        assert not any(name in source for name in SPEED_NAMES), source


def definitions(sources: list[str]) -> dict[str, str]:
    found = {}
    for source in sources:
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef):
                found[node.name] = ast.get_source_segment(source, node)
    return found


def test_the_teaching_functions_are_the_plain_ones():
    lesson = definitions(LESSON)
    assert {"rms_norm", "apply_rope", "project_qkv", "attention_heads", "attention", "feed_forward", "linear",
            "transformer_layer"} <= set(lesson)
    body = lambda name: "\n".join(lesson[name].splitlines()[1:])  # noqa: E731
    assert re.search(r"return x @ w\.T", body("linear"))  # plus the block-wise conversion the 8B's memory needs
    assert "if" not in body("project_qkv") and "if" not in body("feed_forward")  # no stacked-matrix branch
    assert "softmax" in body("attention_heads")  # written out: scores, mask, softmax in float32, values


def test_speed_has_its_own_section_after_the_kv_cache_and_sampling():
    speed = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("## ")
             and "how fast it can go" in c.source.splitlines()[0]]
    assert len(speed) == 1 and speed[0] > section_start(15) and speed[0] > section_start(16)
    fast = definitions(code_between(speed[0], len(cells)))
    assert {"linear_blocked", "project_qkv_stacked", "feed_forward_stacked", "attention_heads_fused"} <= set(fast)
    assert not set(fast) & set(definitions(code_between(0, speed[0])))  # nothing of it defined earlier
