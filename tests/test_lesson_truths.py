"""Every sentence true to the outputs: the claims a careful reader once found wrong, kept from coming back.

The rule behind them: a number that a cell computes is printed by that cell, not typed into the prose, and a
claim about a measurement is made by the output that measured it, with the comparison in it.
"""

import ast
import math
import re

import nbformat
import pytest
import torch

from notebook_code import load_notebook_functions
from notebook_runner import NOTEBOOK, ZH_NOTEBOOK

EDITIONS = {"en": nbformat.read(NOTEBOOK, as_version=4), "zh": nbformat.read(ZH_NOTEBOOK, as_version=4)}
cells = EDITIONS["en"].cells


def section_of_each_cell(notebook) -> list[int]:
    """The number N of the '## N. ...' section each cell stands in (0 before section 1, 20 after section 19)."""
    sections, current = [], 0
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            match = re.match(r"## (\d+)\. ", cell.source)
            if match:
                current = int(match.group(1))
            elif cell.source.startswith("## "):
                current = 20
        sections.append(current)
    return sections


def text_of(cell) -> str:
    return "".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", []))


def cell_defining(name: str):
    found = [c for c in cells if c.cell_type == "code" and re.search(rf"^def {name}\(", c.source, re.M)]
    assert len(found) == 1, name
    return found[0]


def cells_using(pattern: str) -> list:
    return [c for c in cells if c.cell_type == "code" and re.search(pattern, c.source)]


def test_every_assert_of_the_lesson_says_what_it_guards():
    # A bare AssertionError far from its cause (a checkpoint with NaN, a tweaked size) tells a learner nothing.
    sections = section_of_each_cell(EDITIONS["en"])
    bare = [ast.get_source_segment(cell.source, node)
            for cell, section in zip(cells, sections) if cell.cell_type == "code" and 1 <= section <= 19
            for node in ast.walk(ast.parse(cell.source)) if isinstance(node, ast.Assert) and node.msg is None]
    assert not bare, bare


@pytest.mark.parametrize("edition", ["en", "zh"])
def test_no_speed_is_typed_into_the_prose(edition):
    # Rates, speed-up factors and "x faster" belong to the outputs that measured them.
    typed = [m.group(0) for c in EDITIONS[edition].cells if c.cell_type == "markdown"
             for m in re.finditer(r"\d[\d.,]*\s*(tokens/s|token/s|倍速|× faster|x faster)", c.source)]
    assert not typed, typed


def test_the_rms_norm_cell_prints_what_eps_predicts_beside_what_it_measured():
    # Section 5 promises a root-mean-square of 1, which eps makes a little less: the cell shows both, equal.
    out = text_of(cells_using(r"mean_square / \(mean_square \+ cfg\.norm_eps\)")[0])
    measured, predicted = (list(map(float, re.findall(r"\d\.\d+", line))) for line in out.splitlines()[:2])
    assert measured and measured == predicted and all(value < 1 for value in measured), out


def test_scaled_rope_changes_the_band_the_text_names():
    # Meta's apply_scaling: wavelengths above 8192/4 change, above 8192 by the whole factor, in between blended.
    nb = load_notebook_functions()
    old, high = nb["ROPE_OLD_CONTEXT"], nb["ROPE_OLD_CONTEXT"] / nb["ROPE_HIGH_FREQ_FACTOR"]
    freqs = 1.0 / (500000.0 ** (torch.arange(0, 128, 2).float() / 128))
    wavelength = 2 * math.pi / freqs
    scaled = nb["scale_rope_frequencies"](freqs, 8)
    changed = ~torch.isclose(scaled, freqs, rtol=1e-6, atol=0)
    assert torch.equal(changed, wavelength > high)
    assert torch.allclose(scaled[wavelength > old], freqs[wavelength > old] / 8)
    between = (wavelength > high) & (wavelength <= old)
    assert between.any() and (scaled[between] > freqs[between] / 8).all() and (scaled[between] < freqs[between]).all()
    text = next(c.source for c in cells if c.cell_type == "markdown" and c.source.startswith("**Llama 3.1 and later**"))
    assert f"{int(old)}/{int(nb['ROPE_HIGH_FREQ_FACTOR'])} = {int(high)}" in text and "blended" in text


def test_the_rope_plot_is_labelled_with_the_running_model():
    source = cells_using(r"what use_scaled_rope changes")[0].source
    assert "Llama 3\"" not in source and "cfg.rope_theta" in source and "Dh" in source


def test_rope_is_taught_one_step_per_cell_before_it_is_packed():
    steps = ["view(T, Dh // 2, 2)", "view_as_complex", "* rotations", "view_as_real", "flatten(-2)"]
    where = [cells.index(cells_using(re.escape(step))[0]) for step in steps]
    assert where == sorted(where) and len(set(where)) == len(where)  # one cell each, in order
    assert all(text_of(cells[i]).startswith("torch.Size") for i in where)  # each shows its shape
    packed = cells.index(cell_defining("apply_rope"))
    assert max(where) < packed < cells.index(cells_using(r"apply_rope\(q, rotations\), q_rope_steps")[0])
    # Llama 3.1's scaling and Hugging Face's layout come after RoPE is first used, not before freqs_cis is built
    first_use = min(where)
    assert cells.index(cell_defining("scale_rope_frequencies")) > first_use
    assert cells.index(cells_using(r"hf_order = ")[0]) > cells.index(cells_using(r"(?m)^freqs_cis = ")[0])


