"""The Chinese edition speaks one terminology, the one in scripts/translations/glossary.md, and writes it cleanly.

The Chinese text checked is every entry of scripts/translations/zh.md (the markdown of the zh notebook, read in the
English notebook's order) and README.zh.md, outside code, formulas and link targets:

- no English term that the glossary says to translate; a `gloss` term may be given once per document, in
  parentheses right after the Chinese (预填充 (prefill));
- the contents list of the first cell names each section exactly as its "## N." heading does (and so does the
  contents list of README.zh.md);
- no italics on Chinese text, "**动手试试 N**：", full-width parentheses around Chinese, none nested.

Each check is also run on a deliberately broken copy, so that a pass on the real files cannot come from checking
nothing.
"""

import re
from pathlib import Path

import nbformat
import pytest

from build_zh_notebook import CJK, TRANSLATIONS, load_translations
from notebook_runner import NOTEBOOK, REPO

GLOSSARY = TRANSLATIONS.parent / "glossary.md"
README_ZH = REPO / "README.zh.md"
RULES = ("translate", "gloss", "keep")


# --- the glossary -------------------------------------------------------------------------------------------------

def read_glossary(path: Path = GLOSSARY) -> dict[str, tuple[str, str]]:
    """English term -> (its Chinese, rule), from the table's rows: | English | 中文 | rule | notes |."""
    terms = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3 or cells[2] not in RULES:
            continue  # the header, its rule line, prose
        english, chinese, rule = cells[:3]
        assert english.lower() not in terms, f"{path.name}: {english} is listed twice"
        terms[english.lower()] = (chinese, rule)
    return terms


def forms(term: str) -> str:
    """A regex for the term and its inflections (queries, decoded, prefilling), spaces and hyphens alike."""
    *head, last = re.split(r"[\s-]+", term)
    stem = re.escape(last)
    endings = [stem, stem + "s", stem + "es", stem + "d", stem + "ed", stem + "ing"]
    if last.endswith("y"):
        endings.append(re.escape(last[:-1]) + "ies")
    if last.endswith("e"):
        endings.append(re.escape(last[:-1]) + "ing")
    words = [re.escape(word) for word in head] + ["(?:" + "|".join(endings) + ")"]
    return r"(?<![A-Za-z0-9_])" + r"[\s-]+".join(words) + r"(?![A-Za-z0-9_])"


GLOSSARY_TERMS = read_glossary()


def compiled(terms: dict[str, tuple[str, str]]) -> list[tuple[str, str, re.Pattern]]:
    """(term, rule, pattern), the longest terms first: "causal mask" is read before "mask"."""
    return [(term, rule, re.compile(forms(term), re.I)) for term, (_, rule) in
            sorted(terms.items(), key=lambda item: -len(item[0]))]


# --- the Chinese prose ----------------------------------------------------------------------------------------------

def prose(markdown: str) -> str:
    """The text a reader reads as Chinese: no code blocks, code spans, formulas, link targets or HTML comments.
    Each is replaced by one space, so that nothing around it is joined."""
    for pattern in (r"```.*?```", r"<!--.*?-->", r"`[^`\n]*`", r"\$\$.*?\$\$", r"\$[^$\n]+\$", r"\]\([^)\s]*\)"):
        markdown = re.sub(pattern, lambda m: "]" if m.group(0).startswith("](") else " ", markdown, flags=re.S)
    return markdown


INNERMOST_PARENTHESES = re.compile(r"[(（]([^()（）]*)[)）]")


def english_terms(documents: list[tuple[str, str]], terms: dict[str, tuple[str, str]]) -> list[str]:
    """Where an English term the glossary translates stands in the Chinese prose, one line each.

    documents: (name, markdown) in reading order; names are cell ids or file names. The first parenthesised gloss
    of a `gloss` term in all of them together is allowed ("预填充 (prefill)", "（query，“我在找什么？”）"); a later one
    is named as a second gloss.
    """
    patterns = compiled(terms)
    glossed: dict[str, str] = {}
    found = []
    for name, markdown in documents:
        text = prose(markdown)

        def allow_first_gloss(match: re.Match) -> str:
            inside = match.group(1)
            for term, rule, pattern in patterns:
                head = re.match(r"\s*(" + pattern.pattern + r")\s*(?:$|[,，、;；:：])", inside, re.I)
                if rule == "gloss" and head:
                    if term in glossed:
                        found.append(f"{name}: '{head.group(1)}' is glossed again (it was glossed in "
                                     f"{glossed[term]}; a term is glossed once)")
                    else:
                        glossed[term] = name
                    return match.group(0).replace(head.group(1), " " * len(head.group(1)), 1)
            return match.group(0)

        text = INNERMOST_PARENTHESES.sub(allow_first_gloss, text)
        for term, rule, pattern in patterns:
            for match in pattern.finditer(text):
                if rule != "keep":
                    chinese = terms[term][0]
                    context = text[max(0, match.start() - 12):match.end() + 12].replace("\n", " ")
                    found.append(f"{name}: '{match.group(0)}' should be {chinese} (…{context}…)")
            text = pattern.sub(lambda m: " " * len(m.group(0)), text)  # read once, by its longest term
    return found


