#!/usr/bin/env python3
"""Lint of rendered Kubernetes manifests: the rules a schema cannot express.

    lint.py [--self-test] [--binaries DIR] [--certificates FILE] RENDERED.yaml...

RENDERED.yaml is the output of `kubectl kustomize OVERLAY`. kubectl converts it to JSON (offline), so
this script needs nothing beyond the Python standard library (3.11 or newer, for tomllib). It fails
when:

- a container (init containers included) of a Deployment, StatefulSet, DaemonSet, Job or CronJob
  lacks a CPU or memory request or limit;
- a container of a Deployment or StatefulSet lacks a readiness or a liveness probe;
- a pod is not non-root or not under the RuntimeDefault seccomp profile, shares the host's network,
  PID or IPC namespace, or a container is privileged, may escalate privileges, has a writable root
  filesystem, or keeps or adds any capability;
- a pod running a Vigil binary leaves `enableServiceLinks` on (Kubernetes would inject
  VIGIL_REGISTRY_SERVICE_HOST and the like into the binaries' configuration namespace) or sets
  VIGIL_CONFIG (the lint finds a container's configuration file through --config);
- a Vigil server (a Deployment), judged with its configuration file as rendered and the literal
  VIGIL_* variables of its container on top:
  - probes something it does not serve: a gRPC probe must target a port answering grpc.health.v1
    in plaintext — server.health_listen's, or server.listen's on a server without tls.cert
    (kubelet's gRPC probe cannot speak TLS) —, a TCP probe the gRPC, health or metrics port, an
    HTTP probe /metrics on telemetry.prometheus_listen's port; the image has no shell or probe
    binary, so nothing else; and a probed port must not listen on loopback only (the kubelet
    connects to the pod's address);
  - has a readiness probe that does not follow the health status (kubelet's gRPC probe of the
    overall status, service ""), which goes NOT_SERVING while PostgreSQL or Redis is unreachable
    and during the drain; or a gRPC liveness probe, which would restart every replica during a
    database outage for that same reason;
  - names a tls.* file (or auth.jwks_file) outside the volumes mounted in its container, a TLS
    file on a writable mount, or a tls.key that does not come from a Secret;
  - has server.production set and lacks tls.cert and tls.key, sets server.allow_plaintext, does not
    require authentication (or has nothing to authenticate callers with), calls another service at
    a URL that is not https://, or without tls.ca or auth.outgoing_token;
  - in the rendering of the production overlay (a file named production.yaml): lacks
    server.production;
- a Service leads to a Vigil server's plaintext health port (server.health_listen), or a
  NetworkPolicy admits other pods or addresses to it (a rule listing it, a port range holding it,
  or a rule without ports): it is for the node's kubelet alone.

Nothing is exempt: the dev overlay's PostgreSQL and Redis meet the same rules.

--self-test breaks copies of the rendered workloads one rule at a time, in memory, and fails unless
the lint catches every one: a lint that cannot fail proves nothing. Breakages that need something a
rendering does not have (TLS, a production server) are skipped for that rendering.

--binaries DIR runs each Vigil binary found in DIR with the rendered configuration file and the
environment of its container, `print-config`: literal values as rendered (the OTLP endpoint, say,
with $(VAR) references substituted as Kubernetes does), placeholders for values taken from Secrets
or the downward API. The binaries reject unknown keys in every section, so such a key fails here
rather than at start-up.

--certificates FILE checks cert-manager Certificates (deploy/k8s/examples/cert-manager.yaml) against
each rendering: every TLS Secret a Vigil server mounts is written by a Certificate of FILE, issued
by an Issuer of FILE, with the usages TLS needs here and a DNS name for every host another service
dials it by.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

try:
    import tomllib
except ImportError:  # Python < 3.11
    raise SystemExit("lint: needs Python 3.11 or newer (tomllib reads the services' configuration files)")

# Where each workload kind keeps its pod spec.
POD_SPEC_PATHS = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
# Kinds whose containers run indefinitely and so must say when they are ready and alive.
PROBED = {"Deployment", "StatefulSet"}
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
VIGIL_BINARY_PREFIX = "/usr/local/bin/vigil-"
# The binaries read VIGIL_* variables as settings, `__` between nested keys.
ENV_PREFIX = "VIGIL_"
# The settings naming files of [tls], which the server reads at start-up.
TLS_FILES = ("cert", "key", "client_ca", "ca")
# Any one of them lets a server with auth.mode = "required" authenticate someone.
AUTH_METHODS = ("hs256_secret", "jwks_file", "api_tokens", "service_tokens")
# The rendering of the production overlay, whose servers must be production servers.
PRODUCTION_RENDERING = "production"


@dataclass(frozen=True)
class Problem:
    source: str
    workload: str
    container: str | None
    message: str

    def __str__(self) -> str:
        where = self.workload if self.container is None else f"{self.workload} container {self.container}"
        return f"{self.source}: {where}: {self.message}"


class FromSecret:
    """A setting whose value comes from a Secret (or the downward API): set, but unknown here."""

    def __repr__(self) -> str:
        return "<from a Secret>"


FROM_SECRET = FromSecret()


def load_documents(path: Path) -> list[dict]:
    """The objects of a rendered manifest, as kubectl parses them (offline: `--local`)."""
    # `annotate --local -o json` is the one offline kubectl command that prints its input as JSON;
    # removing an annotation nobody sets leaves the objects as they were.
    result = subprocess.run(
        ["kubectl", "annotate", "--local", "-f", str(path), "-o", "json", "vigil.io/lint-"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "KUBECONFIG": os.devnull},
    )
    if result.returncode != 0:
        raise SystemExit(f"lint: kubectl could not parse {path}: {result.stderr.strip()}")
    decoder = json.JSONDecoder()
    text, position, documents = result.stdout, 0, []
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return documents
        document, position = decoder.raw_decode(text, position)
        # A single object prints as itself, several as consecutive objects; a List is unwrapped.
        documents.extend(document.get("items", []) if document.get("kind") == "List" else [document])


def dig(value: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def pod_spec(document: dict) -> dict | None:
    path = POD_SPEC_PATHS.get(document.get("kind", ""))
    spec = dig(document, *path) if path else None
    return spec if isinstance(spec, dict) else None


def is_vigil(container: dict) -> bool:
    command = container.get("command") or []
    return bool(command) and str(command[0]).startswith(VIGIL_BINARY_PREFIX)


def workload_name(document: dict) -> str:
    return f"{document.get('kind')}/{dig(document, 'metadata', 'name')}"


# --- a container's configuration --------------------------------------------------------------------

ConfigMaps = dict[str, dict]


def config_maps(documents: list[dict]) -> ConfigMaps:
    return {dig(d, "metadata", "name"): d.get("data") or {} for d in documents if d.get("kind") == "ConfigMap"}


def config_file(spec: dict, container: dict, maps: ConfigMaps) -> tuple[Path, str | None] | None:
    """The `--config` path of a container and the text the rendered ConfigMap mounted there holds
    (None when none does); None when the container takes no `--config`."""
    args = container.get("args") or []
    if "--config" not in args or args.index("--config") + 1 >= len(args):
        return None
    path = Path(args[args.index("--config") + 1])
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    mount = next((m for m in container.get("volumeMounts") or [] if Path(m["mountPath"]) == path.parent), None)
    config_map = dig(volumes.get(mount["name"]) if mount else None, "configMap", "name")
    return path, maps.get(config_map, {}).get(path.name)


def environment(container: dict) -> list[tuple[str, str | None]]:
    """The container's variables in order: (name, literal value, or None when it comes from elsewhere)."""
    return [
        (env["name"], None if "valueFrom" in env else env.get("value", "")) for env in container.get("env") or []
    ]


