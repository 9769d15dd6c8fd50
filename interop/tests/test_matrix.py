"""The matrix: every client against every server, typed at through a terminal.

Pairs are client->server: python->python (the guide itself, the reference),
python->rust, rust->python and rust->rust. For the guide's inputs every pair
must show the guide's transcript byte for byte. For the edge inputs each
test states, per pair, exactly what the client shows and how it exits:

- the Rust server refuses what int32 cannot hold with OUT_OF_RANGE and
  negative input with INVALID_ARGUMENT, each with a message naming the value
  and the limit;
- the guide's Python server computes with Python ints, so an answer past
  int32 raises inside its handler (the client sees UNKNOWN, after any values
  that did fit), and negative input gives 0 or nothing, as its loops do;
- a Python client shows a refusal as a traceback ending in grpc's
  `<_InactiveRpcError ...>` / `<_MultiThreadedRendezvous ...>` with the
  status code and the server's details; a Rust client prints one line,
  `error: the server answered CODE: MESSAGE`, on stderr and exits 1.
"""

import re

import pytest

from conftest import (
    PROMPTS,
    PROMPT_INCREMENT as PI,
    PROMPT_INDEX as PX,
    PROMPT_SUM as PS,
    run_client,
)
from expected import (
    COUNT_47,
    COUNT_NEGATIVE,
    FIB,
    INCREMENT_44_3,
    INCREMENT_NEGATIVE,
    INDEX_47,
    INDEX_NEGATIVE,
    PY_CALL_47,
    PY_CALL_SUM_46_46,
    PY_ITERATING_47,
    SUM_46_46,
    lines,
)

PAIRS = [("python", "python"), ("python", "rust"), ("rust", "python"), ("rust", "rust")]
PAIR_IDS = [f"{c}_to_{s}" for c, s in PAIRS]
pairs = pytest.mark.parametrize("client,server", PAIRS, ids=PAIR_IDS)

# The line of each Python client where a failed call surfaces, and the
# class grpc raises there.
PY_STATEMENT = {
    "client_unary": ("response = stub.AtIndex(fibonacci_pb2.Number(value=value))", "_InactiveRpcError"),
    "client_server_stream": ("for response in responses:", "_MultiThreadedRendezvous"),
    "client_client_stream": ("response = stub.SumIndicies(sendIndicies())", "_InactiveRpcError"),
    "client_bidirectional_stream": ("for response in responses:", "_MultiThreadedRendezvous"),
}


def split_traceback(screen):
    visible, marker, traceback = screen.partition("Traceback (most recent call last):\n")
    assert marker, f"no traceback on the screen:\n{screen}"
    return visible, traceback


def assert_first_frame(traceback, kind, statement):
    frame = re.match(r'  File "([^"]+)", line \d+, in <module>\n    (.*)\n', traceback)
    assert frame, traceback
    assert frame.group(1).endswith(f"/{kind}.py"), traceback
    assert frame.group(2) == statement, traceback


def assert_ok(session, client, screen):
    assert session.screen == screen
    assert session.exit_code == 0, session
    if client == "rust":
        assert session.stderr == ""


def assert_refused(session, client, kind, screen, code, details, *, or_screen=None, while_sending=False):
    """The call ended with status `code` and `details` after `screen`.

    Two races are part of what the clients show when the Rust server refuses
    a stream while the client is still sending (SumIndicies and
    StreamSequence refuse the offending request as it arrives):

    - `or_screen`: a Rust client shows either `screen` or `or_screen`,
      depending on whether the send of the refused value completed before
      the refusal came back (then it prompts again and reports once the
      input ends) or failed (then it reports at once).
    - `while_sending`: the guide's client raises in its main thread while its
      request generator, on another thread, is at one of three places:
      waiting in input() (the next prompt is on the screen), or not yet
      resumed (no prompt, and nothing more), or suspended at its `yield`,
      where the generator is closed when grpc's request thread lets go of
      it: its bare `except:` catches the GeneratorExit and prints "done
      sending" from that thread, before, after or amid the traceback's
      lines.
    """
    if client == "rust":
        screens = [screen] if or_screen is None else [screen, or_screen]
        assert session.screen in screens
        assert session.stderr == f"error: the server answered {code}: {details}\n"
        assert session.exit_code == 1, session
        return
    if while_sending:
        assert session.screen.startswith(screen), session.screen
        rest = session.screen[len(screen):]
        # The closed generator's line, printed from another thread: it can
        # land anywhere in the traceback.
        rest = rest.replace("done sending\n", "", 1)
        if rest.startswith(PROMPTS[kind]):
            rest = rest[len(PROMPTS[kind]):]
        visible, traceback = split_traceback(rest)
        assert visible == "", session.screen
    else:
        visible, traceback = split_traceback(session.screen)
        assert visible == screen
    statement, error_class = PY_STATEMENT[kind]
    assert_first_frame(traceback, kind, statement)
    tail = traceback[traceback.index(f"grpc._channel.{error_class}: "):]
    head = (f"grpc._channel.{error_class}: <{error_class} of RPC that terminated with:\n"
            f"\tstatus = StatusCode.{code}\n"
            f'\tdetails = "{details}"\n')
    assert tail.startswith(head), tail
    # grpc's debug string: the code and the details, for a status from a
    # peer and for an exception in a Python handler alike.
    assert tail[len(head):] == f'\tdebug_error_string = "{code}:{details}"\n>\n'
    assert session.exit_code == 1, session


