"""Keeps GUIDE.md's code excerpts and terminal sessions the real thing.

GUIDE.md shows code cut from the sources, between marker comments:

    // guide:start at_index          (Rust and .proto files; `#` in Python)
    ...
    // guide:end at_index

or, for a region of one line, `// guide:line at_index` just above it,

and holds each excerpt between HTML comments that name its file and region:

    <!-- excerpt src/service.rs at_index -->
    ```rust
    ...
    ```
    <!-- /excerpt -->

A region is shown with its common indentation removed and without any
marker lines nested in it, so regions may overlap (the whole service in
the proto, and each rpc line inside it).

Terminal sessions are held the same way, each naming the binary and the
inputs typed at its prompts (shell words; '' is an empty line):

    <!-- session client_client_stream 7 5 '' -->
    ```console
    $ target/release/client_client_stream
    ...
    ```
    <!-- /session -->

This script checks and rewrites the excerpts (stdlib only, no build
needed). The sessions need the real binaries, so they are checked and
rewritten by interop/tests/test_guide.py, which runs them with the
interop suite's harness and uses this module to read and write GUIDE.md.

    python3 interop/guide.py --check    # exit 1, with a diff, if an excerpt is stale
    python3 interop/guide.py --update   # rewrite the excerpts from the sources
    make guide                          # both: excerpts, then sessions from the binaries
"""

import argparse
import difflib
import re
import shlex
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "GUIDE.md"

MARKER = re.compile(r"^\s*(?://|#)\s*guide:(?P<edge>start|end|line)\s+(?P<name>\S+)\s*$")
BLOCK = re.compile(
    r"^<!-- (?P<kind>excerpt|session) (?P<args>[^\n]*?) -->\n"
    r"(?P<body>.*?)"
    r"^<!-- /(?P=kind) -->$",
    re.MULTILINE | re.DOTALL,
)
LANGUAGES = {".rs": "rust", ".proto": "proto", ".py": "python"}
# What each session's first line shows: the binary as `make build` leaves it.
COMMAND = "$ target/release/{binary}"


class GuideError(Exception):
    """A marker or block that cannot be read: unbalanced, unknown, repeated."""


@dataclass
class Block:
    """One excerpt or session of the guide: where its body is in the text."""

    kind: str  # "excerpt" or "session"
    args: List[str]
    start: int  # the body's offsets in the guide's text
    end: int
    body: str

    @property
    def label(self) -> str:
        return f"{self.kind} {shlex.join(self.args)}"


def regions(path: Path) -> Dict[str, str]:
    """Every marked region of a source file, by name, as the guide shows it."""
    lines = path.read_text().splitlines()
    found: Dict[str, str] = {}
    open_at: Dict[str, int] = {}
    for number, line in enumerate(lines):
        match = MARKER.match(line)
        if not match:
            continue
        name = match["name"]
        if match["edge"] == "line":
            following = [l for l in lines[number + 1:] if not MARKER.match(l)]
            if name in open_at or name in found or not following:
                raise GuideError(f"{path}:{number + 1}: region {name} repeated, or no line follows")
            found[name] = following[0].strip() + "\n"
        elif match["edge"] == "start":
            if name in open_at or name in found:
                raise GuideError(f"{path}:{number + 1}: region {name} starts twice")
            open_at[name] = number
        else:
            if name not in open_at:
                raise GuideError(f"{path}:{number + 1}: region {name} ends but never started")
            body = [l for l in lines[open_at.pop(name) + 1:number] if not MARKER.match(l)]
            found[name] = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
    if open_at:
        raise GuideError(f"{path}: region(s) {', '.join(sorted(open_at))} never end")
    return found


def blocks(text: str) -> List[Block]:
    """The excerpt and session blocks of the guide, in order."""
    found = []
    for match in BLOCK.finditer(text):
        args = shlex.split(match["args"])
        if match["kind"] == "excerpt" and len(args) != 2:
            raise GuideError(f"<!-- excerpt {match['args']} -->: give a file and a region")
        if match["kind"] == "session" and not args:
            raise GuideError("<!-- session -->: give the binary")
        found.append(Block(match["kind"], args, match.start("body"), match.end("body"), match["body"]))
    opened = len(re.findall(r"^<!-- (?:excerpt|session) ", text, re.MULTILINE))
    if opened != len(found):
        raise GuideError(f"{opened} blocks open but {len(found)} are closed")
    return found


def fenced(language: str, content: str) -> str:
    return f"```{language}\n{content}```\n"


def render_excerpt(path: str, region: str) -> str:
    """The body an excerpt block should have: its region, fenced."""
    source = REPO / path
    if not source.is_file():
        raise GuideError(f"excerpt {path} {region}: no such file")
    found = regions(source)
    if region not in found:
        raise GuideError(f"excerpt {path} {region}: no region {region} in {path} "
                         f"(it has: {', '.join(sorted(found)) or 'none'})")
    return fenced(LANGUAGES.get(source.suffix, ""), found[region])


def render_session(binary: str, screen: str) -> str:
    """The body a session block should have, given what the terminal showed."""
    return fenced("console", COMMAND.format(binary=binary) + "\n" + screen)


def session_inputs(block: Block) -> List[str]:
    """The lines a session types at its prompts."""
    return block.args[1:]


def rewrite(text: str, render: Callable[[Block], str]) -> str:
    """`text` with each block's body replaced by `render(block)` (a block
    for which it returns None is left as it is)."""
    out, last = [], 0
    for block in blocks(text):
        body = render(block)
        out += [text[last:block.start], block.body if body is None else body]
        last = block.end
    return "".join(out) + text[last:]


def diff(block: Block, expected: str, source: str) -> str:
    """What is wrong with `block` if its body should be `expected`
    (from `source`): a unified diff, empty if nothing is."""
    return "".join(difflib.unified_diff(
        block.body.splitlines(keepends=True), expected.splitlines(keepends=True),
        f"GUIDE.md ({block.label})", source))


def excerpt_problem(block: Block) -> str:
    """What is wrong with an excerpt block, empty if nothing is."""
    try:
        expected = render_excerpt(*block.args)
    except GuideError as error:
        return str(error)
    return diff(block, expected, f"{block.args[0]} (region {block.args[1]})")


def stale_excerpts(text: str) -> List[str]:
    """What is wrong with each excerpt that is not its source region."""
    problems = (excerpt_problem(block) for block in blocks(text) if block.kind == "excerpt")
    return [problem for problem in problems if problem]


def update_excerpts(text: str) -> str:
    return rewrite(text, lambda block: render_excerpt(*block.args) if block.kind == "excerpt" else None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="exit 1 if an excerpt differs from its source")
    mode.add_argument("--update", action="store_true", help="rewrite the excerpts from their sources")
    parser.add_argument("--guide", type=Path, default=GUIDE)
    options = parser.parse_args()
    text = options.guide.read_text()
    try:
        if options.update:
            updated = update_excerpts(text)
            if updated != text:
                options.guide.write_text(updated)
            print(f"{options.guide.name}: {sum(b.kind == 'excerpt' for b in blocks(updated))} excerpts "
                  f"{'rewritten' if updated != text else 'already up to date'}")
            return 0
        problems = stale_excerpts(text)
    except GuideError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} stale excerpt(s): run `make guide` to refresh them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
