"""The grpc-js client (interop/node/client.js) against the servers: every
value and every status code and message it gets back."""

import json
import shutil
import subprocess

import pytest

from harness.paths import NODE_DIR
from harness.servers import STEP_TIMEOUT
from expected import (
    COUNT_47,
    FIB,
    INCREMENT_44_3,
    INDEX_47,
    INDEX_NEGATIVE,
    PY_CALL_47,
    PY_CALL_SUM_46_46,
    PY_ITERATING_47,
    SUM_46_46,
)


def run_node_client(address):
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail("the grpc-js client needs node and `npm ci` in interop/node (make interop does both)")
    done = subprocess.run([node, "client.js", address], cwd=NODE_DIR, capture_output=True, text=True,
                          timeout=2 * STEP_TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return json.loads(done.stdout)


def ok(**received):
    return {"code": "OK", "details": "", **received}


def refused(code, details, **received):
    return {"code": code, "details": details, **received}


def test_grpc_js_client_against_the_rust_server(servers):
    address = servers["rust"].address
    assert run_node_client(address) == {
        "address": address,
        "AtIndex": {
            "7": ok(value=13),
            "46": ok(value=1836311903),
            "47": refused("OUT_OF_RANGE", INDEX_47, value=None),
            "-1": refused("INVALID_ARGUMENT", INDEX_NEGATIVE, value=None),
        },
        "GetSequence": {
            "7": ok(values=[1, 1, 2, 3, 5, 8, 13]),
            "46": ok(values=FIB[1:47]),
            "47": refused("OUT_OF_RANGE", COUNT_47, values=[]),
        },
        "SumIndicies": {
            "7,5": ok(value=18),
            "": ok(value=0),
            "46,46": refused("OUT_OF_RANGE", SUM_46_46, value=None),
        },
        "StreamSequence": {
            "4,2,1": ok(turns=[
                {"sent": 4, "received": [1, 1, 2, 3]},
                {"sent": 2, "received": [5, 8]},
                {"sent": 1, "received": [13]},
            ], after_end=[]),
            # Refused whole: no F(45), F(46) from the request for 3.
            "44,3": refused("OUT_OF_RANGE", INCREMENT_44_3, turns=[
                {"sent": 44, "received": FIB[1:45]},
                {"sent": 3, "received": []},
            ], after_end=[]),
        },
    }


def test_grpc_js_client_against_the_guide_server(servers):
    """The reference, for comparison: UNKNOWN past int32, 0 for -1, and the
    values that fit are sent before the failure."""
    address = servers["python"].address
    assert run_node_client(address) == {
        "address": address,
        "AtIndex": {
            "7": ok(value=13),
            "46": ok(value=1836311903),
            "47": refused("UNKNOWN", PY_CALL_47, value=None),
            "-1": ok(value=0),
        },
        "GetSequence": {
            "7": ok(values=[1, 1, 2, 3, 5, 8, 13]),
            "46": ok(values=FIB[1:47]),
            "47": refused("UNKNOWN", PY_ITERATING_47, values=FIB[1:47]),
        },
        "SumIndicies": {
            "7,5": ok(value=18),
            "": ok(value=0),
            "46,46": refused("UNKNOWN", PY_CALL_SUM_46_46, value=None),
        },
        "StreamSequence": {
            "4,2,1": ok(turns=[
                {"sent": 4, "received": [1, 1, 2, 3]},
                {"sent": 2, "received": [5, 8]},
                {"sent": 1, "received": [13]},
            ], after_end=[]),
            "44,3": refused("UNKNOWN", PY_ITERATING_47, turns=[
                {"sent": 44, "received": FIB[1:45]},
                {"sent": 3, "received": FIB[45:47]},
            ], after_end=[]),
        },
    }
