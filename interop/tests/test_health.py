"""grpc.health.v1 as an operator's tools use it (grpcio-health-checking):
Check and Watch, and the switch to NOT_SERVING the moment SIGTERM arrives."""

import re
import signal

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc


from harness.servers import STEP_TIMEOUT
from conftest import FIBONACCI, NOT_SERVING, SERVICE_UNKNOWN, SERVING


def test_health_check_serving_and_unknown_service(launch):
    server = launch()
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", FIBONACCI):
            response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=STEP_TIMEOUT)
            assert response.status == SERVING, service
        with pytest.raises(grpc.RpcError) as raised:
            health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=STEP_TIMEOUT)
        assert raised.value.code() is grpc.StatusCode.NOT_FOUND
        # Watch on an unknown service is not an error: it reports
        # SERVICE_UNKNOWN (the health protocol's rule for Watch).
        watch = health.Watch(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=STEP_TIMEOUT)
        assert next(watch).status == SERVICE_UNKNOWN
        watch.cancel()


def test_health_watch_sees_not_serving_on_sigterm_and_the_server_exits_0(launch):
    server = launch("--grace-period", "1")
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        watches = {service: health.Watch(health_pb2.HealthCheckRequest(service=service), timeout=STEP_TIMEOUT)
                   for service in ("", FIBONACCI)}
        for service, watch in watches.items():
            assert next(watch).status == SERVING, service

        server.send(signal.SIGTERM)
        for service, watch in watches.items():
            assert next(watch).status == NOT_SERVING, service
        # Nothing after NOT_SERVING says SERVING again; the stream ends when
        # the grace period cancels it (or the server ends it).
        for service, watch in watches.items():
            later = []
            try:
                for response in watch:
                    later.append(response.status)
            except grpc.RpcError as error:
                assert error.code() is not grpc.StatusCode.DEADLINE_EXCEEDED, (service, error)
            assert SERVING not in later, (service, later)

    assert server.wait_exit() == 0
    lines = server.own_lines()
    assert "SIGTERM: shutting down, grace period 1s" in lines, lines
    assert re.fullmatch(r"stopped: \d+ calls drained, \d+ cancelled", lines[-1]), lines
    assert server.stderr() == ""
