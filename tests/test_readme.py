"""The README is a contract: every ```python block runs as written, and every `tsm` command
line of its code blocks is accepted by the CLI's argument parser.

Command lines use synopsis notation: ``[...]`` is optional (its content is parsed too),
``a|b|c`` offers alternatives (each is parsed), ``...`` stands for more of the same,
``# ...`` is a comment, a trailing ``\\`` continues the line, and the upper-case
placeholders of ``PLACEHOLDERS`` stand for values.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from temporal_shift.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"

# Placeholders the README's command lines use, with a value of the right type.
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


def code_blocks(text: str) -> list[tuple[int, str, str]]:
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
    assert info is None, f"README.md:{start - 1}: code block not closed"
    return blocks


BLOCKS = code_blocks(README.read_text(encoding="utf-8"))
PYTHON = [(start, code) for start, info, code in BLOCKS if info == "python"]


def command_lines(blocks: list[tuple[int, str, str]]) -> list[tuple[int, str]]:
    """(line number, text after `tsm`) of every tsm command in the non-Python blocks."""
    found = []
    for start, info, code in blocks:
        if info == "python":
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
        argvs += [first[:k] + [other] + first[k + 1 :] for other in choices[1:]]
    return argvs


COMMANDS = command_lines(BLOCKS)


def test_the_readme_has_the_blocks_these_tests_run():
    assert len(PYTHON) >= 2
    assert len(COMMANDS) >= 20
    # the two Quick start commands are among them
    assert any(text == "demo" for _, text in COMMANDS)


@pytest.mark.usefixtures("one_thread")  # small examples: threads only compete on a shared machine
@pytest.mark.parametrize(("start", "code"), PYTHON, ids=[f"README.md:{start}" for start, _ in PYTHON])
def test_python_block_runs(start, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write files (checkpoints) where they run
    exec(compile(code, f"README.md:{start}", "exec"), {"__name__": "__readme__"})


@pytest.mark.parametrize(("number", "text"), COMMANDS, ids=[f"README.md:{n}" for n, _ in COMMANDS])
def test_command_line_parses(number, text, capsys):
    parser = build_parser()
    for argv in synopsis_argvs(text):
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            error = capsys.readouterr().err.strip().splitlines()[-1]
            pytest.fail(f"README.md:{number}: tsm {' '.join(argv)}: {error}")
        assert callable(args.func)
