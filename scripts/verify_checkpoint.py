"""Check a downloaded Meta model folder against its checklist.chk, as Meta's download script does.

Meta's download.sh ends each model with `md5sum -c checklist.chk` in the model's folder: checklist.chk
lists the md5 of every file Meta sent (consolidated.*.pth, params.json, tokenizer.model), one
`<32 hex digits>  <file name>` line per file. This script does the same check in Python, on any machine,
with a progress bar over the bytes (an 8B checkpoint is 16 GB), and says for each file that fails what it
looks like: missing, empty, an HTML or XML page (the classic failed download: an expired or wrong
presigned URL answers 403 with an error page, which then gets saved under the model file's name), or a
.pth file that is not a complete zip archive (a truncated download).

Exit status: 0 when every listed file is OK, 1 when any is missing or differs, 2 on a usage error (no such
folder, no checklist.chk, a malformed line).

Usage:
    python scripts/verify_checkpoint.py DIR [--quiet]
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

CHECKLIST_NAME = "checklist.chk"
READ_CHUNK = 8 * 2**20
# md5sum's output format: the digest, a space, then " " (text mode) or "*" (binary mode), then the name.
CHECKLIST_LINE = re.compile(r"(?P<md5>[0-9a-fA-F]{32}) [ *](?P<name>.+)")
REDOWNLOAD = "download it again (Meta's presigned download URLs expire after 24 hours: request a new one)"


class ChecklistError(Exception):
    """A usage error: no folder, no checklist.chk, or a line that is not `<md5>  <name>`."""


@dataclass
class Entry:
    line_number: int
    md5: str
    name: str


@dataclass
class Result:
    entry: Entry
    ok: bool
    problem: str = ""  # why it failed: one sentence


# --------------------------------------------------------------------------- the checklist
def looks_like_markup(head: bytes) -> str | None:
    """'an HTML page' or 'an XML document' when HEAD (a file's first bytes) is one, else None."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text[:1024]:
        return "an HTML page"
    if text.startswith(b"<?xml") or text.startswith(b"<error>"):
        return "an XML document"
    return None


def read_checklist(folder: Path) -> list[Entry]:
    """The entries of FOLDER/checklist.chk; ChecklistError names the folder, the file or the bad line."""
    if not folder.is_dir():
        raise ChecklistError(f"{folder} is not a directory")
    path = folder / CHECKLIST_NAME
    if not path.is_file():
        raise ChecklistError(f"{path} not found: Meta's download script saves checklist.chk into each model's "
                             "folder; download it again with the model, or check the files by hand with md5sum")
    raw = path.read_bytes()
    if kind := looks_like_markup(raw[:4096]):
        raise ChecklistError(f"{path} is {kind}, not a checklist: its download failed; {REDOWNLOAD}")
    entries = []
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        match = CHECKLIST_LINE.fullmatch(line.rstrip("\r"))
        if match is None:
            raise ChecklistError(f"{path}, line {number} is not '<32 hex digits of md5>  <file name>': {line[:120]!r}")
        name = match["name"]
        parts = PurePosixPath(name).parts
        if name.startswith("/") or ".." in parts or not parts:
            raise ChecklistError(f"{path}, line {number} names {name!r}, which is not a file inside {folder}")
        entries.append(Entry(number, match["md5"].lower(), name))
    if not entries:
        raise ChecklistError(f"{path} lists no files")
    return entries


# --------------------------------------------------------------------------- the files
def md5_of(path: Path, bar) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(READ_CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def diagnose(path: Path, size: int) -> str:
    """What a file whose md5 differs looks like, for the message."""
    with path.open("rb") as f:
        head = f.read(4096)
    if size == 0:
        return "the file is empty: its download failed; " + REDOWNLOAD
    if kind := looks_like_markup(head):
        code = re.search(rb"<code>\s*([^<]{1,60})</code>", head, re.IGNORECASE)
        said = f" (the server said {code[1].decode(errors='replace').strip()})" if code else ""
        return (f"the file is {kind} of {size:,} bytes{said}, not the model file: the download failed "
                f"(an expired or wrong URL answers 403 with such a page); {REDOWNLOAD}")
    if path.suffix == ".pth" and not zipfile.is_zipfile(path):
        return (f"the file ({size:,} bytes) is not a complete zip archive, as every PyTorch checkpoint is: "
                f"the download was cut short or the file is damaged; {REDOWNLOAD}")
    return (f"its bytes ({size:,}) differ from the ones Meta listed: the file is damaged, or belongs to another "
            f"model or release; {REDOWNLOAD}")


def verify(folder: Path, progress: bool = True) -> list[Result]:
    """Check every file of FOLDER's checklist.chk; one Result per entry, in the checklist's order."""
    entries = read_checklist(folder)
    present = {e.name: folder / e.name for e in entries if (folder / e.name).is_file()}
    total = sum(p.stat().st_size for p in present.values())
    results = []
    # disable=None: the bar shows on a terminal only, not in logs
    with tqdm(total=total, unit="B", unit_scale=True, file=sys.stderr, disable=None if progress else True,
              leave=False) as bar:
        for entry in entries:
            path = present.get(entry.name)
            if path is None:
                what = "is a folder, not a file" if (folder / entry.name).exists() else "is missing"
                results.append(Result(entry, False, f"{what} (listed on line {entry.line_number} of {CHECKLIST_NAME})"))
                continue
            bar.set_description(entry.name)
            actual = md5_of(path, bar)
            if actual == entry.md5:
                results.append(Result(entry, True))
            else:
                problem = (f"md5 {actual}, but {CHECKLIST_NAME} says {entry.md5}: "
                           + diagnose(path, path.stat().st_size))
                results.append(Result(entry, False, problem))
    return results


def unlisted_checkpoints(folder: Path, entries: list[Entry]) -> list[str]:
    """consolidated.*.pth files that checklist.chk does not name (so nothing checked them)."""
    listed = {e.name for e in entries}
    return sorted(p.name for p in folder.glob("consolidated.*.pth") if p.name not in listed)


# --------------------------------------------------------------------------- command line
def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Check every file of a Meta model folder against its checklist.chk (md5), like the "
                    "`md5sum -c checklist.chk` of Meta's download script, and say which file is bad and why.")
    parser.add_argument("dir", type=Path, help="the model folder: consolidated.*.pth, params.json, "
                                               "tokenizer.model and checklist.chk")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        results = verify(args.dir, progress=not args.quiet)
    except ChecklistError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an unreadable file: say which, without a traceback
        print(f"error: cannot read {exc.filename or args.dir}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    for result in results:
        if result.ok:
            print(f"OK      {result.entry.name}")
        else:
            print(f"FAILED  {result.entry.name}: {result.problem}")
    bad = [r.entry.name for r in results if not r.ok]
    for name in unlisted_checkpoints(args.dir, [r.entry for r in results]):
        print(f"note: {name} is not listed in {CHECKLIST_NAME}, so it was not checked")
    if bad:
        print(f"{len(bad)} of {len(results)} files failed: {', '.join(bad)}")
        return 1
    print(f"all {len(results)} files match {CHECKLIST_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