def assert_not_an_integer(session, client, kind, screen, text):
    """The unary and server-stream clients refuse input that is not an int."""
    if client == "rust":
        assert session.screen == screen
        assert session.stderr == (f'error: "{text}" is not an integer index '
                                  f"(a whole number from -2147483648 to 2147483647)\n")
        assert session.exit_code == 2, session
        return
    visible, traceback = split_traceback(session.screen)
    assert visible == screen
    assert_first_frame(traceback, kind, 'value = int(input("enter an index integer: "))')
    assert traceback.endswith(f"ValueError: invalid literal for int() with base 10: '{text}'\n"), traceback
    assert session.exit_code == 1, session


# --------------------------------------------------------------------------
# The guide's transcripts, byte for byte

GUIDE = {
    "client_unary": (["7"], "enter an index integer: 7\nFibonacci #7: 13\n"),
    "client_server_stream": (
        ["7"],
        "enter an index integer: 7\n"
        "Fibonacci #1: 1\n"
        "Fibonacci #2: 1\n"
        "Fibonacci #3: 2\n"
        "Fibonacci #4: 3\n"
        "Fibonacci #5: 5\n"
        "Fibonacci #6: 8\n"
        "Fibonacci #7: 13\n",
    ),
    "client_client_stream": (
        ["7", "5", ""],
        "enter an index (or nothing to stop): 7\n"
        "enter an index (or nothing to stop): 5\n"
        "enter an index (or nothing to stop): \n"
        "done sending\n"
        "Sum: 18\n",
    ),
    "client_bidirectional_stream": (
        ["4", "2", "1", ""],
        "enter the next increment (or nothing to stop): 4\n"
        "Fibonacci #1: 1\n"
        "Fibonacci #2: 1\n"
        "Fibonacci #3: 2\n"
        "Fibonacci #4: 3\n"
        "enter the next increment (or nothing to stop): 2\n"
        "Fibonacci #5: 5\n"
        "Fibonacci #6: 8\n"
        "enter the next increment (or nothing to stop): 1\n"
        "Fibonacci #7: 13\n"
        "enter the next increment (or nothing to stop): \n"
        "done sending\n",
    ),
}


@pytest.mark.parametrize("kind", list(GUIDE))
@pairs
def test_guide_transcript(servers, client, server, kind):
    inputs, transcript = GUIDE[kind]
    session = run_client(client, kind, servers[server].address, inputs)
    assert_ok(session, client, transcript)


# --------------------------------------------------------------------------
# AtIndex: client_unary

@pairs
def test_unary_0_and_46(servers, client, server):
    for index in ("0", "46"):
        session = run_client(client, "client_unary", servers[server].address, [index])
        assert_ok(session, client, f"{PX}{index}\nFibonacci #{index}: {FIB[int(index)]}\n")


@pairs
def test_unary_47(servers, client, server):
    session = run_client(client, "client_unary", servers[server].address, ["47"])
    if server == "rust":
        assert_refused(session, client, "client_unary", f"{PX}47\n", "OUT_OF_RANGE", INDEX_47)
    else:
        assert_refused(session, client, "client_unary", f"{PX}47\n", "UNKNOWN", PY_CALL_47)


