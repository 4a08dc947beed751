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
