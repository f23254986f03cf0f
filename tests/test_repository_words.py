"""The repository speaks of the product: no text about how it was built.

README, docs, the package, its tests, benchmarks and examples say what the code does,
why, and how it was measured; they never cite working notes a reader does not have.
A reference to another project's tracker carries its full address (``https://...``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("README.md", "docs", "skkgp", "tests", "benchmarks", "examples")
SUFFIXES = {".py", ".rst", ".md", ".txt", ".toml", ".cfg", ".ini", ".html", ".css", ".js"}
# Build output of the docs is not written by hand.
SKIPPED_DIRS = {"_build", "generated", "auto_examples", "__pycache__", "gen_modules"}

# Spelled in pieces, so that this file does not match itself.
WORDS = re.compile(
    "|".join([
        r"sess" r"ion\s+[0-9]",
        r"later\s+sess" r"ion",
        r"sess" r"ion\s+notes",
        r"DES" r"IGN\.md",
        r"iss" r"ue\s+#?[0-9]",
        r"\bgo" r"als?\b",
    ]),
    re.IGNORECASE,
)


def _files():
    for entry in SCANNED:
        path = ROOT / entry
        if path.is_file():
            yield path
            continue
        for file in sorted(path.rglob("*")):
            if file.is_file() and file.suffix in SUFFIXES and not (
                SKIPPED_DIRS & set(file.relative_to(ROOT).parts)
            ):
                yield file


def _offences(text: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in WORDS.finditer(line):
            # Another project's tracker, cited with its full address, is a reference.
            if match.group().lower().startswith("iss") and "://" in line:
                continue
            found.append(f"{number}: {line.strip()}")
    return found


def test_scanned_folders_exist():
    assert all((ROOT / entry).exists() for entry in SCANNED)
    assert sum(1 for _ in _files()) > 50


@pytest.mark.parametrize("path", list(_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_words_about_how_it_was_built(path):
    offences = _offences(path.read_text(encoding="utf-8", errors="replace"))
    assert not offences, f"{path.relative_to(ROOT)} speaks of its making:\n" + "\n".join(
        offences
    )


@pytest.mark.parametrize(
    "line, offends",
    [
        ("as measured in sess" "ion 4", True),
        ("see the sess" "ion notes", True),
        ("as DES" "IGN.md says", True),
        ("Go" "al: 1.8x, not met", True),
        ("fixed in iss" "ue 7", True),
        ("torch-pruning iss" "ue 123 (https://github.com/VainF/Torch-Pruning/issues/123)", False),
        ("a training session of the user", False),
        ("Go" "alkeeper", False),
    ],
)
def test_the_check_itself(line, offends):
    assert bool(_offences(line)) is offends