def test_one_head_then_a_loop_over_heads_before_the_batched_heads():
    loop = cells.index(cells_using(r"for head in range\(H\):")[0])
    assert "(T, H, Dh)" in cells[loop].source and text_of(cells[loop]).startswith("torch.Size")
    assert loop < cells.index(cell_defining("attention_heads"))
    assert cells.index(cells_using(r"q_all\.transpose\(0, 1\)")[0]) < cells.index(cell_defining("attention_heads"))


def test_speed_ups_print_their_change_against_the_step_before():
    # "Speed-up 2" was once slower than the step before it, and nothing said so.
    for name in ("+ stacked", "+ fused attention", "+ blocked rows"):
        cell = cells_using(re.escape(f'measure("{name}"'))[0]
        out = text_of(cell)
        assert re.search(r"\d\.\d\dx the step before", out) or out.startswith("not stacked"), (name, out)


def test_the_cache_and_the_batch_print_both_sides_of_their_comparison():
    cache = text_of(cells_using(r"cached_tokens = tokens\[T:\]")[0])
    assert re.search(r"[\d.]+ tokens/s, against [\d.]+ without the cache", cache), cache
    batch = text_of(cells_using(r"alone_rate, batch_rate")[0])
    assert re.search(r"one at a time: .* tokens/s\nas one batch: .* tokens/s\nthe batch ran at [\d.]+x", batch), batch


def test_the_attention_sink_claim_is_measured():
    out = text_of(cells_using(r"on_first = ")[0])
    assert re.search(rf"\d+ of \d+ heads of layer \d+ put more than half", out), out
    heading = next(c.source for c in cells if c.cell_type == "markdown" and c.source.startswith("## 12. "))
    assert "Many heads" not in heading and "no BOS" in heading


def test_the_head_grids_share_one_colour_scale_with_a_colour_bar():
    source = cell_defining("head_grid").source
    assert "fig.colorbar(" in source and "finite.min(), finite.max()" in source


def test_the_mask_experiment_shows_the_last_position_and_the_others():
    layer0 = text_of(cells_using(r"without_mask = transformer_layer")[0])
    flags = re.search(r"\[(.*)\]", layer0).group(1).split(", ")
    assert flags[-1] == "True" and "False" in flags[:-1], layer0  # the last token alone is unchanged in layer 0
    table = text_of(cells_using(r"unmasked_logits = ")[0])
    assert "masked ->" in table and "unmasked ->" in table


def test_every_position_predicts():
    out = text_of(cells_using(r"all_logits = output_logits\(model, hidden_states\[-1\]\)")[0])
    t = int(re.search(r"T = (\d+) tokens", text_of(cells_using(r"(?m)^T = len\(prompt_tokens\)")[0])).group(1))
    assert len([line for line in out.splitlines() if "->" in line]) == t


def test_f_is_worked_out_for_llama3_8b():
    out = text_of(cells_using(r"2 \* \(4 \* p\[\"dim\"\]\) / 3")[0])
    assert "Llama 3 8B: D = 4096 -> 2/3 · 4 · D = 10922 -> x 1.3 = 14198 -> up to a multiple of 1024: F = 14336" in out


def test_the_chat_section_says_how_it_differs_from_meta():
    # Meta's first release stripped each message's text; llama-models 0.3.0, which the tests compare with, does not.
    from llama_models.datatypes import RawMessage
    from llama_models.llama3.chat_format import ChatFormat
    from llama_models.llama3.tokenizer import Tokenizer

    nb = load_notebook_functions()
    tokenizer = Tokenizer.get_instance()
    from llama3_files import load_llama3_tokenizer, llama3_tokenizer_path
    ours = nb["llama3_chat_tokens"](load_llama3_tokenizer(llama3_tokenizer_path()), [{"role": "user", "content": "  hi \n"}])
    assert ours == ChatFormat(tokenizer).encode_dialog_prompt([RawMessage(role="user", content="  hi \n")]).tokens
    text = next(c.source for c in cells if c.cell_type == "markdown" and c.source.startswith("## 17. "))
    assert "stripped" in text and "llama-models" in text


def test_the_chinese_sentence_costs_what_the_text_says():
    # Section 2 says the Chinese sentence, with far fewer characters, takes more tokens and fewer bytes per token.
    out = text_of(cells_using(r'for sentence in \["Attention lets every word')[0])
    (en_chars, _, en_tokens, en_bpt), (zh_chars, _, zh_tokens, zh_bpt) = [
        (int(a), int(b), int(c), float(d)) for a, b, c, d in
        re.findall(r"(\d+) characters, (\d+) bytes, (\d+) tokens: ([\d.]+) bytes per token", out)]
    assert zh_chars < en_chars and zh_tokens > en_tokens and zh_bpt < en_bpt, out
    text = next(c.source for c in cells if c.cell_type == "markdown" and c.source.startswith("**How many tokens"))
    assert "takes more tokens than the English one" in text and "fewer bytes" in text
