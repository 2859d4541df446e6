"""The README's table "What you see when something goes wrong" quotes exactly the messages the
fault tests check in the real outputs (MESSAGES), no more and no fewer."""

import re

from conftest import REPO

from faults.pipeline import MESSAGES


def test_readme_fault_table_quotes_the_checked_messages():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## What you see when something goes wrong\n", 1)[1].split("\n## ")[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ")][2:]
    quoted = [span for row in rows for span in re.findall(r"`([^`]+)`", row[1])]
    assert sorted(quoted) == sorted(MESSAGES.values())
