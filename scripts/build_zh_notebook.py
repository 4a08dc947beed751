"""Build the Chinese edition, llama3-from-scratch.zh.ipynb, from the English notebook and its translations.

Usage:
    python scripts/build_zh_notebook.py            # write llama3-from-scratch.zh.ipynb (no outputs yet)
    jupyter nbconvert --to notebook --execute --inplace llama3-from-scratch.zh.ipynb   # then run it
    python scripts/build_zh_notebook.py --check    # exit 1 if a translation is missing, stale or orphaned,
                                                   # or the committed zh notebook differs from what this builds
    python scripts/build_zh_notebook.py --stub     # add a TODO entry for every cell that needs translating

One source: every code cell (and every cell's metadata) is the English notebook's own, so the two cannot drift,
except for one line: the parameters cell sets LANGUAGE = "zh", so that the exercises' checks answer in Chinese.
Only the markdown cells come from scripts/translations/zh.md, one entry per cell id:

    <!-- cell 9b4bbf6e en:3f1c2a9b0d4e -->
    # 从零实现 Llama 3
    ...

`en:` is the start of the sha256 of the English text the entry was translated from. When that English text
changes, the entry is stale until someone updates the translation and its hash (--check names the new hash).
"""

import argparse
import hashlib
import re
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
ENGLISH = REPO / "llama3-from-scratch.ipynb"
CHINESE = REPO / "llama3-from-scratch.zh.ipynb"
TRANSLATIONS = Path(__file__).resolve().parent / "translations" / "zh.md"
ENTRY = re.compile(r"^<!-- cell (\S+) en:(\S+) -->$", re.M)
CJK = re.compile(r"[\u4e00-\u9fff]")
TODO = "TODO"
# The one line of code the editions differ in, in the cell tagged "parameters": the exercises' checks' language.
ENGLISH_LANGUAGE = re.compile(r'^LANGUAGE = "en"(?=  #|$)', re.M)
CHINESE_LANGUAGE = 'LANGUAGE = "zh"'


def english_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def load_translations(path: Path = TRANSLATIONS) -> dict[str, tuple[str, str]]:
    """cell id -> (hash of the English text it was made from, Chinese text)."""
    text = path.read_text(encoding="utf-8")
    parts = ENTRY.split(text)
    entries: dict[str, tuple[str, str]] = {}
    for i in range(1, len(parts), 3):
        cell_id, digest, body = parts[i], parts[i + 1], parts[i + 2].strip("\n")
        if cell_id in entries:
            raise ValueError(f"{path.name}: cell {cell_id} is translated twice")
        entries[cell_id] = (digest, body)
    return entries


def problems(english, translations: dict[str, tuple[str, str]]) -> list[str]:
    """What keeps the translations from matching the English notebook, one line each (empty: in sync)."""
    found = []
    markdown = {cell.id: cell.source for cell in english.cells if cell.cell_type == "markdown"}
    code_ids = {cell.id for cell in english.cells if cell.cell_type == "code"}
    for cell_id, source in markdown.items():
        if cell_id not in translations:
            found.append(f"cell {cell_id} has no translation (it begins {source[:60]!r})")
            continue
        digest, text = translations[cell_id]
        if digest != english_hash(source):
            found.append(f"cell {cell_id} changed since it was translated (it begins {source[:60]!r}): "
                         f"update the translation, then its hash to en:{english_hash(source)}")
        elif text.startswith(TODO) or not CJK.search(text):
            found.append(f"cell {cell_id} is not translated yet (its entry has no Chinese text)")
    for cell_id in translations:
        if cell_id in code_ids:
            found.append(f"cell {cell_id} is a code cell: code is never translated, remove its entry")
        elif cell_id not in markdown:
            found.append(f"cell {cell_id} is translated but no longer exists in the English notebook: remove it")
    return found


def chinese_parameters(source: str) -> str:
    """The parameters cell of the zh edition: the English one with its line LANGUAGE = "en" set to "zh".

    Raises ValueError unless the English cell has exactly one such line.
    """
    zh, found = ENGLISH_LANGUAGE.subn(CHINESE_LANGUAGE, source)
    if found != 1:
        raise ValueError(f'the parameters cell must set LANGUAGE = "en" on one line of its own, found {found}: the '
                         'zh edition sets it to "zh" there')
    return zh


