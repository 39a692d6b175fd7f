"""The README and the pages of docs/ are a contract: every ```python block runs as written,
every `tsm` command line of their other code blocks is accepted by the CLI's argument
parser, every relative link leads to a file (and heading) that exists, and the README stays
a doorway of at most 250 lines whose command table names every command.

Command lines use synopsis notation: ``[...]`` is optional (its content is parsed too),
``a|b|c`` offers alternatives (each is parsed), ``...`` stands for more of the same,
``# ...`` is a comment, a trailing ``\\`` continues the line, and the upper-case
placeholders of ``PLACEHOLDERS`` stand for values.

A ```python block runs in an empty temporary directory, on the CPU, without network: the
examples use tiny models and data they make themselves. The one block that downloads
(```python published, in docs/published.md) is run by tests/test_weights.py against a
checkpoint served from a file:// URL.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from temporal_shift.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 250

# Placeholders the pages' command lines use, with a value of the right type.
PLACEHOLDERS = {
    "CHECKPOINT": "model.pt",
    "CKPT": "model.pt",
    "FILE": "file",
    "ROOT": "data",
    "LIST": "list.txt",
    "SOURCE": "clip.mp4",
    "T": "8",
    "K": "2",
    "N": "4",
    "M": "3",
    "F": "out.json",
    "NAME": "tsm_r50_kinetics400_8f",
    "DIR": "cache",
}
# code-block info strings: "python" runs here, "python published" in tests/test_weights.py
PYTHON_INFOS = {"python", "python published"}


def name_of(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def code_blocks(text: str, name: str = "README.md") -> list[tuple[int, str, str]]:
    """(first line number, info string, code) of each fenced code block."""
    blocks, info, start, lines = [], None, 0, []
    for number, line in enumerate(text.splitlines(), start=1):
        fence = re.match(r"^\s*```(.*)$", line)
        if fence and info is None:
            info, start, lines = fence.group(1).strip(), number + 1, []
        elif fence:
            blocks.append((start, info, "\n".join(lines) + "\n"))
            info = None
        elif info is not None:
            lines.append(line)
    assert info is None, f"{name}:{start - 1}: code block not closed"
    return blocks


BLOCKS = {name_of(page): code_blocks(page.read_text(encoding="utf-8"), name_of(page)) for page in PAGES}
PYTHON = [(name, start, code) for name, blocks in BLOCKS.items() for start, info, code in blocks if info == "python"]


def command_lines(blocks: list[tuple[int, str, str]]) -> list[tuple[int, str]]:
    """(line number, text after `tsm`) of every tsm command in the non-Python blocks."""
    found = []
    for start, info, code in blocks:
        if info in PYTHON_INFOS:
            continue
        lines = code.splitlines()
        k = 0
        while k < len(lines):
            number, line = start + k, lines[k]
            while line.rstrip().endswith("\\") and k + 1 < len(lines):  # continuation
                k += 1
                line = line.rstrip()[:-1] + " " + lines[k].strip()
            k += 1
            line = re.sub(r"\s#.*$", "", line)  # comment
            for part in re.split(r"&&|\|\s", line):
                command = re.match(r"^\s*(?:\S*/)?tsm\s+(.*)$", part) or re.match(
                    r"^\s*torchrun\s.*-m\s+temporal_shift\.cli\s+(.*)$", part
                )
                if command:
                    found.append((number, command.group(1).strip()))
    return found


def synopsis_argvs(text: str) -> list[list[str]]:
    """The argvs a synopsis line stands for (see the module docstring): every optional part
    included, and each alternative of an ``a|b|c`` choice once."""
    tokens = []
    for token in shlex.split(text.replace("[", " ").replace("]", " ")):
        if token == "...":
            continue
        if re.fullmatch(r"[A-Z][A-Z_]*", token):
            assert token in PLACEHOLDERS, f"placeholder {token} has no example value in PLACEHOLDERS"
            token = PLACEHOLDERS[token]
        choices = token.split("|") if "|" in token and not token.startswith(("-", "/", ".")) else [token]
        tokens.append(choices)
    first = [choices[0] for choices in tokens]
    argvs = [first]
    for k, choices in enumerate(tokens):
        argvs += [[*first[:k], other, *first[k + 1 :]] for other in choices[1:]]
    return argvs


COMMANDS = [(name, number, text) for name, blocks in BLOCKS.items() for number, text in command_lines(blocks)]


def test_the_pages_have_the_blocks_these_tests_run():
    assert len(PAGES) > 10
    readme_python = [start for name, start, _ in PYTHON if name == "README.md"]
    assert len(readme_python) == 1  # the README's one example
    assert len(PYTHON) >= 10 and len(COMMANDS) >= 30
    assert any(name == "README.md" and text == "demo" for name, _, text in COMMANDS)


def test_python_blocks_are_run_by_a_test():
    """A block tagged python-something would escape both runners."""
    for name, blocks in BLOCKS.items():
        for start, info, _ in blocks:
            if info.startswith("python"):
                assert info in PYTHON_INFOS, f"{name}:{start - 1}: code block ```{info} is run by no test"
                assert info == "python" or name == "docs/published.md", f"{name}:{start - 1}: ```{info}"


@pytest.mark.usefixtures("one_thread")  # small examples: threads only compete on a shared machine
@pytest.mark.parametrize(("name", "start", "code"), PYTHON, ids=[f"{name}:{start}" for name, start, _ in PYTHON])
def test_python_block_runs(name, start, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write files (checkpoints, data) where they run
    exec(compile(code, f"{name}:{start}", "exec"), {"__name__": "__readme__"})


@pytest.mark.parametrize(("name", "number", "text"), COMMANDS, ids=[f"{name}:{n}" for name, n, _ in COMMANDS])
def test_command_line_parses(name, number, text, capsys):
    parser = build_parser()
    for argv in synopsis_argvs(text):
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            error = capsys.readouterr().err.strip().splitlines()[-1]
            pytest.fail(f"{name}:{number}: tsm {' '.join(argv)}: {error}")
        assert callable(args.func)


# --- the README is a doorway ------------------------------------------------------------


def test_the_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; reference material goes to docs/"


def test_the_quick_start_commands_are_the_ones_ci_runs():
    """The two Quick start lines, byte for byte; .ci/run runs the second one."""
    readme = README.read_text(encoding="utf-8").splitlines()
    demo = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/tsm demo"
    tests = "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"
    assert demo in readme and tests in readme
    assert tests in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def subcommands(parser: argparse.ArgumentParser, prefix: str = "tsm") -> list[str]:
    """Every command of the parser, as typed: groups down to their leaves ("tsm bench train")."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        return [prefix]
    return [
        name
        for action in actions
        for sub, child in action.choices.items()
        for name in subcommands(child, f"{prefix} {sub}")
    ]