# Kubernetes substitutes $(NAME) in a value with an earlier variable of the container; $$ is a `$`.
REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def substitute(value: str, defined: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        return defined.get(match.group(1), match.group(0))

    return REFERENCE.sub(replace, value)


def env_value(text: str) -> object:
    """A variable's value as the configuration sees it, as far as these rules need: booleans."""
    return {"true": True, "false": False}.get(text.strip().lower(), text)


def effective_config(text: str, variables: list[tuple[str, str | None]]) -> dict:
    """The configuration file with the container's VIGIL_* variables on top (values from Secrets
    are FROM_SECRET). Raises tomllib.TOMLDecodeError on a file that is not TOML."""
    config = tomllib.loads(text)
    for name, value in variables:
        if not name.startswith(ENV_PREFIX):
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        target = config
        for key in keys[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        target[keys[-1]] = FROM_SECRET if value is None else env_value(value)
    return config


def server_config(document: dict, maps: ConfigMaps) -> dict | None:
    """The effective configuration of a Deployment's first Vigil container, if it has one."""
    spec = pod_spec(document)
    if document.get("kind") != "Deployment" or spec is None:
        return None
    for container in spec.get("containers") or []:
        if not is_vigil(container):
            continue
        found = config_file(spec, container, maps)
        if found is None or found[1] is None:
            return None
        try:
            return effective_config(found[1], environment(container))
        except tomllib.TOMLDecodeError:
            return None
    return None


def port_of(address: object) -> int | None:
    """The port of a `host:port` listen address."""
    if not isinstance(address, str) or ":" not in address:
        return None
    try:
        return int(address.rsplit(":", 1)[1])
    except ValueError:
        return None


def is_set(value: object) -> bool:
    return value is FROM_SECRET or (value is not None and value != "" and value != [] and value != {})


def urls_of(config: dict) -> dict[str, str]:
    """The other services this one calls: its top-level `*_url` settings."""
    return {key: value for key, value in config.items() if key.endswith("_url") and isinstance(value, str)}


# --- the lint ---------------------------------------------------------------------------------------


def lint_documents(source: str, documents: list[dict]) -> tuple[list[Problem], int]:
    """Every problem found, and how many containers were looked at."""
    problems: list[Problem] = []
    containers_seen = 0
    maps = config_maps(documents)
    production_rendering = Path(source).stem == PRODUCTION_RENDERING
    for document in documents:
        spec = pod_spec(document)
        if spec is None:
            continue
        kind = document["kind"]
        workload = workload_name(document)
        problems += [Problem(source, workload, None, message) for message in pod_problems(spec)]
        init_containers = spec.get("initContainers") or []
        containers = spec.get("containers") or []
        for container, is_init in [(c, True) for c in init_containers] + [(c, False) for c in containers]:
            containers_seen += 1
            name = container.get("name", "?") + (" (init)" if is_init else "")
            probed = kind in PROBED and not is_init
            problems += [
                Problem(source, workload, name, message)
                for message in container_problems(container, spec.get("securityContext") or {}, probed)
            ]
            # Servers: what their configuration says they serve, read and require.
            if kind == "Deployment" and not is_init and is_vigil(container):
                problems += [
                    Problem(source, workload, name, message)
                    for message in server_problems(spec, container, maps, production_rendering)
                ]
    problems += exposure_problems(source, documents)
    return problems, containers_seen


def pod_problems(spec: dict) -> Iterator[str]:
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            yield f"{flag} is on"
    containers = (spec.get("initContainers") or []) + (spec.get("containers") or [])
    if any(is_vigil(container) for container in containers) and spec.get("enableServiceLinks", True):
        yield (
            "runs a Vigil binary but enableServiceLinks is not false "
            "(injected VIGIL_*_SERVICE_* variables land in the binaries' configuration namespace)"
        )


def container_problems(container: dict, pod_security: dict, probed: bool) -> Iterator[str]:
    for section in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if dig(container, "resources", section, resource) is None:
                yield f"no {resource} {section[:-1]}"

    if probed:
        for probe in ("readinessProbe", "livenessProbe"):
            if not container.get(probe):
                yield f"no {probe}"
    if is_vigil(container) and any(env.get("name") == "VIGIL_CONFIG" for env in container.get("env") or []):
        yield "sets VIGIL_CONFIG; pass --config, which the lint follows to check the configuration file"

    security = container.get("securityContext") or {}
    # A container's own setting wins over the pod's.
    if security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is not True:
        yield "runAsNonRoot is not true (pod or container)"
    seccomp = dig(security, "seccompProfile", "type") or dig(pod_security, "seccompProfile", "type")
    if seccomp != "RuntimeDefault":
        yield f"seccomp profile is {seccomp or 'unset'}, not RuntimeDefault"
    if security.get("privileged"):
        yield "privileged"
    if security.get("allowPrivilegeEscalation") is not False:
        yield "allowPrivilegeEscalation is not false"
    if security.get("readOnlyRootFilesystem") is not True:
        yield "readOnlyRootFilesystem is not true"
    capabilities = security.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        yield "capabilities do not drop ALL"
    if capabilities.get("add"):
        yield f"adds capabilities {capabilities['add']}"


def server_problems(spec: dict, container: dict, maps: ConfigMaps, production_rendering: bool) -> Iterator[str]:
    found = config_file(spec, container, maps)
    if found is None:
        yield "runs a Vigil server without --config"
        return
    path, text = found
    if text is None:
        yield f"{path} comes from no rendered ConfigMap"
        return
    try:
        config = effective_config(text, environment(container))
    except tomllib.TOMLDecodeError as error:
        yield f"{path} is not valid TOML: {error}"
        return
    yield from probe_problems(container, config)
    yield from file_problems(spec, container, config)
    yield from production_problems(config, production_rendering)


def container_port(container: dict, port: object) -> int | None:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    return next((p.get("containerPort") for p in container.get("ports") or [] if p.get("name") == port), None)


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host == "localhost" or host == "::1" or host.startswith("127.")


def probe_problems(container: dict, config: dict) -> Iterator[str]:
    listen = dig(config, "server", "listen") or "127.0.0.1:7400"
    grpc_port = port_of(listen)
    health_listen = dig(config, "server", "health_listen")
    health_port = port_of(health_listen)
    metrics_port = port_of(dig(config, "telemetry", "prometheus_listen"))
    tls = is_set(dig(config, "tls", "cert"))
    # What the server listens on, port → (setting, address); each port holds one listener.
    listeners = {grpc_port: ("server.listen", listen)}
    if health_port:
        listeners[health_port] = ("server.health_listen", health_listen)
    if metrics_port:
        listeners[metrics_port] = ("telemetry.prometheus_listen", dig(config, "telemetry", "prometheus_listen"))
    served = ", ".join(f"{setting} :{port}" for port, (setting, _) in listeners.items())
    # Where grpc.health.v1 answers in plaintext: the health port always, the main port without TLS.
    plaintext_health = {port for port in (health_port, None if tls else grpc_port) if port}

    def unreachable(name: str, port: object) -> Iterator[str]:
        setting, address = listeners.get(port, (None, None))
        if setting and is_loopback(address):
            yield (
                f"{name} probes :{port}, but {setting} {address} listens on loopback only: the kubelet "
                "connects to the pod's address, so the probe would never succeed"
            )

    for name in PROBES:
        probe = container.get(name)
        if not probe:
            continue
        if "grpc" in probe:
            port = dig(probe, "grpc", "port")
            service = dig(probe, "grpc", "service") or ""
            if port == grpc_port and tls:
                yield (
                    f"{name} is kubelet's gRPC probe, which speaks plaintext, but :{port} speaks TLS only "
                    "(tls.cert): it would never succeed; probe the plaintext server.health_listen port"
                )
            elif port not in plaintext_health:
                yield f"{name} probes gRPC on :{port}, which does not answer grpc.health.v1 in plaintext ({served})"
            elif name == "livenessProbe":
                yield (
                    "livenessProbe is kubelet's gRPC probe: every health status goes NOT_SERVING while "
                    "PostgreSQL or Redis is unreachable, so a database outage would restart every replica; "
                    "probe liveness with GET /metrics"
                )
            elif service:
                yield (
                    f'{name} asks for the health of "{service}"; ask for the overall status (service ""), '
                    "which covers every service the server registers (a name it does not register is "
                    "never SERVING)"
                )
            yield from unreachable(name, port)
        elif "tcpSocket" in probe:
            port = container_port(container, dig(probe, "tcpSocket", "port"))
            if port not in listeners:
                yield f"{name} probes TCP :{port}, which the service does not serve ({served})"
            yield from unreachable(name, port)
        elif "httpGet" in probe:
            port = container_port(container, dig(probe, "httpGet", "port"))
            path = dig(probe, "httpGet", "path") or "/"
            if metrics_port is None or port != metrics_port:
                yield (
                    f"{name} probes HTTP on :{port}, which the service does not serve: its only HTTP port "
                    f"is telemetry.prometheus_listen ({metrics_port or 'not set'})"
                )
            elif path != "/metrics":
                yield f"{name} asks for {path}; the metrics port serves /metrics only"
            elif dig(probe, "httpGet", "scheme") not in (None, "HTTP"):
                yield f"{name} speaks {dig(probe, 'httpGet', 'scheme')} to the metrics port, which is plaintext"
            yield from unreachable(name, port)
        else:
            yield f"{name} is neither gRPC, TCP nor HTTP: the image has no shell and no probe binary to exec"

    readiness = container.get("readinessProbe")
    if readiness and "grpc" not in readiness:
        yield (
            "readinessProbe is not kubelet's gRPC probe of the health status: readiness would not follow "
            "it (NOT_SERVING while PostgreSQL or Redis is unreachable, and during the drain), so a replica "
            "that lost them would keep taking calls and connections; probe gRPC on server.health_listen's port"
        )


# --- the plaintext health port -----------------------------------------------------------------------


@dataclass(frozen=True)
class HealthPort:
    """A Vigil server's plaintext health port: which pods, the port, and the container's names for it."""

    workload: str
    labels: tuple[tuple[str, str], ...]
    port: int
    names: frozenset[str]


def health_ports(documents: list[dict]) -> list[HealthPort]:
    maps = config_maps(documents)
    found = []
    for document in documents:
        config = server_config(document, maps)
        port = port_of(dig(config, "server", "health_listen")) if config else None
        if port is None:
            continue
        spec = pod_spec(document) or {}
        container = next(c for c in spec.get("containers") or [] if is_vigil(c))
        names = frozenset(
            p["name"] for p in container.get("ports") or [] if p.get("containerPort") == port and p.get("name")
        )
        labels = dig(document, "spec", "template", "metadata", "labels") or {}
        found.append(HealthPort(workload_name(document), tuple(sorted(labels.items())), port, names))
    return found


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels, matchExpressions) selects these labels."""
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def opens_port(rule_port: dict, health: HealthPort) -> bool:
    """Whether one `ports` entry of a NetworkPolicy rule covers the health port (no port = every port)."""
    if rule_port.get("protocol", "TCP") != "TCP":
        return False
    port = rule_port.get("port")
    if port is None or port == health.port or port in health.names:
        return True
    end = rule_port.get("endPort")
    return isinstance(port, int) and isinstance(end, int) and port <= health.port <= end


def exposure_problems(source: str, documents: list[dict]) -> list[Problem]:
    """The plaintext health ports that a Service leads to or a NetworkPolicy opens: they answer
    anyone without TLS or authentication, and are for the node's kubelet alone (whose probes
    NetworkPolicies do not govern)."""
    problems = []
    for health in health_ports(documents):
        labels = dict(health.labels)
        where = f"the plaintext health port :{health.port} of {health.workload} (server.health_listen)"
        for document in documents:
            kind, spec = document.get("kind"), document.get("spec") or {}
            if kind == "NetworkPolicy":
                types = spec.get("policyTypes") or ["Ingress"]
                if "Ingress" not in types or not selects(spec.get("podSelector") or {}, labels):
                    continue
                for number, rule in enumerate(spec.get("ingress") or [], 1):
                    ports = rule.get("ports")
                    if not ports or any(opens_port(port, health) for port in ports):
                        how = "lists no ports, so it opens every one, including" if not ports else "opens"
                        problems.append(
                            Problem(
                                source,
                                workload_name(document),
                                None,
                                f"ingress rule {number} {how} {where}: only the node's kubelet should reach it",
                            )
                        )
            elif kind == "Service":
                selector = spec.get("selector") or {}
                if not selector or any(labels.get(key) != value for key, value in selector.items()):
                    continue
                for port in spec.get("ports") or []:
                    target = port.get("targetPort", port.get("port"))
                    if target == health.port or target in health.names:
                        problems.append(
                            Problem(
                                source,
                                workload_name(document),
                                None,
                                f"port {port.get('name') or port.get('port')} leads to {where}, which answers "
                                "anyone without TLS or authentication: keep it out of every Service",
                            )
                        )
    return problems


def file_problems(spec: dict, container: dict, config: dict) -> Iterator[str]:
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    mounts = [
        (PurePosixPath(m["mountPath"]), m, volumes.get(m.get("name")) or {})
        for m in container.get("volumeMounts") or []
    ]
    files = [(f"tls.{key}", dig(config, "tls", key)) for key in TLS_FILES] + [
        ("auth.jwks_file", dig(config, "auth", "jwks_file"))
    ]
    for setting, value in files:
        if not isinstance(value, str) or not value:
            continue
        path = PurePosixPath(value)
        # The innermost mount holding the file.
        holder = max((m for m in mounts if m[0] in path.parents), key=lambda m: len(m[0].parts), default=None)
        if holder is None:
            yield f"{setting} {value} is on no volume mounted in the container: the server would not start"
            continue
        _, mount, volume = holder
        if setting.startswith("tls.") and not mount.get("readOnly"):
            yield f"{setting} {value} is on the writable mount {mount['mountPath']}; mount TLS material read-only"
        if setting == "tls.key" and "secret" not in volume and "projected" not in volume:
            yield f"tls.key {value} comes from volume {mount['name']}, not from a Secret"


def production_problems(config: dict, production_rendering: bool) -> Iterator[str]:
    production = dig(config, "server", "production") is True
    if production_rendering and not production:
        yield (
            "server.production is not true in the production overlay: a server whose TLS configuration "
            "went missing would start in plaintext instead of refusing to"
        )
    if not production:
        return
    if not (is_set(dig(config, "tls", "cert")) and is_set(dig(config, "tls", "key"))):
        yield "server.production is set but tls.cert and tls.key are not: the server refuses to start"
    if dig(config, "server", "allow_plaintext") is True:
        yield "server.allow_plaintext is set on a production server: its TLS requirement is off"
    mode = dig(config, "auth", "mode")
    if mode != "required":
        yield f'auth.mode is {mode or "off (the default)"}, not "required": every caller could do everything'
    elif not any(is_set(dig(config, "auth", method)) for method in AUTH_METHODS):
        yield f"auth.mode is required but none of auth.{', auth.'.join(AUTH_METHODS)} is set: nobody can call"
    urls = urls_of(config)
    for key, url in sorted(urls.items()):
        if not url.startswith("https://"):
            yield f"{key} {url} is not https://: the calls, and the service token they carry, go in plaintext"
    if any(url.startswith("https://") for url in urls.values()) and not is_set(dig(config, "tls", "ca")):
        yield "calls https:// URLs without tls.ca: the callees' certificates cannot be checked"
    if urls and not is_set(dig(config, "auth", "outgoing_token")):
        yield (
            f"calls {', '.join(sorted(urls))} without auth.outgoing_token: "
            "callees that require authentication refuse its calls"
        )


# --- self-test -----------------------------------------------------------------------------------

Mutation = Callable[[dict], None]
# Whether an object can take a breakage (a workload that serves TLS, say), given the whole rendering;
# None: any Vigil workload of the kind.
Target = Callable[[dict, list[dict]], bool] | None


def first_container(document: dict) -> dict:
    spec = pod_spec(document)
    assert spec is not None
    return spec["containers"][0]


def serves_tls(document: dict, documents: list[dict]) -> bool:
    config = server_config(document, config_maps(documents))
    return config is not None and is_set(dig(config, "tls", "cert"))


def serves_health_port(document: dict, documents: list[dict]) -> bool:
    return any(health.workload == workload_name(document) for health in health_ports(documents))


def production_server(document: dict, documents: list[dict]) -> bool:
    config = server_config(document, config_maps(documents))
    return config is not None and dig(config, "server", "production") is True


def production_caller(document: dict, documents: list[dict]) -> bool:
    config = server_config(document, config_maps(documents))
    return production_server(document, documents) and config is not None and "termination_url" in config


def guards_health_port(document: dict, documents: list[dict]) -> bool:
    """A NetworkPolicy with ingress rules for the pods of a server with a health port."""
    spec = document.get("spec") or {}
    return "Ingress" in (spec.get("policyTypes") or ["Ingress"]) and any(
        selects(spec.get("podSelector") or {}, dict(health.labels)) for health in health_ports(documents)
    )


def fronts_health_port(document: dict, documents: list[dict]) -> bool:
    """A Service selecting the pods of a server whose health port is named `health` (as the
    breakage names it)."""
    selector = dig(document, "spec", "selector") or {}
    return bool(selector) and any(
        "health" in health.names and all(dict(health.labels).get(key) == value for key, value in selector.items())
        for health in health_ports(documents)
    )


def mutations() -> Iterator[tuple[str, str, Mutation, str, Target]]:
    """(description, kind it applies to, change, what the lint must then say, which workloads)."""

    def drop(*keys: str) -> Mutation:
        def change(document: dict) -> None:
            target = first_container(document)
            for key in keys[:-1]:
                target = target[key]
            del target[keys[-1]]

        return change

    def set_container(key: str, value: object) -> Mutation:
        def change(document: dict) -> None:
            first_container(document).setdefault("securityContext", {})[key] = value

        return change

    def set_pod(key: str, value: object) -> Mutation:
        def change(document: dict) -> None:
            spec = pod_spec(document)
            assert spec is not None
            spec[key] = value

        return change

    def pod_security(key: str, value: object) -> Mutation:
        def change(document: dict) -> None:
            spec = pod_spec(document)
            assert spec is not None
            security = spec.setdefault("securityContext", {})
            if value is None:
                security.pop(key, None)
                first_container(document).get("securityContext", {}).pop(key, None)
            else:
                security[key] = value

        return change

    def set_probe(probe: str, value: dict) -> Mutation:
        def change(document: dict) -> None:
            first_container(document)[probe] = value

        return change

    def add_env(name: str, value: str) -> Mutation:
        def change(document: dict) -> None:
            first_container(document).setdefault("env", []).append({"name": name, "value": value})

        return change

    def drop_env(name: str) -> Mutation:
        def change(document: dict) -> None:
            container = first_container(document)
            container["env"] = [env for env in container.get("env") or [] if env.get("name") != name]

        return change

    def add_capability(document: dict) -> None:
        first_container(document)["securityContext"].setdefault("capabilities", {})["add"] = ["NET_ADMIN"]

    def grpc_probe_on_listen_port(document: dict) -> None:
        container = first_container(document)
        port = next(p["containerPort"] for p in container["ports"] if p.get("name") == "grpc")
        container["readinessProbe"] = {"grpc": {"port": port}}

    def grpc_liveness(document: dict) -> None:
        # The readiness probe's target: a plaintext health port, or the lint would have said so.
        container = first_container(document)
        container["livenessProbe"] = {"grpc": {"port": container["readinessProbe"]["grpc"]["port"]}}

    def readiness_of_a_name(document: dict) -> None:
        first_container(document)["readinessProbe"]["grpc"]["service"] = "vigil.v1.SessionRegistry"

    def health_on_loopback(document: dict) -> None:
        container = first_container(document)
        port = container["readinessProbe"]["grpc"]["port"]
        container.setdefault("env", []).append({"name": "VIGIL_SERVER__HEALTH_LISTEN", "value": f"127.0.0.1:{port}"})

    def add_ingress_rule(rule: dict) -> Mutation:
        def change(document: dict) -> None:
            document["spec"].setdefault("ingress", []).append(rule)

        return change

    def add_service_port(document: dict) -> None:
        document["spec"]["ports"].append({"name": "health", "port": 7480, "targetPort": "health"})

    def unmount_tls(document: dict) -> None:
        container = first_container(document)
        config = Path(container["args"][container["args"].index("--config") + 1]).parent
        container["volumeMounts"] = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == config]

    yield "no memory limit", "Deployment", drop("resources", "limits", "memory"), "no memory limit", None
    yield "no cpu request", "Job", drop("resources", "requests", "cpu"), "no cpu request", None
    yield "no liveness probe", "Deployment", drop("livenessProbe"), "no livenessProbe", None
    yield "no readiness probe", "Deployment", drop("readinessProbe"), "no readinessProbe", None
    yield (
        "a probe on a port the service does not serve",
        "Deployment",
        set_probe("livenessProbe", {"tcpSocket": {"port": 7999}}),
        "probes TCP :7999, which the service does not serve",
        None,
    )
    yield (
        "an HTTP probe on a port other than the metrics port",
        "Deployment",
        set_probe("livenessProbe", {"httpGet": {"path": "/metrics", "port": "grpc"}}),
        "which the service does not serve: its only HTTP port",
        None,
    )
    yield (
        "an exec probe",
        "Deployment",
        set_probe("readinessProbe", {"exec": {"command": ["grpc_health_probe"]}}),
        "no probe binary to exec",
        None,
    )
    yield (
        "a gRPC probe on a TLS port",
        "Deployment",
        grpc_probe_on_listen_port,
        "kubelet's gRPC probe, which speaks plaintext",
        serves_tls,
    )
    yield (
        "a gRPC probe on a port without plaintext health",
        "Deployment",
        set_probe("startupProbe", {"grpc": {"port": 7999}}),
        "probes gRPC on :7999, which does not answer grpc.health.v1 in plaintext",
        None,
    )
    yield (
        "a readiness probe that does not follow the health status",
        "Deployment",
        set_probe("readinessProbe", {"tcpSocket": {"port": "grpc"}}),
        "readinessProbe is not kubelet's gRPC probe of the health status",
        None,
    )
    yield (
        "a gRPC liveness probe",
        "Deployment",
        grpc_liveness,
        "a database outage would restart every replica",
        serves_health_port,
    )
    yield (
        "a readiness probe of one service's name",
        "Deployment",
        readiness_of_a_name,
        "ask for the overall status",
        serves_health_port,
    )
    yield (
        "the health port on loopback",
        "Deployment",
        health_on_loopback,
        "listens on loopback only",
        serves_health_port,
    )
    yield (
        "a NetworkPolicy rule without ports",
        "NetworkPolicy",
        add_ingress_rule({"from": [{"podSelector": {}}]}),
        "lists no ports, so it opens every one, including the plaintext health port",
        guards_health_port,
    )
    yield (
        "a NetworkPolicy rule whose port range holds the health port",
        "NetworkPolicy",
        add_ingress_rule({"from": [{"podSelector": {}}], "ports": [{"port": 1, "endPort": 65535}]}),
        "opens the plaintext health port",
        guards_health_port,
    )
    yield (
        "the health port in a Service",
        "Service",
        add_service_port,
        "keep it out of every Service",
        fronts_health_port,
    )
    yield "TLS material not mounted", "Deployment", unmount_tls, "is on no volume mounted", serves_tls
    yield (
        "plaintext allowed on a production server",
        "Deployment",
        add_env("VIGIL_SERVER__ALLOW_PLAINTEXT", "true"),
        "server.allow_plaintext is set on a production server",
        production_server,
    )
    yield (
        "authentication off on a production server",
        "Deployment",
        add_env("VIGIL_AUTH__MODE", "off"),
        'auth.mode is off, not "required"',
        production_server,
    )
    yield (
        "server.production dropped in production",
        "Deployment",
        drop_env("VIGIL_SERVER__PRODUCTION"),
        "server.production is not true in the production overlay",
        production_server,
    )
    yield (
        "a plaintext URL on a production server",
        "Deployment",
        add_env("VIGIL_TERMINATION_URL", "http://vigil-termination:7403"),
        "termination_url http://vigil-termination:7403 is not https://",
        production_caller,
    )
    yield (
        "no outgoing token on a production server that calls others",
        "Deployment",
        drop_env("VIGIL_AUTH__OUTGOING_TOKEN"),
        "without auth.outgoing_token",
        production_caller,
    )
    yield (
        "a writable root filesystem",
        "Deployment",
        set_container("readOnlyRootFilesystem", False),
        "readOnlyRootFilesystem is not true",
        None,
    )
    yield (
        "privilege escalation",
        "Job",
        set_container("allowPrivilegeEscalation", True),
        "allowPrivilegeEscalation is not false",
        None,
    )
    yield "privileged", "Deployment", set_container("privileged", True), "privileged", None
    yield "capabilities kept", "Deployment", drop("securityContext", "capabilities"), "do not drop ALL", None
    yield "a capability added", "Deployment", add_capability, "adds capabilities", None
    yield "root allowed", "Deployment", pod_security("runAsNonRoot", False), "runAsNonRoot is not true", None
    yield (
        "no seccomp profile",
        "Deployment",
        pod_security("seccompProfile", None),
        "seccomp profile is unset",
        None,
    )
    yield (
        "seccomp unconfined",
        "Job",
        pod_security("seccompProfile", {"type": "Unconfined"}),
        "seccomp profile is Unconfined",
        None,
    )
    yield (
        "service links on",
        "Deployment",
        set_pod("enableServiceLinks", True),
        "enableServiceLinks is not false",
        None,
    )
    yield "host network", "Deployment", set_pod("hostNetwork", True), "hostNetwork is on", None
    yield "VIGIL_CONFIG set", "Deployment", add_env("VIGIL_CONFIG", "/x.toml"), "sets VIGIL_CONFIG", None


def self_test(source: str, documents: list[dict]) -> tuple[list[str], int, int]:
    """Failures of the self-test (breakages the lint did not report), breakages tried, and
    breakages skipped because no workload of the rendering can take them."""
    baseline, _ = lint_documents(source, documents)
    if baseline:
        return ["the self-test needs a manifest that passes the lint"], 0, 0
    failures, tried, skipped = [], 0, 0
    for description, kind, change, expected, target in mutations():
        index = next(
            (
                i
                for i, d in enumerate(documents)
                if d.get("kind") == kind
                # Workloads: Vigil ones; other objects (NetworkPolicies, Services): as the target says.
                and (kind not in POD_SPEC_PATHS or is_vigil(((pod_spec(d) or {}).get("containers") or [{}])[0]))
                and (target is None or target(d, documents))
            ),
            None,
        )
        if index is None:
            if target is None:
                failures.append(f"no Vigil {kind} to break with: {description}")
            else:
                skipped += 1
            continue
        tried += 1
        broken = copy.deepcopy(documents)
        change(broken[index])
        problems, _ = lint_documents(source, broken)
        if not any(expected in problem.message for problem in problems):
            failures.append(
                f"not caught: {description} in {workload_name(broken[index])} "
                f"(expected a problem saying {expected!r}, got {[p.message for p in problems]})"
            )
    return failures, tried, skipped


# --- certificates ---------------------------------------------------------------------------------


def tls_secrets(documents: list[dict]) -> Iterator[tuple[dict, dict, str]]:
    """(Deployment, its effective configuration, Secret) for each Vigil server whose tls.cert comes
    from a Secret volume."""
    maps = config_maps(documents)
    for document in documents:
        config = server_config(document, maps)
        cert = dig(config, "tls", "cert") if config else None
        if not isinstance(cert, str):
            continue
        spec = pod_spec(document) or {}
        container = next(c for c in spec.get("containers") or [] if is_vigil(c))
        volumes = {v.get("name"): v for v in spec.get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            if PurePosixPath(mount["mountPath"]) in PurePosixPath(cert).parents:
                secret = dig(volumes.get(mount["name"]), "secret", "secretName")
                if secret:
                    yield document, config, secret


def dialled_hosts(documents: list[dict], deployment: dict) -> dict[str, str]:
    """Host → who dials it, for every URL of a Vigil configuration in the rendering that leads to a
    Service selecting the pods of `deployment`."""
    maps = config_maps(documents)
    labels = dig(deployment, "spec", "template", "metadata", "labels") or {}
    services = {
        dig(d, "metadata", "name"): dig(d, "spec", "selector") or {} for d in documents if d.get("kind") == "Service"
    }
    hosts: dict[str, str] = {}
    for document in documents:
        config = server_config(document, maps)
        for key, url in sorted(urls_of(config or {}).items()):
            host = urlsplit(url).hostname or ""
            selector = services.get(host.split(".")[0])
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                hosts.setdefault(host, f"{workload_name(document)}'s {key}")
    return hosts


def certificate_problems(rendering: list[dict], certificates: list[dict]) -> list[str]:
    by_secret = {dig(c, "spec", "secretName"): c for c in certificates if c.get("kind") == "Certificate"}
    issuers = {(d.get("kind"), dig(d, "metadata", "name")) for d in certificates}
    problems = []
    for deployment, config, secret in tls_secrets(rendering):
        workload = workload_name(deployment)
        certificate = by_secret.get(secret)
        if certificate is None:
            problems.append(f"no Certificate writes the Secret {secret}, which {workload} mounts for tls.cert")
            continue
        name = f"Certificate/{dig(certificate, 'metadata', 'name')}"
        issuer = dig(certificate, "spec", "issuerRef") or {}
        if (issuer.get("kind", "Issuer"), issuer.get("name")) not in issuers:
            issuer_name = f"{issuer.get('kind', 'Issuer')}/{issuer.get('name')}"
            problems.append(f"{name}: its issuer {issuer_name} is not in the file")
        names = set(dig(certificate, "spec", "dnsNames") or [])
        for host, who in sorted(dialled_hosts(rendering, deployment).items()):
            if host not in names:
                problems.append(f"{name} does not name {host}, which {who} dials: the TLS handshake would fail")
        usages = dig(certificate, "spec", "usages")
        if usages is not None:
            needed = ["server auth"] + (["client auth"] if urls_of(config) else [])
            for usage in needed:
                if usage not in usages:
                    problems.append(f"{name} lacks the usage {usage!r}, which {workload} needs")
    return problems


def certificate_self_test(rendering: list[dict], certificates: list[dict]) -> list[str]:
    """Failures of the certificates' self-test: breakages of the file that went unreported."""
    mounted = [secret for _, _, secret in tls_secrets(rendering)]
    if not mounted:
        return []
    failures = []

    def cert_of(documents: list[dict], secret: str) -> dict:
        return next(c for c in documents if dig(c, "spec", "secretName") == secret)

    breakages: list[tuple[str, Callable[[list[dict]], None], str]] = [
        ("a missing Certificate", lambda docs: docs.remove(cert_of(docs, mounted[0])), "no Certificate writes"),
        (
            "a Certificate without its Service's name",
            lambda docs: cert_of(docs, mounted[0])["spec"].__setitem__("dnsNames", ["localhost"]),
            "does not name",
        ),
    ]
    for description, change, expected in breakages:
        broken = copy.deepcopy(certificates)
        change(broken)
        if not any(expected in problem for problem in certificate_problems(rendering, broken)):
            failures.append(f"not caught: {description}")
    return failures


