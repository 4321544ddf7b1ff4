"""The README's exit-code table is the code's."""

import pathlib
import re

from minifier.errors import EXIT_MEANINGS

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_readme_exit_codes_match_the_code():
    text = README.read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \| (.+?) \|$", section, re.M)
    assert [(int(c), n, m) for c, n, m in rows] == [
        (s.value, s.name.lower(), m) for s, m in EXIT_MEANINGS.items()]


def test_readme_starts_with_the_two_commands():
    head = README.read_text().split("\n## ", 1)[0]
    assert head.index("make demo") < head.index("make test")
