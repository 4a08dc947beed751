"""Numbers the README states about the tests, checked against what pytest collects."""

import re
import subprocess
import sys

from notebook_runner import REPO


def collected(test_file: str) -> int:
    """How many test items pytest collects from TEST_FILE."""
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", test_file],
                            cwd=REPO, capture_output=True, text=True, check=True)
    return sum(line.startswith(f"{test_file}::") for line in result.stdout.splitlines())


def test_the_readme_states_how_many_bad_input_cases_are_tested():
    text = (REPO / "README.md").read_text()
    stated = re.search(r"(\d+) bad-input cases.*?(\d+) through the real notebook \(`tests/test_bad_input_notebook\.py`"
                       r".*?(\d+) through the scripts \(`tests/test_bad_input_scripts\.py`", text, re.S)
    assert stated, "the README no longer says how many bad-input cases are tested"
    total, notebook, scripts = map(int, stated.groups())
    assert notebook == collected("tests/test_bad_input_notebook.py")
    assert scripts == collected("tests/test_bad_input_scripts.py")
    assert total == notebook + scripts


def bash_blocks(name: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", (REPO / name).read_text(encoding="utf-8"), re.S)


def ci_block(marker: str) -> str:
    """The block .ci/run executes: the first ```bash block after <!-- ci:MARKER --> in README.md."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.search(rf"<!-- ci:{marker} -->\n```bash\n(.*?)```", text, re.S).group(1)


def test_the_chinese_readme_gives_the_very_commands_ci_runs():
    # README.zh.md is written by hand; its run and test commands must stay those of README.md, which CI executes
    blocks = bash_blocks("README.zh.md")
    for marker in ("run", "test"):
        assert ci_block(marker) in blocks, f"README.zh.md lacks README.md's {marker} command, word for word"


def test_the_readmes_link_only_to_files_that_exist():
    for name in ("README.md", "README.zh.md"):
        text = (REPO / name).read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if not re.match(r"[a-z]+:", target):  # a relative link, not https: or mailto:
                assert (REPO / target).exists(), f"{name} links to {target}, which does not exist"


def test_the_readme_states_how_many_wrong_answers_the_exercise_checks_name():
    from test_exercises import WRONG_ANSWERS

    stated = re.search(r"puts in (\d+) typical wrong answers", (REPO / "README.md").read_text(encoding="utf-8"))
    zh = re.search(r"逐个放入 (\d+) 个典型的错误答案", (REPO / "README.zh.md").read_text(encoding="utf-8"))
    assert stated and zh, "the READMEs no longer say how many wrong answers are tested"
    assert int(stated.group(1)) == int(zh.group(1)) == len(WRONG_ANSWERS)


def test_the_readme_opens_with_the_overview_that_the_script_draws(tmp_path):
    # The picture at the top is scripts/diagrams.py's overview of Llama 3 8B's params.json, byte for byte.
    text = (REPO / "README.md").read_text(encoding="utf-8")
    first = text.split("\n\n")[1]
    assert first.startswith("![") and "(scripts/overview-llama3-8b.png)" in first, first
    drawn = tmp_path / "overview.png"
    subprocess.run([sys.executable, "scripts/diagrams.py", "Meta-Llama-3-8B/params.json", str(drawn), "--tokens", "17"],
                   cwd=REPO, check=True, capture_output=True)
    assert drawn.read_bytes() == (REPO / "scripts" / "overview-llama3-8b.png").read_bytes(), \
        "run: python scripts/diagrams.py Meta-Llama-3-8B/params.json scripts/overview-llama3-8b.png --tokens 17"
