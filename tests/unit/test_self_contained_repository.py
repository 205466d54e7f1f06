"""The repository explains itself: no file points at documents outside it.

The contract, the architecture and the provider notes live in docs/ (api.md, architecture.md,
providers.md); nothing may send a reader to a folder beside the repository, so a clone on its own is
complete. One exception: tests may read the recorded provider transcripts kept beside the project
(../shared/provider-transcripts/), and skip, saying so, when they are absent.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SKIPPED_DIRS = {
    ".git",
    ".venv",
    "node_modules",
    "var",
    "test-artifacts",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
}
SKIPPED_PATHS = {Path("gateway/static/vendor"), Path(__file__).relative_to(REPO_ROOT)}

# Ways a file has pointed outside the repository.
OUTSIDE_REFERENCES = {
    "the folder beside the repository": re.compile(r"\.\./shared\b|\bshared/docs\b"),
    "a parent of the repository": re.compile(r"\bREPO(?:_ROOT)?\.parent\b"),
    "a design note that is not in the repository": re.compile(
        r"runtime-notes|product-description|\bstyle\.md\b"
    ),
    "a contract document by a bare name (write docs/api.md)": re.compile(
        r"(?<![\w/.-])(?:api|architecture|providers)\.md\b"
    ),
    "the provider transcripts (tests only)": re.compile(r"provider-transcripts"),
}
# The one allowed reference, in tests only: the recorded provider transcripts.
TRANSCRIPTS = re.compile(
    r"\.\./shared/provider-transcripts/?|REPO\.parent / \"shared\" / \"provider-transcripts\""
)
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


def candidate_files() -> list[Path]:
    """The repository's files: git's list (tracked, and new ones not ignored), else a walk."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        return [Path(name) for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        return [path.relative_to(REPO_ROOT) for path in REPO_ROOT.rglob("*")]


def repository_text_files() -> list[Path]:
    files = []
    for relative in candidate_files():
        path = REPO_ROOT / relative
        if not path.is_file() or SKIPPED_DIRS & set(relative.parts):
            continue
        if relative in SKIPPED_PATHS or any(parent in SKIPPED_PATHS for parent in relative.parents):
            continue
        try:
            path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # images and other binaries
        files.append(relative)
    return sorted(files)


FILES = repository_text_files()


def outside_references(relative: Path, text: str) -> list[str]:
    if relative.parts[0] == "tests":
        text = TRANSCRIPTS.sub("", text)
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for what, pattern in OUTSIDE_REFERENCES.items():
            # Inside docs/, the documents link to each other by their bare names.
            if relative.parts[0] == "docs" and what.startswith("a contract document"):
                continue
            if pattern.search(line):
                found.append(f"{relative}:{number}: {what}: {line.strip()[:120]}")
    return found


def test_the_walk_sees_the_repository():
    assert Path("docs/api.md") in FILES and Path("shared/config.py") in FILES
    assert Path("README.md") in FILES and Path("requirements.txt") in FILES


@pytest.mark.parametrize("relative", FILES, ids=str)
def test_no_file_refers_to_anything_outside_the_repository(relative):
    assert outside_references(relative, (REPO_ROOT / relative).read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("relative", [f for f in FILES if f.suffix == ".md"], ids=str)
def test_every_relative_markdown_link_resolves_inside_the_repository(relative):
    for target in MARKDOWN_LINK.findall((REPO_ROOT / relative).read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:|#", target):
            continue  # a URL or an anchor
        resolved = (REPO_ROOT / relative).parent.joinpath(target.split("#")[0]).resolve()
        assert resolved.is_relative_to(REPO_ROOT), f"{relative} links outside: {target}"
        assert resolved.exists(), f"{relative} links to a missing file: {target}"


@pytest.mark.parametrize(
    ("relative", "text", "flagged"),
    [
        ("README.md", "See ../shared/docs/api.md.", True),
        ("shared/x.py", "# as api.md says", True),
        ("shared/x.py", "# as docs/api.md says", False),
        ("docs/x.md", "see [api.md](api.md)", False),
        ("requirements.txt", "# see runtime-notes.md", True),
        ("shared/x.py", 'path = REPO_ROOT.parent / "elsewhere"', True),
        ("tests/x.py", 'TRANSCRIPTS = REPO.parent / "shared" / "provider-transcripts"', False),
        ("tests/x.py", "reads ../shared/provider-transcripts/ when present", False),
        ("tests/x.py", "reads ../shared/docs/api.md", True),
        ("simulator/x.py", "reads ../shared/provider-transcripts/", True),
    ],
)
def test_the_check_flags_what_it_should(relative, text, flagged):
    assert bool(outside_references(Path(relative), text)) == flagged
