"""deploy/kubernetes: rendered with `kubectl kustomize` and validated offline by
`kubernetes-validate --strict` (both from the [test] extra), then read as a reviewer would:
the probes ask the right port and service, named ports agree between the Deployment and the
Service, every Secret key used is one the docs tell operators to create, no pod can fall back
to an embedded PostgreSQL, the pods run restricted, and the disruption budget covers them.

No cluster is needed. The ServiceMonitor is a custom resource kubernetes-validate has no
schema for: it is checked against the fields of the Prometheus Operator's CRD used here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.kubernetes import (
    HEALTHCHECK,
    KUBERNETES_VERSIONS,
    ROOT,
    Resource,
    all_containers,
    env,
    one,
    pod_spec,
    selects,
    server_container,
    validate,
)
from workengine import config, values
from workengine.api.server import SERVICE_NAME

# Rendering and offline validation


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_built_in_resource_validates_strictly(
    rendered: list[Resource], version: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(rendered))
    result = validate(manifest, version)
    assert result.returncode == 0, result.stdout + result.stderr
    # Built-in API groups have no dot (v1, apps/v1, policy/v1); custom resources' groups do.
    built_in = [resource for resource in rendered if "." not in resource["apiVersion"].split("/")[0]]
    passed = re.findall(r"^INFO .* passed for resource (\S+) against", result.stdout, re.MULTILINE)
    expected = {f"{resource['kind'].lower()}/{resource['metadata']['name']}" for resource in built_in}
    assert set(passed) == expected, result.stdout
    # Only the custom resource goes unvalidated by kubernetes-validate (it is checked below).
    unknown = re.findall(r"Couldn't find schema for kind (\S+)", result.stdout)
    assert set(unknown) <= {"ServiceMonitor"}, result.stdout


def test_strict_validation_catches_an_unknown_field(base: list[Resource], tmp_path: Path) -> None:
    """The validation above is not vacuous: a misspelt field fails it."""
    broken = [dict(resource) for resource in base]
    deployment = one(broken, "Deployment")
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    manifest = tmp_path / "broken.yaml"
    manifest.write_text(yaml.safe_dump_all(broken))
    result = validate(manifest, KUBERNETES_VERSIONS[-1])
    assert result.returncode != 0 and "'replica' was unexpected" in result.stdout, result.stdout


# The probes


def port_named(container: Resource, name: str) -> int:
    ports = [port["containerPort"] for port in container["ports"] if port.get("name") == name]
    assert len(ports) == 1, f"no single container port named {name}: {container['ports']}"
    return int(ports[0])


@pytest.mark.parametrize("fixture", ["base", "overlay"])
def test_grpc_probes_ask_the_health_service_on_the_grpc_port(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    container = server_container(request.getfixturevalue(fixture))
    grpc_port = port_named(container, "grpc")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert set(container[probe]) & {"grpc", "exec", "httpGet", "tcpSocket"} == {"grpc"}, probe
        # The kubelet's gRPC probe takes a number, not a port name: it must be the grpc port's.
        assert container[probe]["grpc"]["port"] == grpc_port, probe
    # Ready means the WorkEngine service serves; live means the server answers at all.
    assert container["readinessProbe"]["grpc"]["service"] == SERVICE_NAME
    assert container["livenessProbe"]["grpc"].get("service", "") == ""


def test_with_tls_the_probes_run_the_health_check_command(with_tls: list[Resource]) -> None:
    container = server_container(with_tls)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert "grpc" not in container[probe], f"{probe}: the kubelet's gRPC probe cannot speak TLS"
        assert container[probe]["exec"]["command"] == HEALTHCHECK, probe
        assert container[probe]["timeoutSeconds"] > 3, "the health check's own timeout is 3 s"
    variables = env(container)
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod_spec(with_tls)["volumes"]}
    for variable, key in (("WORKENGINE_TLS_CERT", "tls.crt"), ("WORKENGINE_TLS_KEY", "tls.key")):
        path = Path(variables[variable]["value"])
        mounted = [name for name, mount_path in mounts.items() if Path(mount_path) == path.parent]
        assert len(mounted) == 1 and path.name == key, (variable, path, mounts)
        assert volumes[mounted[0]]["secret"]["secretName"] == "workengine-tls"


# Ports, selectors, the disruption budget


def test_named_ports_agree_between_the_deployment_and_the_service(rendered: list[Resource]) -> None:
    container = server_container(rendered)
    service = one(rendered, "Service")
    names = {port["name"]: port for port in service["spec"]["ports"]}
    assert set(names) == {"grpc", "http"}, names
    for name, port in names.items():
        assert port["targetPort"] == name, f"the Service's {name} port targets {port['targetPort']}"
        assert port["port"] == port_named(container, name)
    # The server listens where the container ports say.
    variables = env(container)
    assert int(variables["WORKENGINE_PORT"]["value"]) == port_named(container, "grpc")
    assert int(variables["WORKENGINE_HTTP_PORT"]["value"]) == port_named(container, "http")


def test_selectors_pick_the_pods_and_the_budget_lets_one_go_at_a_time(rendered: list[Resource]) -> None:
    deployment = one(rendered, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"]["matchLabels"], labels)
    assert selects(one(rendered, "Service")["spec"]["selector"], labels)
    budget = one(rendered, "PodDisruptionBudget")["spec"]
    assert selects(budget["selector"]["matchLabels"], labels), "the PodDisruptionBudget selects no pod"
    assert set(budget["selector"]) == {"matchLabels"}
    replicas = deployment["spec"]["replicas"]
    assert replicas >= 2
    # A drain may take a pod (a budget of 0 would block node maintenance), never all of them.
    assert budget.get("maxUnavailable") == 1 or 0 < replicas - budget["minAvailable"] < replicas, budget


def test_the_overlay_runs_three_pinned_replicas_in_its_namespace(overlay: list[Resource]) -> None:
    assert one(overlay, "Deployment")["spec"]["replicas"] == 3
    namespace = one(overlay, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for resource in overlay:
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == namespace["metadata"]["name"], resource["kind"]
    images = {container["image"] for container in all_containers(overlay)}
    assert len(images) == 1, f"migrate and serve must run the same release: {images}"
    assert images.pop().rsplit(":", 1)[1] not in ("", "latest")
    assert any(resource["kind"] == "ServiceMonitor" for resource in overlay), "the component is off"


# Secrets and the database


def secrets_to_create(text: str) -> dict[str, set[str]]:
    """The Secrets (name -> keys) that `kubectl create secret` commands in `text` create."""
    uncommented = re.sub(r"^\s*#", "", text, flags=re.MULTILINE)  # shown in a YAML comment too
    joined = re.sub(r"\\\n\s*", " ", uncommented)  # a command continued over lines, as one line
    created: dict[str, set[str]] = {}
    for kind, name, rest in re.findall(r"create secret (generic|tls) (\S+)(.*)", joined):
        keys = set(re.findall(r"--from-(?:literal|file)=([\w.-]+)=", rest)) if kind == "generic" else set()
        created.setdefault(name, set()).update(keys if kind == "generic" else {"tls.crt", "tls.key"})
    return created


def secret_references(resources: list[Resource]) -> Iterator[tuple[str, str]]:
    """Every (Secret, key) the manifests read: variables, volumes, the ServiceMonitor's token."""
    for container in all_containers(resources):
        for variable in container.get("env", []):
            reference = variable.get("valueFrom", {}).get("secretKeyRef")
            if reference:
                yield reference["name"], reference["key"]
    for volume in pod_spec(resources).get("volumes", []):
        if "secret" in volume:
            items = volume["secret"].get("items")
            keys = [item["key"] for item in items] if items else ["tls.crt", "tls.key"]
            assert items or volume["secret"]["secretName"] == "workengine-tls", volume
            yield from ((volume["secret"]["secretName"], key) for key in keys)
    for resource in resources:
        if resource["kind"] == "ServiceMonitor":
            for endpoint in resource["spec"]["endpoints"]:
                credentials = endpoint["authorization"]["credentials"]
                yield credentials["name"], credentials["key"]


