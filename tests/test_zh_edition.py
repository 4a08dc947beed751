"""The Chinese edition is built from the English notebook and scripts/translations/zh.md, and cannot drift.

Its code is the English notebook's, but for one line: LANGUAGE = "zh" in the parameters cell (PARAMETERS_CELL), so
that the exercises' checks answer in Chinese.

The checks themselves (build_zh_notebook.problems and .differences) are also run on deliberately broken copies
here, so that a test of the real files cannot pass by checking nothing.
"""

import re

import nbformat
import pytest

from build_zh_notebook import (CJK, build, chinese_parameters, differences, english_hash, lasting_metadata,
                               load_translations, problems)
from notebook_runner import NOTEBOOK, ZH_NOTEBOOK

english = nbformat.read(NOTEBOOK, as_version=4)
translations = load_translations()
PARAMETERS_CELL = "39cb046b"  # the first code cell, tagged "parameters": the only code that differs, in one line


def code_differences(en_nb, zh_nb) -> list[tuple[str, str, str]]:
    """(cell id, English line, Chinese line) for every line of code that differs between the two editions."""
    found = []
    for en, zh in zip(en_nb.cells, zh_nb.cells):
        if en.cell_type == zh.cell_type == "code":
            en_lines, zh_lines = en.source.split("\n"), zh.source.split("\n")
            if len(en_lines) != len(zh_lines):
                found.append((en.id, f"{len(en_lines)} lines", f"{len(zh_lines)} lines"))
            found += [(en.id, a, b) for a, b in zip(en_lines, zh_lines) if a != b]
    return found


def only_the_language_differs(en_nb, zh_nb) -> bool:
    """The zh edition's code is the English code, but for LANGUAGE = "zh" in the parameters cell, comment and all."""
    found = code_differences(en_nb, zh_nb)
    if len(found) != 1:
        return False
    cell_id, en_line, zh_line = found[0]
    return (cell_id == PARAMETERS_CELL and en_line.startswith('LANGUAGE = "en"')
            and zh_line == en_line.replace('LANGUAGE = "en"', 'LANGUAGE = "zh"', 1))


def test_the_parameters_cell_sets_the_language_and_the_zh_build_sets_it_to_zh():
    cell = next(c for c in english.cells if c.id == PARAMETERS_CELL)
    assert cell is next(c for c in english.cells if c.cell_type == "code") and "parameters" in cell.metadata.tags
    assert re.search(r'^LANGUAGE = "en"  # ', cell.source, re.M)
    assert re.search(r'^LANGUAGE = "zh"  # ', chinese_parameters(cell.source), re.M)
    setter = next(c for c in english.cells if c.id == "1579d490").source
    assert "exercises.set_language(LANGUAGE)" in setter
    assert setter.index("check_text_parameters(") < setter.index("exercises.set_language(LANGUAGE)")


def test_every_markdown_cell_is_translated_from_the_current_english_text():
    assert problems(english, translations) == []


def test_the_committed_zh_notebook_is_what_the_build_makes():
    committed = nbformat.read(ZH_NOTEBOOK, as_version=4)
    assert differences(build(english, translations), committed) == []
    # the same code, cell for cell, but for LANGUAGE = "zh"; and Chinese in every markdown cell
    assert len(english.cells) == len(committed.cells)
    for en, zh in zip(english.cells, committed.cells):
        assert en.cell_type == zh.cell_type and en.id == zh.id and lasting_metadata(en) == lasting_metadata(zh)
        if en.cell_type == "markdown":
            assert CJK.search(zh.source), zh.source[:80]
    assert only_the_language_differs(english, committed), code_differences(english, committed)


