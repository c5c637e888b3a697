"""deploy/kubernetes' ServiceMonitor (the optional component): a custom resource that
kubernetes-validate has no schema for, so it is checked against a closed schema of the fields of
the Prometheus Operator's CRD used here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.e2e.kubernetes import (
    Resource,
    env,
    one,
    pod_spec,
    selects,
    server_container,
)

_DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}, "labels": _LABELS},
        },
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": _LABELS},
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port"],
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                            "interval": {"type": "string", "pattern": _DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": _DURATION},
                            "authorization": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "type": {"type": "string"},
                                    "credentials": {
                                        "type": "object",
                                        "required": ["key", "name"],
                                        "additionalProperties": False,
                                        "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


@pytest.mark.parametrize("fixture", ["overlay", "with_tls"])
def test_the_service_monitor_scrapes_every_pods_metrics_with_the_token(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    resources: list[Resource] = request.getfixturevalue(fixture)
    monitor = one(resources, "ServiceMonitor")
    jsonschema.validate(monitor, SERVICE_MONITOR_SCHEMA)
    service = one(resources, "Service")
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert monitor["metadata"].get("namespace") == service["metadata"].get("namespace")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert (endpoint["port"], endpoint["path"], endpoint.get("scheme", "http")) == (
        "http",
        "/metrics",
        "http",
    )
    assert endpoint["authorization"]["type"] == "Bearer"
    # The server reads the same key as the token /metrics asks for.
    token_file = Path(env(server_container(resources))["WORKENGINE_METRICS_TOKEN_FILE"]["value"])
    mounts = {
        Path(mount["mountPath"]): mount["name"] for mount in server_container(resources)["volumeMounts"]
    }
    volume = {volume["name"]: volume for volume in pod_spec(resources)["volumes"]}[mounts[token_file.parent]]
    credentials = endpoint["authorization"]["credentials"]
    assert volume["secret"]["secretName"] == credentials["name"]
    assert {"key": credentials["key"], "path": token_file.name} in volume["secret"]["items"]


def test_the_service_monitor_schema_refuses_what_the_crd_refuses() -> None:
    good: dict[str, Any] = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "m"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "endpoints": [{"port": "http", "interval": "30s"}]},
    }
    jsonschema.validate(good, SERVICE_MONITOR_SCHEMA)
    for bad_endpoint in (
        {"port": "http", "interval": "30 seconds"},
        {"port": "http", "intervall": "30s"},
        {},
    ):
        bad = {**good, "spec": {**good["spec"], "endpoints": [bad_endpoint]}}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SERVICE_MONITOR_SCHEMA)
