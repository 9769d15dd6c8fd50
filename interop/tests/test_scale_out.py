"""Scale-out: three replicas behind a round_robin client, one of them
killed, and two servers sharing a port with --reuse-port."""

import json
import signal
import time
from typing import List

import grpc


from harness.servers import AT_INDEX, STEP_TIMEOUT, Server
from conftest import (
    FIBONACCI,
    UNARY_7,
    VERSION_TAG,
    assert_one_error_line,
    at_index,
    run_rust_client_piped,
)


def counts(servers: List[Server]) -> List[int]:
    return [len(server.calls(AT_INDEX)) for server in servers]


def wait_counts(servers: List[Server], expected_total: int, timeout: float = STEP_TIMEOUT) -> List[int]:
    """Call lines are written when a call finishes, a moment after the
    client has its answer: wait until all of them are there."""
    deadline = time.monotonic() + timeout
    while sum(counts(servers)) < expected_total and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # and no more than that
    return counts(servers)


# What a client of several replicas needs so that a replica's death costs
# no call: round_robin, and a retry on UNAVAILABLE. wait_for_ready is not
# enough: when a replica is killed, the client may write its next call to
# the dead replica's socket before its poller has read the FIN, and that
# call fails with UNAVAILABLE "Stream removed (Socket closed)" whatever
# wait_for_ready says (measured: the first call after the kill failed so
# in about 1 run in 10, with and without wait_for_ready). A retry goes to
# the next READY replica. AtIndex is idempotent, so retrying is safe.
RETRY_ON_UNAVAILABLE = json.dumps({
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{
        "name": [{"service": FIBONACCI}],
        "retryPolicy": {
            "maxAttempts": 3,
            "initialBackoff": "0.01s",
            "maxBackoff": "0.1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
})


def test_round_robin_over_three_replicas_and_one_killed(launch):
    replicas = [launch("--log", "debug") for _ in range(3)]
    target = "ipv4:" + ",".join(server.address for server in replicas)
    options = [("grpc.lb_policy_name", "round_robin"), ("grpc.enable_retries", 1),
               ("grpc.service_config", RETRY_ON_UNAVAILABLE)]
    with grpc.insecure_channel(target, options=options) as channel:
        grpc.channel_ready_future(channel).result(timeout=STEP_TIMEOUT)
        # The channel is READY as soon as one replica is; round_robin picks
        # among the READY ones, so warm up until every replica has answered.
        warm_up = 0
        while min(counts(replicas)) == 0:
            assert at_index(channel, 7) == 13
            warm_up += 1
            assert warm_up < 300, counts(replicas)
        before = wait_counts(replicas, warm_up)

        for _ in range(30):
            assert at_index(channel, 7) == 13
        after = wait_counts(replicas, warm_up + 30)
        per_replica = [a - b for a, b in zip(after, before)]
        # Every replica READY: round_robin goes round in order, strictly.
        assert per_replica == [10, 10, 10], (before, after)

        # One replica dies without a word (no GOAWAY: SIGKILL).
        dead = replicas[1]
        dead.process.kill()
        dead.process.wait(timeout=STEP_TIMEOUT)
        living = [replicas[0], replicas[2]]
        before = wait_counts(living, sum(counts(living)))
        failures = []
        for number in range(30):
            try:
                assert at_index(channel, 7, timeout=10) == 13
            except grpc.RpcError as error:
                failures.append((number, error.code(), error.details()))
        assert failures == []
        after = wait_counts(living, sum(before) + 30)
        per_living = [a - b for a, b in zip(after, before)]
        assert sum(per_living) == 30
        assert per_living == [15, 15], per_living

    # The Rust client, with the same three addresses, one of them dead.
    addresses = ",".join(server.address for server in replicas)
    result = run_rust_client_piped("client_unary", addresses, stdin="7\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, UNARY_7, "")
    for server in living:
        assert server.stderr() == ""


def test_rust_client_address_list_and_uris(launch):
    replicas = [launch("--log", "debug") for _ in range(3)]
    addresses = ",".join(server.address for server in replicas)
    for address in (addresses, f"dns:///127.0.0.1:{replicas[0].port}", f"ipv4:127.0.0.1:{replicas[2].port}",
                    f"dns:///localhost:{replicas[1].port}"):
        result = run_rust_client_piped("client_unary", address, stdin="7\n")
        assert (result.returncode, result.stdout, result.stderr) == (0, UNARY_7, ""), address

    # A dead first address does not stop the client: round_robin connects
    # to the others.
    replicas[0].process.kill()
    replicas[0].process.wait(timeout=STEP_TIMEOUT)
    for _ in range(3):
        result = run_rust_client_piped("client_unary", addresses, stdin="7\n")
        assert (result.returncode, result.stdout, result.stderr) == (0, UNARY_7, "")
    # All dead: the one error line.
    for server in replicas[1:]:
        server.process.kill()
        server.process.wait(timeout=STEP_TIMEOUT)
    result = run_rust_client_piped("client_unary", addresses, "--connect-timeout", "1", stdin="7\n")
    assert_one_error_line(result)
    assert result.stdout == ""


def test_rust_client_ipv4_uri_with_several_addresses(launch):
    """`ipv4:a,b,c` is a gRPC target URI as it stands: the client passes it
    through (only a bare comma-separated list gets the `ipv4:` scheme)."""
    replicas = [launch() for _ in range(3)]
    target = "ipv4:" + ",".join(server.address for server in replicas)
    result = run_rust_client_piped("client_unary", target, stdin="7\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, UNARY_7, "")


def test_two_servers_share_a_port_with_reuse_port(launch):
    first = launch("--reuse-port", "--log", "debug")
    second = launch("--reuse-port", "--log", "debug", "--port", str(first.port))
    assert second.port == first.port
    assert second.listening_line == f"listening on 127.0.0.1:{first.port} (plaintext, {VERSION_TAG})"

    # The kernel spreads new connections over the two: 24 fresh channels
    # (so 24 source ports) all landing on one server would be a 1 in 2^23
    # chance.
    for _ in range(24):
        with grpc.insecure_channel(first.address) as channel:
            assert at_index(channel, 7) == 13
    wait_counts([first, second], 24)
    assert sum(counts([first, second])) == 24
    assert min(counts([first, second])) >= 1, counts([first, second])

    # A third server without --reuse-port is refused the port.
    third = launch("--port", str(first.port), must_start=False)
    assert third.wait_exit() == 1
    assert third.own_lines() == []
    assert third.stderr().startswith(f"error: cannot listen on 127.0.0.1:{first.port}")
    assert third.stderr().count("\n") == 1

    # When one goes, the other keeps the port.
    first.send(signal.SIGTERM)
    assert first.wait_exit() == 0
    with grpc.insecure_channel(second.address) as channel:
        assert at_index(channel, 7) == 13