def test_the_zh_notebook_ran_and_shows_its_own_outputs():
    committed = nbformat.read(ZH_NOTEBOOK, as_version=4)
    pairs = [(en, zh) for en, zh in zip(english.cells, committed.cells) if en.cell_type == "code"]
    assert [zh.execution_count for _, zh in pairs] == list(range(1, len(pairs) + 1))
    images = lambda cell: sum("image/png" in o.get("data", {}) for o in cell.outputs)  # noqa: E731
    assert [images(en) for en, _ in pairs] == [images(zh) for _, zh in pairs]  # every plot is there
    assert any(zh.outputs != en.outputs for en, zh in pairs)  # its own run (timings differ), not a copy


def test_translations_keep_the_structure_of_the_english_cells():
    # headings stay headings at the same level, with the same section number; code spans and math survive
    for cell in english.cells:
        if cell.cell_type != "markdown":
            continue
        zh = translations[cell.id][1]
        en_first, zh_first = cell.source.splitlines()[0], zh.splitlines()[0]
        if en_first.startswith("#"):
            level = len(en_first) - len(en_first.lstrip("#"))
            assert zh_first.startswith("#" * level + " ") and not zh_first.startswith("#" * (level + 1)), zh_first
            number = en_first[level:].split()[0]
            if number[0].isdigit():
                assert zh_first[level:].split()[0] == number, (en_first, zh_first)
        assert cell.source.count("$$") == zh.count("$$"), cell.id
        assert cell.source.count("```") == zh.count("```"), cell.id


# --- the checks fail on broken copies ---------------------------------------------------------------------------

def first_markdown(nb):
    return next(cell for cell in nb.cells if cell.cell_type == "markdown")


def test_a_missing_translation_is_named():
    broken = dict(translations)
    cell_id = first_markdown(english).id
    del broken[cell_id]
    assert any(cell_id in p and "no translation" in p for p in problems(english, broken))
    with pytest.raises(ValueError, match="no translation"):
        build(english, broken)


def test_a_changed_english_cell_makes_its_translation_stale():
    changed = nbformat.reads(nbformat.writes(english), as_version=4)
    cell = first_markdown(changed)
    cell.source += "\n\nA new sentence."
    found = problems(changed, translations)
    assert len(found) == 1 and "changed since it was translated" in found[0] and english_hash(cell.source) in found[0]


def test_a_translation_of_a_cell_that_no_longer_exists_is_named():
    broken = {**translations, "deadbeef": ("000000000000", "已删除的单元格")}
    assert any("deadbeef" in p and "no longer exists" in p for p in problems(english, broken))


def test_an_entry_that_is_still_english_is_not_a_translation():
    cell = first_markdown(english)
    broken = {**translations, cell.id: (english_hash(cell.source), "TODO " + cell.source)}
    assert any("not translated yet" in p for p in problems(english, broken))


def test_the_zh_code_may_differ_from_the_english_in_the_language_line_only():
    built = build(english, translations)
    assert code_differences(english, built) == [
        (PARAMETERS_CELL, line, line.replace('LANGUAGE = "en"', 'LANGUAGE = "zh"', 1))
        for line in next(c for c in english.cells if c.id == PARAMETERS_CELL).source.split("\n")
        if line.startswith("LANGUAGE = ")]
    assert only_the_language_differs(english, built)

    def broken(edit):
        copy = nbformat.reads(nbformat.writes(built), as_version=4)
        edit(copy)
        return copy

    def cell(nb, cell_id):
        return next(c for c in nb.cells if c.id == cell_id)

    def replace(cell_id, old, new):
        def edit(nb):
            assert old in cell(nb, cell_id).source
            cell(nb, cell_id).source = cell(nb, cell_id).source.replace(old, new)
        return edit

    rms_norm_cell = next(c.id for c in built.cells if c.cell_type == "code" and "def rms_norm(" in c.source)
    for edit in [replace(PARAMETERS_CELL, 'LANGUAGE = "zh"', 'LANGUAGE = "en"'),  # the Chinese edition in English
                 replace(PARAMETERS_CELL, 'LANGUAGE = "zh"', 'LANGUAGE = "fr"'),
                 replace(PARAMETERS_CELL, "MAX_NEW_TOKENS = 24", "MAX_NEW_TOKENS = 99"),  # another parameter too
                 replace(PARAMETERS_CELL, "  # the language the exercises", "  # the exercises' language"),
                 replace(rms_norm_cell, "float()", "double()"),  # any other code
                 replace("1579d490", "exercises.set_language(LANGUAGE)", 'exercises.set_language("zh")'),
                 lambda nb: cell(nb, rms_norm_cell).__setitem__("source", cell(nb, rms_norm_cell).source + "\n")]:
        assert not only_the_language_differs(english, broken(edit))