# --- headings and the contents list ---------------------------------------------------------------------------------

def section_titles(markdown: str, pattern: str) -> dict[int, str]:
    return {int(m.group(1)): m.group(2).strip() for m in re.finditer(pattern, markdown, re.M)}


def contents_vs_headings(entries: dict[str, str], first_cell: str) -> list[str]:
    """Where item N of the first cell's contents list and the "## N." heading differ, one line each."""
    contents = section_titles(entries[first_cell], r"^(\d+)\. (.+)$")
    headings = {}
    for cell_id, text in entries.items():
        headings.update(section_titles(text.splitlines()[0] if text else "", r"^## (\d+)\. (.+)$"))
    found = [f"section {n}: the contents list says {contents.get(n)!r}, the heading says {headings.get(n)!r}"
             for n in sorted(set(contents) | set(headings)) if contents.get(n) != headings.get(n)]
    return found


# --- formatting -----------------------------------------------------------------------------------------------------

def formatting(name: str, markdown: str, exercises: bool = True) -> list[str]:
    """Italics on Chinese, the 动手试试 form, half-width parentheses around Chinese, nested full-width ones."""
    text, found = prose(markdown), []
    for match in re.finditer(r"(?<!\*)\*(?!\*)([^*\n]+?)(?<!\*)\*(?!\*)", text.replace("**", "\0\0")):
        if CJK.search(match.group(1)):
            found.append(f"{name}: Chinese in italics, *{match.group(1)}* (CJK fonts have none: use bold)")
    if exercises:
        for match in re.finditer(r".{0,4}动手试试.{0,8}", text):
            if not re.search(r"\*\*动手试试( \d+[a-z]?)?\*\*：", match.group(0)):
                found.append(f"{name}: {match.group(0)!r} should read **动手试试 N**：")
    for match in re.finditer(r"\(([^()]*)\)", text):
        if CJK.search(match.group(1)):
            found.append(f"{name}: half-width parentheses around Chinese, ({match.group(1)[:30]}): use （）")
    depth = 0
    for index, char in enumerate(text):
        if char == "（":
            depth += 1
            if depth == 2:
                found.append(f"{name}: full-width parentheses inside full-width ones: "
                             f"…{text[max(0, index - 20):index + 20]}…")
        elif char == "）":
            depth = max(0, depth - 1)
    return found


# --- the real files -------------------------------------------------------------------------------------------------

english = nbformat.read(NOTEBOOK, as_version=4)
FIRST_CELL = english.cells[0].id


def zh_entries() -> dict[str, str]:
    """cell id -> Chinese markdown, in the English notebook's order."""
    translations = load_translations()
    return {cell.id: translations[cell.id][1] for cell in english.cells
            if cell.cell_type == "markdown" and cell.id in translations}


def test_the_glossary_lists_the_terms_the_chinese_edition_decides():
    for term in ("query", "key", "value", "head", "attention", "score", "mask", "causal mask", "prompt",
                 "temperature", "tensor", "embedding", "hidden state", "residual", "feed-forward", "batch", "prefill",
                 "decode", "cache", "kv cache", "logits", "token", "softmax", "layer", "weight", "matrix", "vector",
                 "position", "rotation", "throughput", "bandwidth", "memory", "speed-up", "step", "sample",
                 "sampling", "greedy", "top-p", "checkpoint", "shape", "dtype", "row", "column", "pad", "padding",
                 "stop token"):
        assert term in GLOSSARY_TERMS, term
    for term in ("logits", "token", "softmax", "top-p", "checkpoint", "dtype"):
        assert GLOSSARY_TERMS[term][1] == "keep", term
    for term in ("prefill", "decode", "batch", "kv cache"):
        assert GLOSSARY_TERMS[term][1] == "gloss", term


def test_the_notebook_speaks_the_glossary():
    assert english_terms(list(zh_entries().items()), GLOSSARY_TERMS) == []


def test_the_readme_speaks_the_glossary():
    assert english_terms([(README_ZH.name, README_ZH.read_text(encoding="utf-8"))], GLOSSARY_TERMS) == []