@pytest.mark.parametrize(
    "where", ["docs/operations.md", "deploy/kubernetes/overlays/example/kustomization.yaml"]
)
def test_every_secret_key_used_is_one_the_docs_say_to_create(rendered: list[Resource], where: str) -> None:
    created = secrets_to_create((ROOT / where).read_text())
    assert "workengine" in created, f"{where} has no `kubectl create secret generic workengine`"
    used = set(secret_references(rendered))
    assert ("workengine", "database-url") in used and ("workengine", "admin-token") in used
    for name, key in used:
        if name == "workengine-tls" and where.endswith("kustomization.yaml"):
            continue  # the overlay leaves TLS off; docs/operations.md says how to create it
        assert key in created.get(name, set()), f"{name}/{key} is used but {where} does not create it"


def test_no_pod_can_fall_back_to_an_embedded_postgresql(rendered: list[Resource]) -> None:
    """Without a database URL `serve` and `migrate` start an embedded PostgreSQL: in a pod,
    a database of its own, lost with it. Every container takes the URL from the Secret, which
    must exist (not optional), so a missing one stops the pod instead."""
    for container in all_containers(rendered):
        variables = env(container)
        url = variables.get("WORKENGINE_DATABASE_URL", {})
        reference = url.get("valueFrom", {}).get("secretKeyRef")
        assert reference == {"name": "workengine", "key": "database-url"}, (container["name"], url)
        assert "value" not in url and "WORKENGINE_DATA_DIR" not in variables, container["name"]
    for source in (container.get("envFrom") for container in all_containers(rendered)):
        assert not source, "envFrom could override the variables checked here"


