"""GUIDE.md cannot go stale silently.

Each code excerpt in it must be exactly its marked region of the source
(interop/guide.py reads both), and each terminal session must be exactly
what the real binaries print for the guide's inputs: the Rust server from
the shared harness (127.0.0.1, a port the system picks) and each client
typed at in a pseudo-terminal, its stderr after its screen as a terminal
shows it. The sessions show the defaults the guide's programs use, so the
test server's address is written back as them: `[::]:1337` in the
server's line, `localhost:1337` in a client's.

`make guide` runs this file with GUIDE_UPDATE=1: the sessions are then
written into GUIDE.md instead of compared (after `guide.py --update` has
refreshed the excerpts).
"""

import os
import sys
from pathlib import Path

import pytest

from harness.paths import INTEROP, REPO
from conftest import run_client

sys.path.insert(0, str(INTEROP))
import guide  # noqa: E402 (interop/guide.py, found through the line above)

UPDATE = os.environ.get("GUIDE_UPDATE") == "1"

# What the sessions' command lines imply: the server's default address,
# and the address the clients (like the guide's) call by default.
SERVER_ADDRESS = "[::]:1337"
CLIENT_ADDRESS = "localhost:1337"

TEXT = guide.GUIDE.read_text()
BLOCKS = guide.blocks(TEXT)
EXCERPTS = [block for block in BLOCKS if block.kind == "excerpt"]
SESSIONS = [pytest.param(index, block, id=block.label)
            for index, block in enumerate(BLOCKS) if block.kind == "session"]

# Where marker comments may be: every region in them must be shown.
MARKED_SOURCES = ["build.rs", "src/**/*.rs", "bin/*.rs", "proto/**/*.proto"]


@pytest.mark.parametrize("block", EXCERPTS, ids=lambda block: " ".join(block.args))
def test_excerpt_is_its_source_region(block):
    problem = guide.excerpt_problem(block)
    if problem:
        pytest.fail(f"GUIDE.md's {block.label} is not the code (run `make guide`):\n{problem}")


def test_every_marked_region_is_shown():
    shown = {tuple(block.args) for block in EXCERPTS}
    unused = [
        f"{path.relative_to(REPO)} {name}"
        for pattern in MARKED_SOURCES
        for path in sorted(REPO.glob(pattern))
        for name in guide.regions(path)
        if (str(path.relative_to(REPO)), name) not in shown
    ]
    assert unused == [], "regions marked for the guide that it does not show"


def test_a_changed_source_line_makes_its_excerpt_stale(tmp_path, monkeypatch):
    """The check itself: on a copy of the sources, one changed line in a
    shown region is reported, as a diff naming the file."""
    for path in {block.args[0] for block in EXCERPTS}:
        copy = tmp_path / path
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text((REPO / path).read_text())
    monkeypatch.setattr(guide, "REPO", tmp_path)
    text = guide.update_excerpts(TEXT)  # current whatever GUIDE.md's state
    assert guide.stale_excerpts(text) == []

    handler = tmp_path / "src" / "service.rs"
    source = handler.read_text()
    changed = source.replace("ctx.spawn(finish(call, sink, reply));",
                             "ctx.spawn(finish(call, sink, reply)); // changed", 1)
    assert changed != source, "the line this test changes has moved: pick another"
    handler.write_text(changed)
    problems = guide.stale_excerpts(text)
    assert len(problems) == 1 and "src/service.rs (region at_index)" in problems[0], problems
    assert "+    ctx.spawn(finish(call, sink, reply)); // changed" in problems[0], problems[0]


def screen(block, server) -> str:
    """What the terminal shows for a session, with the guide's addresses."""
    binary, inputs = block.args[0], guide.session_inputs(block)
    if binary == "server":
        assert not inputs, "the server session types nothing"
        return server.listening_line.replace(server.address, SERVER_ADDRESS) + "\n"
    session = run_client("rust", binary, server.address, inputs)
    assert session.typed == len(inputs), f"{binary} stopped prompting early: {session}"
    return (session.screen + session.stderr).replace(server.address, CLIENT_ADDRESS)


@pytest.mark.parametrize("index,block", SESSIONS)
def test_session_is_what_the_binaries_print(index, block, servers):
    expected = guide.render_session(block.args[0], screen(block, servers["rust"]))
    if UPDATE:
        text = guide.GUIDE.read_text()
        position = iter(range(len(BLOCKS)))
        guide.GUIDE.write_text(guide.rewrite(
            text, lambda each: expected if next(position) == index else None))
        return
    problem = guide.diff(block, expected, "what the binaries print")
    if problem:
        pytest.fail(f"GUIDE.md's {block.label} is not what the binaries print "
                    f"(run `make guide`):\n{problem}")
