"""The README and docs/ say what is true: the README's two commands are the ones CI and the
install script run, every ``hrvs-ray`` command line in them parses with the tool's own
parser, every repository path and relative link (anchor included) resolves, and the docs
index lists every page. Pure text and argparse: no torch, no Ray, fast."""
from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest
import yaml

from hrvs_ray.cli import build_parser
from tests.helpers import REPO  # noqa: E402  (after the stdlib imports)

README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
# every Markdown page a reader is sent to; the index files of benchmarks/ and tools/ included
PAGES = [README, *DOCS, REPO / "benchmarks" / "README.md", REPO / "tools" / "README.md"]

INSTALL_AND_RUN = "bash apptainer/install.sh .venv && .venv/bin/hrvs-ray sweep sweeps/quick.yaml"
TEST_COMMAND = ".venv/bin/python -m pytest -q"


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[\w-]*\n(.*?)^```", text, flags=re.M | re.S)


def _code(text: str) -> list[str]:
    """Every piece of code on a page: the lines of fenced blocks, and inline code spans outside them."""
    blocks = _code_blocks(text)
    outside = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return [ln for b in blocks for ln in b.splitlines()] + re.findall(r"`([^`\n]+)`", outside)


def test_readme_is_a_front_door() -> None:
    assert len(README.read_text().splitlines()) <= 300


def test_readme_commands_are_the_ones_ci_and_the_image_run() -> None:
    blocks = [b.strip() for b in _code_blocks(README.read_text())]
    assert INSTALL_AND_RUN in blocks and TEST_COMMAND in blocks
    # .ci/run runs the README's test command verbatim, on a line of its own
    assert TEST_COMMAND in (REPO / ".ci" / "run").read_text().splitlines()
    # the install command's pieces exist and the quick sweep is the synthetic, local one the README promises
    assert (REPO / "apptainer" / "install.sh").is_file()
    quick = yaml.safe_load((REPO / "sweeps" / "quick.yaml").read_text())
    assert quick["name"] == "quick" and quick["dataset"]["kind"] == "synthetic"
    assert "clusters" not in quick


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse exposes subcommands only through this private list
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _command_parser(words: list[str]) -> tuple[argparse.ArgumentParser, list[str]] | None:
    """The (sub)parser a command line after ``hrvs-ray`` names and the words after its name,
    or None if it names no subcommand."""
    parser, rest, depth = build_parser(), list(words), 0
    while rest and rest[0] in _subparsers(parser):
        parser, depth = _subparsers(parser)[rest.pop(0)], depth + 1
    return (parser, rest) if depth else None


def _hrvs_command_lines() -> list[tuple[str, str]]:
    """(page, text after ``hrvs-ray ``) for every hrvs-ray invocation in the pages' code: up
    to the end of the line, a shell ``&&``, a comment or a line continuation."""
    found = []
    for page in PAGES:
        for code in _code(page.read_text()):
            for line in code.splitlines():
                for m in re.finditer(r"(?:^|[\s/(])hrvs-ray\s+(\S.*)", line):
                    cmd = re.split(r"\s&&\s|\s#\s|\s\\$", m.group(1))[0].strip()
                    found.append((page.name, cmd))
    return found


def test_the_pages_have_command_lines_to_check() -> None:
    # guards the extraction below: a regex that found nothing would make the next test pass vacuously
    assert len(_hrvs_command_lines()) >= 30


@pytest.mark.parametrize(("page", "line"), _hrvs_command_lines())
def test_every_hrvs_ray_flag_in_the_docs_exists(page: str, line: str) -> None:
    """Synopses (``sweep SWEEP.yaml [--out DIR]``) name only options the subcommand has; a
    concrete command line (no brackets, no placeholders) parses as the CLI would parse it."""
    words = line.replace("[", " ").replace("]", " ").replace("|", " ").split()
    got = _command_parser(words)
    assert got is not None, f"{page}: `hrvs-ray {line}` names no subcommand"
    parser, args = got
    options = {o for a in parser._actions for o in a.option_strings}
    flags = {w.split("=", 1)[0] for w in words if w.startswith("--")}
    assert flags <= options, f"{page}: `hrvs-ray {line}`: unknown {sorted(flags - options)}"
    # a concrete line (positional arguments first, no brackets or placeholders), not a command
    # or an option named in prose (`plan --format json`)
    if args and not args[0].startswith("-") and not re.search(r"[\[\]…<>]|\.\.\.|\b[A-Z_]{3,}\b", line):
        build_parser().parse_args(shlex.split(line))   # a concrete line: argparse exits on what it rejects


_PATH = re.compile(r"`((?:(?:hrvs_ray|benchmarks|tools|sweeps|apptainer|tests|docs)/|reports/example)[\w./+-]*)`")


def test_every_repository_path_the_pages_mention_exists() -> None:
    """Paths like `hrvs_ray/x/y.py`, `benchmarks/z.py`, `sweeps/s.yaml` on any page (under
    reports/, only the committed examples: the others are what a run writes)."""
    missing = []
    for page in PAGES:
        for p in set(_PATH.findall(page.read_text())):
            if not (REPO / p).exists() and "*" not in p and "<" not in p:
                missing.append(f"{page.relative_to(REPO)}: {p}")
    assert not missing


def test_every_python_m_module_the_pages_name_exists() -> None:
    missing = []
    for page in PAGES:
        for mod in set(re.findall(r"python -m ((?:benchmarks|tools|tests)(?:\.[a-z_][a-z0-9_]*)+)", page.read_text())):
            path = REPO / Path(*mod.split("."))
            if not (path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()):
                missing.append(f"{page.relative_to(REPO)}: {mod}")
    assert not missing


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    return {_slug(h) for h in re.findall(r"^#{1,6}\s+(.+)$", text, flags=re.M)}


def test_every_relative_link_and_anchor_resolves() -> None:
    broken = []
    for page in PAGES:
        text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue   # an external URL: not checked offline
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert not broken


def test_the_docs_index_lists_every_page() -> None:
    index = (REPO / "docs" / "index.md").read_text()
    linked = set(re.findall(r"\]\(([\w-]+\.md)(?:#[^)]*)?\)", index))
    assert {p.name for p in DOCS} - {"index.md"} <= linked
    assert "docs/index.md" in README.read_text()