def test_migrations_run_before_the_server_and_not_in_it(rendered: list[Resource]) -> None:
    init = pod_spec(rendered)["initContainers"]
    assert [container.get("args") for container in init] == [["migrate"]], init
    server = server_container(rendered)
    assert server["args"] == ["serve"]
    assert values.parse_switch(env(server)["WORKENGINE_MIGRATE"]["value"]) is False


def test_variables_are_settings_serve_reads_with_values_it_accepts(rendered: list[Resource]) -> None:
    settings = {setting.env: setting for setting in config.SETTINGS}
    for container in all_containers(rendered):
        for name, variable in env(container).items():
            assert name.startswith("WORKENGINE_"), name
            assert name in settings, f"{name} is not a setting of `serve` (config.SETTINGS)"
            if "value" in variable:
                settings[name].parse(variable["value"])  # raises ValueError on a bad value


def test_the_server_asks_clients_to_reconnect(rendered: list[Resource]) -> None:
    """A Service balances connections: without a maximum age, channels opened before a scale
    out never reach the new pods."""
    age = values.parse_duration(env(server_container(rendered))["WORKENGINE_MAX_CONNECTION_AGE"]["value"])
    assert 0 < age.total_seconds() <= 3600, age


# Running restricted


def test_pods_run_as_the_images_non_root_user_with_nothing_to_escalate(rendered: list[Resource]) -> None:
    spec = pod_spec(rendered)
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert user is not None, "the Dockerfile has no numeric USER"
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert (pod["runAsUser"], pod["runAsGroup"]) == (int(user[1]), int(user[2]))
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    # Service links would set WORKENGINE_PORT=tcp://... from the Service named `workengine`.
    assert spec["enableServiceLinks"] is False
    for container in all_containers(rendered):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert context.get("privileged", False) is False and context.get("runAsUser", 10001) != 0
        assert "/tmp" in {mount["mountPath"] for mount in container["volumeMounts"]}, container["name"]
    for volume in spec["volumes"]:
        assert set(volume) & {"hostPath", "nfs"} == set(), volume
        if "secret" in volume:
            assert volume["secret"]["defaultMode"] & 0o007 == 0, f"{volume['name']} readable by others"


def test_every_container_has_requests_and_limits(rendered: list[Resource]) -> None:
    for container in all_containers(rendered):
        resources = container["resources"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[kind]), (container["name"], kind)


# The ServiceMonitor (a custom resource: the fields of the Prometheus Operator CRD used here)