def build(english, translations: dict[str, tuple[str, str]]):
    """The zh notebook: the English one with its markdown translated, LANGUAGE = "zh", no outputs.

    Raises ValueError if the translations are not in sync, or the parameters cell has no LANGUAGE = "en" line.
    """
    found = problems(english, translations)
    if found:
        raise ValueError("the translations do not match the English notebook:\n  " + "\n  ".join(found))
    zh = nbformat.reads(nbformat.writes(english), as_version=4)
    parameters = [cell for cell in zh.cells
                  if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", [])]
    if len(parameters) != 1:
        raise ValueError(f'the English notebook must have one code cell tagged "parameters", found {len(parameters)}')
    for cell in zh.cells:
        cell.metadata.pop(RUN_METADATA, None)
        if cell.cell_type == "markdown":
            cell.source = translations[cell.id][1]
        elif cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    parameters[0].source = chinese_parameters(parameters[0].source)
    return zh


RUN_METADATA = "execution"  # the timings nbconvert records when it runs a cell: each run its own


def lasting_metadata(cell) -> dict:
    return {key: value for key, value in cell.metadata.items() if key != RUN_METADATA}


def differences(built, committed) -> list[str]:
    """Where the committed zh notebook's cells differ from the built one (sources, kinds, ids, metadata)."""
    if len(built.cells) != len(committed.cells):
        return [f"{len(committed.cells)} cells, expected {len(built.cells)}"]
    found = []
    for index, (b, c) in enumerate(zip(built.cells, committed.cells)):
        for what in ("cell_type", "id", "source"):
            if b.get(what) != c.get(what):
                found.append(f"cell {index} ({b.id}): its {what} differs")
        if lasting_metadata(b) != lasting_metadata(c):
            found.append(f"cell {index} ({b.id}): its metadata differs")
    return found


def stub(english, path: Path = TRANSLATIONS) -> int:
    """Appends a TODO entry (the English text, to translate) for every cell that is missing or stale."""
    translations = load_translations(path)
    text, added = path.read_text(encoding="utf-8"), 0
    for cell in english.cells:
        if cell.cell_type == "markdown" and translations.get(cell.id, ("",))[0] != english_hash(cell.source):
            text += f"\n<!-- cell {cell.id} en:{english_hash(cell.source)} -->\n{TODO} {cell.source}\n"
            added += 1
    path.write_text(text, encoding="utf-8")
    return added


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything is out of sync")
    group.add_argument("--stub", action="store_true", help="append TODO entries for missing or stale translations "
                                                           "(then remove the stale old entries by hand)")
    parser.add_argument("--out", type=Path, default=CHINESE, help=f"where to write (default: {CHINESE.name})")
    args = parser.parse_args()
    for path in (ENGLISH, TRANSLATIONS):
        if not path.is_file():
            print(f"error: {path} does not exist", file=sys.stderr)
            return 2
    english = nbformat.read(ENGLISH, as_version=4)
    if args.stub:
        print(f"added {stub(english)} TODO entries to {TRANSLATIONS}")
        return 0
    try:
        zh = build(english, load_translations())
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.check:
        if not args.out.is_file():
            print(f"error: {args.out} does not exist: run python scripts/build_zh_notebook.py", file=sys.stderr)
            return 1
        found = differences(zh, nbformat.read(args.out, as_version=4))
        if found:
            print(f"error: {args.out.name} is not what the English notebook and the translations build:\n  "
                  + "\n  ".join(found[:20]), file=sys.stderr)
            return 1
        print(f"{args.out.name} is in sync: {sum(c.cell_type == 'markdown' for c in zh.cells)} markdown cells "
              f"translated, {sum(c.cell_type == 'code' for c in zh.cells)} code cells the English ones "
              '(LANGUAGE = "zh" in the parameters cell)')
        return 0
    nbformat.write(zh, args.out)
    print(f"wrote {args.out.name} (no outputs yet; run it with jupyter nbconvert --to notebook --execute --inplace)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