@pairs
def test_unary_negative(servers, client, server):
    session = run_client(client, "client_unary", servers[server].address, ["-1"])
    if server == "rust":
        assert_refused(session, client, "client_unary", f"{PX}-1\n", "INVALID_ARGUMENT", INDEX_NEGATIVE)
    else:
        # range(-1) is empty: the guide's calculate(-1) is 0.
        assert_ok(session, client, f"{PX}-1\nFibonacci #-1: 0\n")


@pytest.mark.parametrize("kind", ["client_unary", "client_server_stream"])
@pairs
def test_index_that_is_not_an_integer(servers, client, server, kind):
    session = run_client(client, kind, servers[server].address, ["seven"])
    assert_not_an_integer(session, client, kind, f"{PX}seven\n", "seven")


# --------------------------------------------------------------------------
# GetSequence: client_server_stream

@pairs
def test_server_stream_0_and_46(servers, client, server):
    session = run_client(client, "client_server_stream", servers[server].address, ["0"])
    assert_ok(session, client, f"{PX}0\n")
    session = run_client(client, "client_server_stream", servers[server].address, ["46"])
    assert_ok(session, client, f"{PX}46\n{lines(1, 46)}")
    assert session.screen.endswith("Fibonacci #46: 1836311903\n")


@pairs
def test_server_stream_47(servers, client, server):
    session = run_client(client, "client_server_stream", servers[server].address, ["47"])
    if server == "rust":
        # Refused before any number is sent.
        assert_refused(session, client, "client_server_stream", f"{PX}47\n", "OUT_OF_RANGE", COUNT_47)
    else:
        # The guide's server streams F(1)..F(46), then raises on F(47). (A
        # client that reports the status before reading the values already
        # received shows fewer lines.)
        assert_refused(session, client, "client_server_stream", f"{PX}47\n{lines(1, 46)}",
                       "UNKNOWN", PY_ITERATING_47)


@pairs
def test_server_stream_negative(servers, client, server):
    session = run_client(client, "client_server_stream", servers[server].address, ["-1"])
    if server == "rust":
        assert_refused(session, client, "client_server_stream", f"{PX}-1\n",
                       "INVALID_ARGUMENT", COUNT_NEGATIVE)
    else:
        assert_ok(session, client, f"{PX}-1\n")


# --------------------------------------------------------------------------
# SumIndicies: client_client_stream

@pairs
def test_client_stream_empty_and_zero(servers, client, server):
    address = servers[server].address
    session = run_client(client, "client_client_stream", address, [""])
    assert_ok(session, client, f"{PS}\ndone sending\nSum: 0\n")
    session = run_client(client, "client_client_stream", address, ["0", ""])
    assert_ok(session, client, f"{PS}0\n{PS}\ndone sending\nSum: 0\n")


@pairs
def test_client_stream_stops_at_a_non_integer(servers, client, server):
    # The guide's bare `except:` ends the stream on anything int() refuses.
    session = run_client(client, "client_client_stream", servers[server].address, ["7", "x", "5"])
    assert session.typed == 2
    assert_ok(session, client, f"{PS}7\n{PS}x\ndone sending\nSum: 13\n")


@pairs
def test_client_stream_largest_sum(servers, client, server):
    session = run_client(client, "client_client_stream", servers[server].address, ["46", "42", ""])
    assert_ok(session, client, f"{PS}46\n{PS}42\n{PS}\ndone sending\nSum: 2104226199\n")


@pairs
def test_client_stream_overflow(servers, client, server):
    address = servers[server].address
    if (client, server) == ("python", "rust"):
        # Refused as the second 46 arrives, while the guide's client is
        # still reading input: it fails without the empty line being typed.
        session = run_client(client, "client_client_stream", address, ["46", "46"])
        assert_refused(session, client, "client_client_stream", f"{PS}46\n{PS}46\n",
                       "OUT_OF_RANGE", SUM_46_46, while_sending=True)
        return
    session = run_client(client, "client_client_stream", address, ["46", "46", ""])
    screen = f"{PS}46\n{PS}46\n{PS}\ndone sending\n"
    if server == "rust":
        assert_refused(session, client, "client_client_stream", screen, "OUT_OF_RANGE", SUM_46_46,
                       or_screen=f"{PS}46\n{PS}46\n")
    else:
        # The guide's server adds Python ints and fails building the reply,
        # once the stream has ended.
        assert_refused(session, client, "client_client_stream", screen, "UNKNOWN", PY_CALL_SUM_46_46)