# --- configuration against the binaries ----------------------------------------------------------

# Values standing in for those from Secrets, of the shape each setting takes; any other variable
# gets a string.
PLACEHOLDERS = {
    "VIGIL_DATABASE__URL": "postgres://lint:lint@db.invalid:5432/lint",
    "VIGIL_BUS__REDIS__URL": "redis://redis.invalid:6379",
    "VIGIL_AUTH__HS256_SECRET": "lint-placeholder-hs256-secret-of-32-bytes-or-more",
    "VIGIL_AUTH__API_TOKENS": '[{token = "lint-api-token", subject = "lint", roles = ["viewer"]}]',
    "VIGIL_AUTH__SERVICE_TOKENS": '[{token = "lint-service-token", subject = "lint"}]',
    "VIGIL_AUTH__GATEWAY_CREDENTIALS": '{"gw-lint-01" = "lint-gateway-credential"}',
}


# A container's environment as the lint passes it on: (name, value), with placeholders for values
# from elsewhere and $(VAR) references substituted.
Environment = tuple[tuple[str, str], ...]


def resolved_environment(container: dict) -> Environment:
    defined: dict[str, str] = {}
    for name, value in environment(container):
        if value is None:
            defined[name] = PLACEHOLDERS.get(name, f"lint-placeholder-{name.lower()}")
        else:
            defined[name] = substitute(value, defined)
    return tuple(sorted(defined.items()))


