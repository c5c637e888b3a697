"""`workengine serve` as an operator meets it: the metrics and dashboard URLs it prints, /metrics
after a daemon loop through grpcurl, and a port in use said in one line with exit code 2."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from tests.e2e.grpcurl import call
from tests.e2e.serving import WORKENGINE, ServeProcess, clean_env
from tests.integration.monitoring import free_port, parse, value

EVERY_METRIC = (
    "grpc_server_started_total",
    "grpc_server_handled_total",
    "grpc_server_handling_seconds_count",
    "grpc_server_msg_received_total",
    "grpc_server_msg_sent_total",
    "workengine_tasks_created_total",
    "workengine_tasks_started_total",
    "workengine_tasks_finished_total",
    "workengine_lease_expiries_total",
    "workengine_task_retries_total",
    "workengine_queue_wait_seconds_count",
    "workengine_task_run_seconds_count",
    "workengine_tasks",
    "workengine_oldest_ready_task_age_seconds",
    "workengine_watch_streams_open",
    "workengine_event_feed_lag_seconds_count",
    "workengine_db_pool_size",
    "workengine_db_pool_in_use",
    "workengine_db_pool_waiting",
)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return str(response.read().decode())


async def test_serve_prints_the_metrics_url_and_metrics_move_after_a_grpcurl_daemon_loop(
    empty_database_url: str,
) -> None:
    port = free_port()
    server = ServeProcess("--database-url", empty_database_url, "--http-port", str(port), env=clean_env())
    try:
        target = server.wait_listening()
        printed = f"metrics: http://127.0.0.1:{port}/metrics (and /healthz, /readyz)\n"
        dashboard = f"dashboard: http://127.0.0.1:{port}/\n"
        for _ in range(100):  # the lines after the "listening" one
            if dashboard in server.lines:
                break
            await asyncio.sleep(0.05)
        assert printed in server.lines and dashboard in server.lines, server.lines
        assert "<title>WorkEngine</title>" in scrape(f"http://127.0.0.1:{port}/")
        await call(target, "RegisterOrchestrator", {"orchestratorId": "ada", "displayName": "Ada"})
        await call(target, "CreateTask", {"orchestratorId": "ada", "workspaceId": "ws", "title": "t"})
        claimed = await call(target, "ClaimNextTask", {"orchestratorId": "ada"})
        task_id = claimed["context"]["task"]["id"]
        await call(target, "UpdateTaskProgress", {"taskId": task_id, "attempt": 1, "progress": 50})
        await call(
            target, "CompleteTask", {"taskId": task_id, "attempt": 1, "status": "COMPLETION_STATUS_COMPLETED"}
        )
        samples = parse(scrape(f"http://127.0.0.1:{port}/metrics"))
        names = {name for name, _ in samples}
        assert set(EVERY_METRIC) <= names, set(EVERY_METRIC) - names
        assert value(samples, "workengine_tasks_created_total") == 1
        assert value(samples, "workengine_tasks_started_total") == 1
        assert value(samples, "workengine_tasks_finished_total", outcome="completed") == 1
        assert value(samples, "workengine_queue_wait_seconds_count") == 1
        assert value(samples, "workengine_task_run_seconds_count", outcome="completed") == 1
        ok = {"grpc_type": "unary", "grpc_service": "workengine.v1.WorkEngineService", "grpc_code": "OK"}
        for method in ("CreateTask", "ClaimNextTask", "UpdateTaskProgress", "CompleteTask"):
            assert value(samples, "grpc_server_handled_total", grpc_method=method, **ok) == 1, method
    finally:
        server.kill()


@contextmanager
def port_taken() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def serve(database_url: str, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [WORKENGINE, "serve", "--database-url", database_url, *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, env=clean_env())


def test_a_grpc_port_in_use_is_one_line_and_exit_code_2(empty_database_url: str) -> None:
    with port_taken() as port:
        result = serve(empty_database_url, "--port", str(port), "--http-port", "0")
    assert result.returncode == 2, result.stdout + result.stderr
    said = f"workengine serve: cannot listen on 127.0.0.1:{port}: the port is in use\n"
    assert result.stderr.endswith(said), result.stderr
    assert result.stderr == said  # before migrations or grpcio could say anything
    assert "Traceback" not in result.stdout + result.stderr


def test_an_http_port_in_use_is_one_line_and_exit_code_2(empty_database_url: str) -> None:
    with port_taken() as port:
        result = serve(empty_database_url, "--port", "0", "--http-port", str(port))
    assert result.returncode == 2, result.stdout + result.stderr
    said = f"workengine serve: cannot listen on 127.0.0.1:{port} (HTTP): the port is in use\n"
    assert result.stderr.endswith(said), result.stderr
    assert result.stderr == said
    assert "Traceback" not in result.stdout + result.stderr


def serve_with_metrics(database_url: str, http_port: int) -> ServeProcess:
    return ServeProcess("--database-url", database_url, "--http-port", str(http_port), env=clean_env())


def counted(port: int, name: str, **labels: str) -> float:
    return value(parse(scrape(f"http://127.0.0.1:{port}/metrics")), name, **labels)


async def test_two_serve_processes_on_one_database_each_count_their_own(empty_database_url: str) -> None:
    ports = [free_port(), free_port()]
    first = serve_with_metrics(empty_database_url, ports[0])
    try:
        first_target = first.wait_listening()  # migrated; the second starts on the same schema
        second = serve_with_metrics(empty_database_url, ports[1])
        try:
            second_target = second.wait_listening()
            await call(first_target, "RegisterOrchestrator", {"orchestratorId": "ada", "displayName": "Ada"})
            for target, count in ((first_target, 3), (second_target, 2)):
                for number in range(count):
                    task = {"orchestratorId": "ada", "workspaceId": "ws", "title": f"t{number}"}
                    await call(target, "CreateTask", task)
            claimed = await call(second_target, "ClaimNextTask", {"orchestratorId": "ada"})
            task_id = claimed["context"]["task"]["id"]
            done = {"taskId": task_id, "attempt": 1, "status": "COMPLETION_STATUS_COMPLETED"}
            await call(first_target, "CompleteTask", done)
            assert [counted(port, "workengine_tasks_created_total") for port in ports] == [3, 2]
            assert [counted(port, "workengine_tasks_started_total") for port in ports] == [0, 1]
            finished = [
                counted(port, "workengine_tasks_finished_total", outcome="completed") for port in ports
            ]
            assert finished == [1, 0]  # counted where the completion committed
        finally:
            second.kill()
    finally:
        first.kill()