def test_the_entries_follow_the_notebook():
    # an entry sits where its cell sits, so that the file reads like the notebook (and a gloss comes first)
    order = [cell_id for cell_id in re.findall(r"^<!-- cell (\S+) en:", TRANSLATIONS.read_text(encoding="utf-8"), re.M)]
    assert order == [cell.id for cell in english.cells if cell.cell_type == "markdown"]


def test_the_contents_list_names_each_section_as_its_heading_does():
    entries = zh_entries()
    assert sorted(section_titles(entries[FIRST_CELL], r"^(\d+)\. (.+)$")) == list(range(1, 20))
    assert contents_vs_headings(entries, FIRST_CELL) == []


def test_the_readme_contents_name_each_section_as_its_heading_does():
    headings = {}
    for text in zh_entries().values():
        headings.update(section_titles(text.splitlines()[0], r"^## (\d+)\. (.+)$"))
    readme = README_ZH.read_text(encoding="utf-8")
    listed = section_titles(readme.split("## 目录", 1)[1].split("\n## ", 1)[0], r"^(\d+)\. \*\*(.+?)\*\*")
    assert listed == headings


def test_the_notebook_is_formatted_for_chinese():
    assert [problem for cell_id, text in zh_entries().items() for problem in formatting(cell_id, text)] == []


def test_the_readme_is_formatted_for_chinese():
    assert formatting(README_ZH.name, README_ZH.read_text(encoding="utf-8"), exercises=False) == []


# --- the checks fail on broken copies -------------------------------------------------------------------------------

def test_an_english_term_is_named_with_its_cell():
    found = english_terms([("c1", "这就是因果 mask 的作用。")], GLOSSARY_TERMS)
    assert len(found) == 1 and found[0].startswith("c1: 'mask' should be 掩码")
    found = english_terms([("c2", "每个 prompt 都有自己的 key/value 头，分数存成 tensor。")], GLOSSARY_TERMS)
    assert [f.split("'")[1] for f in found] == ["prompt", "key", "value", "tensor"] or \
        sorted(f.split("'")[1] for f in found) == ["key", "prompt", "tensor", "value"]


def test_plurals_and_phrases_are_read_as_their_term():
    found = english_terms([("c1", "所有 queries 和 decoding 步，以及 KV cache。")], GLOSSARY_TERMS)
    assert sorted(f.split("'")[1] for f in found) == ["KV cache", "decoding", "queries"]


def test_code_formulas_links_and_kept_terms_are_not_prose():
    text = ("`mask` 与 $\\text{mask}$、[链接](https://example.com/attention)、$$\\text{tensor}$$，"
            "flash attention 和 logits、token、softmax、checkpoint。\n```python\nprompt = 1\n```")
    assert english_terms([("c1", text)], GLOSSARY_TERMS) == []


def test_a_term_is_glossed_once():
    assert english_terms([("c1", "预填充 (prefill) 一步完成。"), ("c2", "之后的解码 (decode) 步。")], GLOSSARY_TERMS) == []
    found = english_terms([("c1", "预填充 (prefill)。"), ("c2", "再预填充 (prefill) 一次。")], GLOSSARY_TERMS)
    assert len(found) == 1 and "c2" in found[0] and "glossed again" in found[0]
    found = english_terms([("c1", "张量 (tensor)。")], GLOSSARY_TERMS)  # translate: no gloss at all
    assert len(found) == 1 and "'tensor'" in found[0]
    assert english_terms([("c1", "**查询**（query，“我在找什么？”）")], GLOSSARY_TERMS) == []


def test_a_heading_that_differs_from_the_contents_list_is_named():
    entries = {"first": "# 标题\n\n1. 参数与尺寸符号\n2. 同时处理多个提示词",
               "a": "## 1. 参数与尺寸符号\n\n正文", "b": "## 2. 同时处理多个 prompt\n\n正文"}
    found = contents_vs_headings(entries, "first")
    assert len(found) == 1 and found[0].startswith("section 2")
    entries["b"] = "## 2. 同时处理多个提示词\n\n正文"
    assert contents_vs_headings(entries, "first") == []


@pytest.mark.parametrize("broken, named", [
    ("这是*斜体*的中文。", "italics"),
    ("**动手试试 2.** 亲手编码。", "动手试试"),
    ("**动手试试 2：**亲手编码。", "动手试试"),
    ("见 (第 18 节)。", "half-width"),
    ("一批（第 18 节（见下））。", "inside full-width"),
])
def test_bad_formatting_is_named(broken, named):
    found = formatting("c1", broken)
    assert len(found) == 1 and named in found[0], found


def test_good_formatting_passes():
    good = ("**动手试试 2**：亲手编码 *rank*。见（第 18 节），预填充 (prefill)，**动手试试**：十二道练习。"
            "`(中文)` 与 $(中文)$ 不算。")
    assert formatting("c1", good) == []
