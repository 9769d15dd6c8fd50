"""Many clients at once.

- 50 of the guide's Python client programs, the four kinds mixed, run at the
  same time against the Rust server, every answer checked.
- How many StreamSequence calls each server holds open at once: the guide's
  server runs its handlers on a ThreadPoolExecutor(max_workers=10) and a
  streaming handler holds its worker until the call ends, so it serves 10
  and the 11th waits; the Rust server's handlers hold no thread, so it
  serves 200 open calls and answers the 201st at once.

The measured facts are printed at the end of the run ("interop
measurements") for docs/interop.md.
"""

import queue
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc

import fibonacci_pb2
import fibonacci_pb2_grpc
from harness.paths import PYTHON_DIR
from harness.servers import STEP_TIMEOUT
from conftest import KINDS, PROMPTS, client_environment, record
from expected import FIB, lines

# --------------------------------------------------------------------------
# 50 Python clients at once


def job(number):
    """The client, its input, and the output lines it must print (its
    prompts taken out: with input piped in, prompts and lines share stdout)."""
    kind = KINDS[number % 4]
    if kind == "client_unary":
        index = number % 47
        return kind, f"{index}\n", [f"Fibonacci #{index}: {FIB[index]}"]
    if kind == "client_server_stream":
        count = number % 47
        return kind, f"{count}\n", lines(1, count).splitlines()
    if kind == "client_client_stream":
        indices = [number % 47, (number + 3) % 30, 5]
        typed = "".join(f"{i}\n" for i in indices) + "\n"
        return kind, typed, ["done sending", f"Sum: {sum(FIB[i] for i in indices)}"]
    increments = [1 + number % 5, 2, 3]
    typed = "".join(f"{i}\n" for i in increments) + "\n"
    return kind, typed, lines(1, sum(increments)).splitlines() + ["done sending"]


def test_fifty_python_clients_at_once_against_the_rust_server(fresh_server):
    server = fresh_server("rust")
    jobs = [job(number) for number in range(50)]
    started = time.monotonic()
    processes = [
        subprocess.Popen([sys.executable, str(PYTHON_DIR / f"{kind}.py"), server.address], cwd=PYTHON_DIR,
                         env=client_environment(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for kind, _, _ in jobs
    ]
    try:
        with ThreadPoolExecutor(max_workers=len(processes)) as pool:
            outputs = list(pool.map(lambda p, j: p.communicate(j[1], timeout=4 * STEP_TIMEOUT), processes, jobs))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    elapsed = time.monotonic() - started

    for number, ((kind, typed, expected), process, (stdout, stderr)) in enumerate(zip(jobs, processes, outputs)):
        where = f"client #{number} {kind} with {typed!r}"
        assert process.returncode == 0, f"{where}: {stderr}"
        assert stderr == "", where
        shown = stdout.replace(PROMPTS[kind], "")
        if kind == "client_bidirectional_stream":
            # The guide's client prints replies from its main thread and
            # "done sending" from the thread that reads the input: where
            # that one line falls among the replies is not the call's doing.
            assert shown.count("done sending") == 1, where
            shown = [line for line in shown.replace("done sending", "").splitlines() if line]
            assert shown == expected[:-1], where
        else:
            assert shown.splitlines() == expected, where
    counts = {kind: sum(1 for k, _, _ in jobs if k == kind) for kind in KINDS}
    record(f"rust server: 50 guide Python client processes at once ({counts}), "
           f"every answer right, all done in {elapsed:.1f} s")


# --------------------------------------------------------------------------
# Open StreamSequence calls


class HeldStream:
    """A StreamSequence call on a connection of its own, kept open until
    `close`: requests are sent one at a time, replies arrive in a queue."""

    def __init__(self, address):
        self.channel = grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        stub = fibonacci_pb2_grpc.FibonacciStub(self.channel)
        self.requests = queue.Queue()
        self.replies = queue.Queue()
        self.responses = stub.StreamSequence(self._requests(), timeout=10 * STEP_TIMEOUT)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.status = None

    def _requests(self):
        while (value := self.requests.get()) is not None:
            yield fibonacci_pb2.Number(value=value)

    def _read(self):
        try:
            for reply in self.responses:
                self.replies.put(reply.value)
            self.status = grpc.StatusCode.OK
        except grpc.RpcError as error:
            self.status = error.code()
        self.replies.put(None)

    def send(self, value):
        self.requests.put(value)

    def reply(self, timeout):
        """The next value, or None if none came within `timeout` seconds."""
        try:
            return self.replies.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self):
        """Ends the requests and waits for the call to end."""
        self.requests.put(None)
        self.reader.join(STEP_TIMEOUT)
        self.channel.close()
        return self.status

    def cancel(self):
        self.responses.cancel()
        self.requests.put(None)
        self.channel.close()


def open_streams(address, count):
    """`count` calls, each having sent 1 and received its reply F(1) = 1."""
    streams = []
    for _ in range(count):
        stream = HeldStream(address)
        streams.append(stream)
        stream.send(1)
    for number, stream in enumerate(streams):
        assert stream.reply(STEP_TIMEOUT) == 1, f"held call #{number + 1} got no reply"
    return streams


WINDOW = 2.0  # seconds the call after the held ones is given to answer


def test_guide_server_holds_10_stream_sequence_calls(fresh_server):
    server = fresh_server("python")
    streams = []
    try:
        streams = open_streams(server.address, 10)
        eleventh = HeldStream(server.address)
        streams.append(eleventh)
        eleventh.send(1)
        assert eleventh.reply(WINDOW) is None, "the 11th call was served while 10 were open"

        closed_at = time.monotonic()
        assert streams[0].close() == grpc.StatusCode.OK
        assert eleventh.reply(STEP_TIMEOUT) == 1, "the 11th call was not served after one of the 10 ended"
        waited = time.monotonic() - closed_at
        # It goes on as a normal call.
        eleventh.send(2)
        assert [eleventh.reply(STEP_TIMEOUT), eleventh.reply(STEP_TIMEOUT)] == [1, 2]
        for stream in streams[1:]:
            assert stream.close() == grpc.StatusCode.OK
        record(f"python guide server (ThreadPoolExecutor(max_workers=10)): 10 StreamSequence calls held open; "
               f"the 11th got no reply within {WINDOW:.0f} s, and its reply {waited * 1000:.0f} ms after "
               f"one of the 10 ended")
    finally:
        for stream in streams:
            stream.cancel()


def test_rust_server_holds_200_stream_sequence_calls(fresh_server):
    server = fresh_server("rust")
    held = 200
    streams = []
    try:
        started = time.monotonic()
        streams = open_streams(server.address, held)
        opened = time.monotonic() - started
        extra = HeldStream(server.address)
        streams.append(extra)
        asked = time.monotonic()
        extra.send(1)
        assert extra.reply(WINDOW) == 1, f"the call after {held} open ones got no reply within {WINDOW} s"
        answered = time.monotonic() - asked
        # Every held call is still live and goes on where it was.
        for stream in streams[:held]:
            stream.send(1)
        for number, stream in enumerate(streams[:held]):
            assert stream.reply(STEP_TIMEOUT) == 1, f"held call #{number + 1} stopped answering"
        for stream in streams:
            assert stream.close() == grpc.StatusCode.OK
        record(f"rust server: {held} StreamSequence calls held open (each on its own connection, opened and "
               f"answered in {opened:.1f} s); call #{held + 1} answered in {answered * 1000:.0f} ms")
    finally:
        for stream in streams:
            stream.cancel()