def test_the_readme_command_table_names_every_command():
    table = [line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("| `tsm ")]
    named = set()
    for row in table:
        *words, last = row.split("`")[1].replace("\\|", "|").split()
        for alternative in last.split("|"):  # `tsm prepare a|b|c` names a, b and c
            command = [*words, alternative]
            named.update(" ".join(command[:k]) for k in range(2, len(command) + 1))
    missing = [command for command in subcommands(build_parser()) if command not in named]
    assert not missing, f"README.md's command table lacks {missing}"


# --- links --------------------------------------------------------------------------------


def prose(text: str, *, code_spans: bool = False) -> str:
    """The text outside fenced code blocks (lines kept in place), without inline code spans
    or, with ``code_spans``, with their text but not their backticks."""
    out, fenced = [], False
    for line in text.splitlines():
        if re.match(r"^\s*```", line):
            fenced = not fenced
            out.append("")
            continue
        out.append("" if fenced else line.replace("`", "") if code_spans else re.sub(r"`[^`]*`", "", line))
    return "\n".join(out)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens,
    a repeated heading numbered."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose(page.read_text(encoding="utf-8"), code_spans=True).splitlines():
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return found


def links(page: Path) -> list[tuple[int, str]]:
    """(line number, target) of every markdown link and image of a page's prose."""
    found = []
    for number, line in enumerate(prose(page.read_text(encoding="utf-8")).splitlines(), start=1):
        found += [(number, target) for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", line)]
    return found


LINKS = [
    (name_of(page), number, target)
    for page in PAGES
    for number, target in links(page)
    if not re.match(r"^[a-z][a-z0-9+.-]*:", target)
]  # http:, https:, mailto: are not checked


def test_the_pages_link_to_each_other():
    assert len(LINKS) >= 40
    readme_targets = {target.split("#")[0] for name, _, target in LINKS if name == "README.md"}
    unlinked = [name_of(page) for page in PAGES[1:] if name_of(page) not in readme_targets]
    assert not unlinked, f"README.md links to no {unlinked}"


@pytest.mark.parametrize(("name", "number", "target"), LINKS, ids=[f"{name}:{n}" for name, n, _ in LINKS])
def test_relative_link_exists(name, number, target):
    path, _, anchor = target.partition("#")
    page = ROOT / name
    linked = (page.parent / path).resolve() if path else page
    assert linked.exists(), f"{name}:{number}: {target}: no such file"
    assert linked.is_relative_to(ROOT), f"{name}:{number}: {target} leaves the repository"
    if anchor:
        assert linked.suffix == ".md", f"{name}:{number}: {target}: an anchor into a file that is not a page"
        assert anchor in anchors(linked), f"{name}:{number}: {target}: no heading with that anchor"