def config_checks(documents: list[dict]) -> Iterator[tuple[str, str, str, Environment]]:
    """(workload, binary, configuration file text, environment) of each Vigil container."""
    maps = config_maps(documents)
    for document in documents:
        spec = pod_spec(document)
        if spec is None:
            continue
        for container in spec.get("containers") or []:
            if not is_vigil(container):
                continue
            found = config_file(spec, container, maps)
            if found is None:
                continue
            path, text = found
            if text is None:
                raise SystemExit(f"lint: {workload_name(document)}: {path} comes from no rendered ConfigMap")
            yield workload_name(document), Path(container["command"][0]).name, text, resolved_environment(container)


def run_print_config(executable: Path, text: str, environment: Environment) -> str | None:
    """Why `executable` rejects the configuration `text` with `environment` set, or None."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as file:
        file.write(text)
        file.flush()
        # Only the container's variables: none of ours (a stray VIGIL_* here would be read too).
        env = {"PATH": os.environ.get("PATH", ""), "HOSTNAME": "lint", "RUST_BACKTRACE": "0"}
        env.update(dict(environment))
        result = subprocess.run(
            [str(executable), "--config", file.name, "print-config"],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=60,
        )
    if result.returncode == 0:
        return None
    lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return lines[0] if lines else f"exit status {result.returncode}"


def check_configs(sources: dict[str, list[dict]], binaries: Path) -> tuple[list[str], dict[str, set[str]], set[str]]:
    """(failures, the renderings each binary accepted, binaries missing from `binaries`)."""
    failures: list[str] = []
    accepted: dict[str, set[str]] = {}
    missing: set[str] = set()
    verdicts: dict[tuple[str, str, Environment], str | None] = {}
    for source, documents in sources.items():
        for workload, binary, text, environment in config_checks(documents):
            executable = binaries / binary
            if not os.access(executable, os.X_OK):
                missing.add(binary)
                continue
            key = (binary, text, environment)
            if key not in verdicts:
                verdicts[key] = run_print_config(executable, text, environment)
            if verdicts[key] is None:
                accepted.setdefault(binary, set()).add(Path(source).stem)
            else:
                failures.append(f"{source}: {workload}: {binary} rejects its configuration: {verdicts[key]}")
    return failures, accepted, missing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--self-test", action="store_true", help="prove the lint catches each rule")
    parser.add_argument("--binaries", type=Path, help="directory of built Vigil binaries to check configs with")
    parser.add_argument("--certificates", type=Path, help="cert-manager Certificates to check against the renderings")
    parser.add_argument("rendered", nargs="+", type=Path)
    args = parser.parse_args()

    sources = {str(path): load_documents(path) for path in args.rendered}
    failed = False
    for source, documents in sources.items():
        problems, containers = lint_documents(source, documents)
        workloads = sum(1 for d in documents if pod_spec(d) is not None)
        for problem in problems:
            print(f"lint: {problem}")
        failed |= bool(problems)
        verdict = f"{len(problems)} problem(s)" if problems else "ok"
        print(f"lint: {source}: {workloads} workloads, {containers} containers: {verdict}")

        if args.self_test:
            failures, tried, skipped = self_test(source, documents)
            for failure in failures:
                print(f"lint self-test: {source}: {failure}")
            failed |= bool(failures)
            if not failures:
                note = ""
                if skipped:
                    missing = "TLS, a production server, a health port"
                    note = f" ({skipped} need what this rendering does not have: {missing})"
                print(f"lint self-test: {source}: each of {tried} deliberate breakages caught{note}")

    if args.certificates:
        certificates = load_documents(args.certificates)
        for source, documents in sources.items():
            secrets = sorted({secret for _, _, secret in tls_secrets(documents)})
            if not secrets:
                print(f"certificates: {source}: mounts no TLS Secret; nothing to check")
                continue
            problems = certificate_problems(documents, certificates)
            if args.self_test:
                problems += [f"self-test: {failure}" for failure in certificate_self_test(documents, certificates)]
            for problem in problems:
                print(f"certificates: {args.certificates} against {source}: {problem}")
            failed |= bool(problems)
            if not problems:
                print(
                    f"certificates: {args.certificates} writes every TLS Secret {source} mounts "
                    f"({', '.join(secrets)}), naming the hosts the services dial"
                )

    if args.binaries:
        failures, checked, missing = check_configs(sources, args.binaries)
        for failure in failures:
            print(f"config: {failure}")
        failed |= bool(failures)
        for binary, accepted in sorted(checked.items()):
            print(f"config: {args.binaries / binary} accepts its configuration in: {', '.join(sorted(accepted))}")
        if missing:
            print(f"config: not checked, not built in {args.binaries}: {', '.join(sorted(missing))}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