@pairs
def test_client_stream_47(servers, client, server):
    address = servers[server].address
    if (client, server) == ("python", "rust"):
        session = run_client(client, "client_client_stream", address, ["47"])
        assert_refused(session, client, "client_client_stream", f"{PS}47\n", "OUT_OF_RANGE", INDEX_47,
                       while_sending=True)
        return
    session = run_client(client, "client_client_stream", address, ["47", ""])
    screen = f"{PS}47\n{PS}\ndone sending\n"
    if server == "rust":
        assert_refused(session, client, "client_client_stream", screen, "OUT_OF_RANGE", INDEX_47,
                       or_screen=f"{PS}47\n")
    else:
        assert_refused(session, client, "client_client_stream", screen, "UNKNOWN", PY_CALL_47)


@pairs
def test_client_stream_negative(servers, client, server):
    address = servers[server].address
    if (client, server) == ("python", "rust"):
        session = run_client(client, "client_client_stream", address, ["3", "-1"])
        assert_refused(session, client, "client_client_stream", f"{PS}3\n{PS}-1\n",
                       "INVALID_ARGUMENT", INDEX_NEGATIVE, while_sending=True)
        return
    session = run_client(client, "client_client_stream", address, ["3", "-1", ""])
    screen = f"{PS}3\n{PS}-1\n{PS}\ndone sending\n"
    if server == "rust":
        assert_refused(session, client, "client_client_stream", screen, "INVALID_ARGUMENT", INDEX_NEGATIVE,
                       or_screen=f"{PS}3\n{PS}-1\n")
    else:
        # F(3) + the guide's calculate(-1) = 2 + 0.
        assert_ok(session, client, screen + "Sum: 2\n")


# --------------------------------------------------------------------------
# StreamSequence: client_bidirectional_stream

@pairs
def test_bidirectional_empty(servers, client, server):
    session = run_client(client, "client_bidirectional_stream", servers[server].address, [""])
    assert_ok(session, client, f"{PI}\ndone sending\n")


@pairs
def test_bidirectional_up_to_46(servers, client, server):
    session = run_client(client, "client_bidirectional_stream", servers[server].address, ["0", "40", "6", "0", ""])
    assert_ok(session, client,
              f"{PI}0\n{PI}40\n{lines(1, 40)}{PI}6\n{lines(41, 46)}{PI}0\n{PI}\ndone sending\n")


@pairs
def test_bidirectional_past_46(servers, client, server):
    session = run_client(client, "client_bidirectional_stream", servers[server].address, ["44", "3", ""])
    # The call ends during the request for 3: no further prompt is typed at.
    assert session.typed == 2
    if server == "rust":
        # The request for 3 is refused whole: F(45) and F(46) are not sent.
        assert_refused(session, client, "client_bidirectional_stream",
                       f"{PI}44\n{lines(1, 44)}{PI}3\n", "OUT_OF_RANGE", INCREMENT_44_3, while_sending=True)
    else:
        # The guide's server sends F(45) and F(46), then raises on F(47).
        assert_refused(session, client, "client_bidirectional_stream",
                       f"{PI}44\n{lines(1, 44)}{PI}3\n{lines(45, 46)}", "UNKNOWN", PY_ITERATING_47)


@pairs
def test_bidirectional_negative(servers, client, server):
    address = servers[server].address
    if (client, server) == ("python", "rust"):
        # Refused at once, while the guide's client sleeps before its next prompt.
        session = run_client(client, "client_bidirectional_stream", address, ["-1"])
        assert_refused(session, client, "client_bidirectional_stream",
                       f"{PI}-1\n", "INVALID_ARGUMENT", INCREMENT_NEGATIVE, while_sending=True)
        return
    session = run_client(client, "client_bidirectional_stream", address, ["-1", ""])
    screen = f"{PI}-1\n{PI}\ndone sending\n"
    if server == "rust":
        assert_refused(session, client, "client_bidirectional_stream", screen,
                       "INVALID_ARGUMENT", INCREMENT_NEGATIVE, or_screen=f"{PI}-1\n")
    else:
        assert_ok(session, client, screen)


@pairs
def test_bidirectional_stops_at_a_non_integer(servers, client, server):
    session = run_client(client, "client_bidirectional_stream", servers[server].address, ["2", "x", "1"])
    assert session.typed == 2
    assert_ok(session, client, f"{PI}2\n{lines(1, 2)}{PI}x\ndone sending\n")