def test_a_parameters_cell_without_its_language_line_is_named():
    for source in ['MAX_NEW_TOKENS = 24', 'LANGUAGE = "zh"', 'LANGUAGE = "en"\nLANGUAGE = "en"']:
        with pytest.raises(ValueError, match='LANGUAGE = "en" on one line'):
            chinese_parameters(source)
    no_language = nbformat.reads(nbformat.writes(english), as_version=4)
    cell = next(c for c in no_language.cells if c.id == PARAMETERS_CELL)
    cell.source = "\n".join(line for line in cell.source.split("\n") if not line.startswith("LANGUAGE"))
    with pytest.raises(ValueError, match="LANGUAGE"):
        build(no_language, translations)


def test_a_code_cell_that_differs_in_the_zh_notebook_is_named():
    built = build(english, translations)
    edited = nbformat.reads(nbformat.writes(built), as_version=4)
    code = next(cell for cell in edited.cells if cell.cell_type == "code" and "rms_norm" in cell.source)
    code.source = code.source.replace("float()", "double()")
    found = differences(built, edited)
    assert len(found) == 1 and "source differs" in found[0]
    code.metadata["tags"] = ["exercise"]
    assert any("metadata differs" in f for f in differences(built, edited))
    edited.cells.pop()
    assert differences(built, edited)  # a lost cell too


def test_the_zh_notebook_has_no_errors_and_nothing_of_the_authors_machine():
    text = ZH_NOTEBOOK.read_text(encoding="utf-8")
    for pattern in ("/work/", "/tmp/", "/home/", "/root/", "/Users/", "site-packages"):
        assert pattern not in text, pattern
    committed = nbformat.read(ZH_NOTEBOOK, as_version=4)
    assert not [o for c in committed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert "widgets" not in committed.metadata and "colab" not in committed.metadata


# --- text in the plots ------------------------------------------------------------------------------------------

MISSING_GLYPH = re.compile(r"Glyph \d+ .*missing from (current )?font")


def missing_glyph_warnings(nb) -> list[str]:
    return [line for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs
            for line in o.get("text", "").splitlines() if MISSING_GLYPH.search(line)]


@pytest.mark.parametrize("path", [NOTEBOOK, ZH_NOTEBOOK], ids=["en", "zh"])
def test_every_character_in_the_plots_had_a_glyph(path):
    # matplotlib warns, in the cell's output, for every character its font cannot draw (a box in the PNG): a plot
    # with Chinese text needs a CJK font. The plots' text comes from the code and is English in both editions.
    assert missing_glyph_warnings(nbformat.read(path, as_version=4)) == []


def test_a_chinese_title_without_a_cjk_font_is_caught(tmp_path):
    # the check above reads the warning matplotlib really writes: draw a Chinese title with its default font
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with warnings.catch_warnings(record=True) as caught, matplotlib.rc_context({"font.family": ["DejaVu Sans"]}):
        warnings.simplefilter("always")
        fig, ax = plt.subplots()
        ax.set_title("注意力分数")
        fig.savefig(tmp_path / "title.png")
        plt.close(fig)
    shown = nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output(
        "stream", name="stderr", text="".join(f"UserWarning: {w.message}\n" for w in caught))])
    assert missing_glyph_warnings(nbformat.v4.new_notebook(cells=[shown]))
