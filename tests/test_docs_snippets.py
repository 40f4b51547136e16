"""Printed outputs on the docs pages come from the snippets next to them, run today.

A page snippet is a ```bash fence holding ``.venv/bin/python - <<'EOF'`` … ``EOF``; when a
```text fence follows it, that block is the snippet's printed output. Each such snippet runs in its
own subprocess (this interpreter, the project root as working directory, one thread,
`TIMEOUT_S`), and its stdout must match the block line by line:

- text exactly (the line with its numbers blanked out);
- each number to its printed precision: within one unit of the last digit the page prints (a
  value on a rounding boundary may print either way when float rounding changes), integers
  exactly.

Every ```text block of a page must be such an output, so no printed output is left untested.
The snippets run two at a time (the machine has two cores), so the module's wall time is about
that of the slowest one: training the grokking MLP to step 317 takes 7 of its 11 s of CPU.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("ties.md",)
"""Pages whose printed outputs are checked here."""

TIMEOUT_S = 240
"""Wall-clock limit of one snippet: the slowest needs about 11 s of CPU, 50-70 s on the busy machine."""

SNIPPET = re.compile(
    r"^(?P<indent>[ ]*)```bash\n"
    r"(?P=indent)\.venv/bin/python - <<'EOF'\n"
    r"(?P<code>.*?)\n"
    r"(?P=indent)EOF\n"
    r"(?P=indent)```\n"
    r"(?:[ ]*\n)*"
    r"(?P=indent)```text\n"
    r"(?P<output>.*?)\n"
    r"(?P=indent)```$",
    re.MULTILINE | re.DOTALL,
)
NUMBER = re.compile(r"[-+−]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class Snippet:
    """One snippet of a page and the output printed under it."""

    page: str
    line: int
    code: str
    output: str

    @property
    def name(self) -> str:
        """page:line of the snippet's fence, the test id."""
        return f"{self.page}:{self.line}"


def _dedent(block: str, indent: str) -> str:
    """A fenced block's lines without the indentation of its fence (inside a list item)."""
    return "\n".join(line.removeprefix(indent) for line in block.split("\n"))


def page_snippets(page: str) -> list[Snippet]:
    """Every snippet of `page` that is followed by its printed output."""
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    return [
        Snippet(
            page,
            text.count("\n", 0, found.start()) + 1,
            _dedent(found["code"], found["indent"]),
            _dedent(found["output"], found["indent"]),
        )
        for found in SNIPPET.finditer(text)
    ]


SNIPPETS = [snippet for page in PAGES for snippet in page_snippets(page)]


def run_snippet(snippet: Snippet) -> subprocess.CompletedProcess[str]:
    """Run one snippet as the page shows it: the project's python reading it from stdin."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-"],
        input=snippet.code,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, Future[subprocess.CompletedProcess[str]]]]:
    """Every snippet started at once, two at a time, slowest first; each test waits for its own."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        ordered = sorted(SNIPPETS, key=lambda s: "train_grokking" not in s.code)
        yield {snippet.name: pool.submit(run_snippet, snippet) for snippet in ordered}


def _value(token: str) -> float:
    """A printed number as a float (the page's minus sign − included)."""
    return float(token.replace("−", "-"))


def _unit(token: str) -> float:
    """One unit of the last printed digit of a number; 0 for an integer (compared exactly)."""
    mantissa, _, exponent = token.lower().partition("e")
    if "." not in mantissa:
        return 0.0 if not exponent else 10.0 ** int(exponent)
    decimals = len(mantissa.split(".")[1])
    return 10.0 ** (int(exponent or 0) - decimals)


def line_mismatch(printed: str, shown: str) -> str | None:
    """Why a printed line differs from the page's line, or None when they agree."""
    if NUMBER.sub("#", printed) != NUMBER.sub("#", shown):
        return f"text differs:\n  page: {shown}\n  now:  {printed}"
    for new, old in zip(NUMBER.findall(printed), NUMBER.findall(shown), strict=True):
        if abs(_value(new) - _value(old)) > _unit(old) * (1 + 1e-9):
            return f"{old} on the page, {new} now:\n  page: {shown}\n  now:  {printed}"
    return None


def test_pages_have_snippets_with_outputs() -> None:
    """Every ```text block of a page is a snippet's output (none is left untested)."""
    for page in PAGES:
        text = (ROOT / "docs" / page).read_text(encoding="utf-8")
        blocks = len(re.findall(r"^[ ]*```text$", text, re.MULTILINE))
        found = page_snippets(page)
        assert found, f"{page}: no snippet with its output found"
        assert blocks == len(found), (
            f"{page}: {blocks} ```text blocks but {len(found)} follow a "
            ".venv/bin/python - <<'EOF' snippet"
        )


@pytest.mark.parametrize(
    ("printed", "shown", "agree"),
    [
        ("MI 1.79e-05  Omega +8.60e-04", "MI 1.79e-05  Omega +8.60e-04", True),
        ("MI 1.80e-05", "MI 1.79e-05", True),  # one unit of the last digit: rounding
        ("MI 1.81e-05", "MI 1.79e-05", False),
        ("Ω = +0.0075 bits", "Ω = +0.0050 bits", False),
        ("412 repeated values", "413 repeated values", False),  # integers exactly
        ("pre Ω -0.00 to 0.00", "pre Ω −0.00 to 0.00", True),
        ("min Ω -1.5 bits", "max Ω -1.5 bits", False),  # text exactly
        ("bins [3, 4]", "bins [3, 4, 4]", False),
    ],
)
def test_line_comparison(printed: str, shown: str, agree: bool) -> None:
    """Numbers agree to the page's printed precision, integers and the text exactly."""
    assert (line_mismatch(printed, shown) is None) is agree


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.name for s in SNIPPETS])
def test_snippet_prints_what_the_page_shows(
    snippet: Snippet, runs: dict[str, Future[subprocess.CompletedProcess[str]]]
) -> None:
    """The snippet runs and prints the lines of the ```text block under it."""
    done = runs[snippet.name].result()
    assert done.returncode == 0, f"{snippet.name} failed:\n{done.stderr[-3000:]}"
    printed = done.stdout.rstrip("\n").split("\n")
    shown = snippet.output.split("\n")
    assert len(printed) == len(shown), (
        f"{snippet.name}: {len(printed)} lines printed, {len(shown)} on the page:\n"
        + textwrap.indent(done.stdout, "  ")
    )
    problems = [
        problem
        for new, old in zip(printed, shown, strict=True)
        if (problem := line_mismatch(new, old)) is not None
    ]
    assert not problems, f"{snippet.name}:\n" + "\n".join(problems)
