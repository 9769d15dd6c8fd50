"""gRPC request bodies built by hand, for the tools that send raw bytes
(h2load in bench/, the HTTP/2 attacker of the abuse tests, the size
limits tests): the 5-byte gRPC message prefix, and fibonacci.Number as
protobuf encodes it, without the generated stubs. Shell scripts get a body
from the command line (bench/callgrind.sh):

    PYTHONPATH=interop python3 -m harness.wire 7 5 > body

Standard library only, so any python3 runs it.
"""

import sys
from typing import Iterable


def varint(value: int) -> bytes:
    """A protobuf varint. A negative int32 goes as its 64-bit two's
    complement, ten bytes, as protobuf sends it."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def number_message(value: int) -> bytes:
    """fibonacci.Number{value} serialised: field 1 as a varint, left out
    when it is 0 (protobuf's default), as the generated code does."""
    return b"\x08" + varint(value) if value else b""


def grpc_frame(message: bytes) -> bytes:
    """One message as it goes in a gRPC DATA payload: not compressed (0),
    its length (4 bytes, big-endian), the message."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def number_request_body(values: Iterable[int]) -> bytes:
    """A request stream of Number messages, one after another in one body
    (a tool that cannot interleave sends the whole stream at once)."""
    return b"".join(grpc_frame(number_message(value)) for value in values)


if __name__ == "__main__":
    sys.stdout.buffer.write(number_request_body(int(value) for value in sys.argv[1:]))
