"""Set the notebooks' slide metadata, so that `jupyter nbconvert --to slides` makes a deck a teacher can present.

Usage:
    python scripts/slides.py                       # set it in both notebooks, in place
    python scripts/slides.py --check               # exit 1 if a notebook's metadata is not what the rule gives

The rule, one slide per section and one sub-slide per step:
- the title cell and every "## N. ..." section heading start a slide;
- every other markdown cell (a "### ..." heading, the why of a step, a "Try it" task) starts a sub-slide,
  below its section's slide;
- a code cell stays on the sub-slide of the markdown before it, with its output.

Then build the deck with (scripts/slides_config.py: long cells and outputs scroll inside their slide, and more):
    jupyter nbconvert --to slides --config scripts/slides_config.py llama3-from-scratch.ipynb
"""

import argparse
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = [REPO / "llama3-from-scratch.ipynb", REPO / "llama3-from-scratch.zh.ipynb"]


def slide_type(cell, index: int) -> str:
    """The reveal.js role of a cell: "slide", "subslide" or "-" (stays with the one before)."""
    if cell.cell_type != "markdown":
        return "-"
    if index == 0 or cell.source.startswith("## "):
        return "slide"
    return "subslide"


def set_slide_metadata(notebook) -> int:
    """Sets every cell's slideshow metadata by the rule; returns how many cells changed."""
    changed = 0
    for index, cell in enumerate(notebook.cells):
        wanted = {"slide_type": slide_type(cell, index)}
        if cell.metadata.get("slideshow") != wanted:
            cell.metadata["slideshow"] = wanted
            changed += 1
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to set (default: both editions)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if any cell is not set by the rule")
    args = parser.parse_args()
    status = 0
    for path in args.notebooks or NOTEBOOKS:
        if not path.is_file():
            print(f"error: {path} does not exist", file=sys.stderr)
            return 2
        try:
            notebook = nbformat.read(path, as_version=4)
        except Exception as error:  # not JSON, not a notebook: say so in one line
            print(f"error: {path} is not a Jupyter notebook ({error})", file=sys.stderr)
            return 2
        changed = set_slide_metadata(notebook)
        if args.check:
            if changed:
                print(f"{path.name}: {changed} cells do not follow the slide rule; run python scripts/slides.py")
                status = 1
            else:
                print(f"{path.name}: every cell follows the slide rule")
        elif changed:
            nbformat.write(notebook, path)
            print(f"{path.name}: set the slide metadata of {changed} cells")
        else:
            print(f"{path.name}: already set")
    return status


if __name__ == "__main__":
    sys.exit(main())
