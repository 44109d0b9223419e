#!/usr/bin/env python3
"""Lint of rendered Kubernetes manifests: the rules a schema cannot express.

    lint.py [--self-test] [--binaries DIR] RENDERED.yaml...

RENDERED.yaml is the output of `kubectl kustomize OVERLAY`. kubectl converts it to JSON (offline), so
this script needs nothing beyond the Python standard library. It fails when:

- a container (init containers included) of a Deployment, StatefulSet, DaemonSet, Job or CronJob
  lacks a CPU or memory request or limit;
- a container of a Deployment or StatefulSet lacks a readiness or a liveness probe;
- a pod is not non-root or not under the RuntimeDefault seccomp profile, shares the host's network,
  PID or IPC namespace, or a container is privileged, may escalate privileges, has a writable root
  filesystem, or keeps or adds any capability;
- a pod running a Vigil binary leaves `enableServiceLinks` on (Kubernetes would inject
  VIGIL_REGISTRY_SERVICE_HOST and the like, which the binaries read as configuration keys and
  reject), sets VIGIL_CONFIG (read as a configuration key too), or, in a Deployment, probes
  anything but grpc.health.v1.

Nothing is exempt: the dev overlay's PostgreSQL and Redis meet the same rules.

--self-test breaks copies of the rendered workloads one rule at a time, in memory, and fails unless
the lint catches every one: a lint that cannot fail proves nothing.

--binaries DIR runs each Vigil binary found in DIR with the rendered configuration file and the
environment of its container, `print-config`: literal values as rendered (the OTLP endpoint, say),
placeholders for values taken from Secrets or the downward API. The binaries reject unknown keys
in every section, so such a key fails here rather than at start-up.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

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
VIGIL_BINARY_PREFIX = "/usr/local/bin/vigil-"


@dataclass(frozen=True)
class Problem:
    source: str
    workload: str
    container: str | None
    message: str

    def __str__(self) -> str:
        where = self.workload if self.container is None else f"{self.workload} container {self.container}"
        return f"{self.source}: {where}: {self.message}"


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


def lint_documents(source: str, documents: list[dict]) -> tuple[list[Problem], int]:
    """Every problem found, and how many containers were looked at."""
    problems: list[Problem] = []
    containers_seen = 0
    for document in documents:
        spec = pod_spec(document)
        if spec is None:
            continue
        kind = document["kind"]
        workload = f"{kind}/{dig(document, 'metadata', 'name')}"
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
    return problems, containers_seen


def pod_problems(spec: dict) -> Iterator[str]:
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            yield f"{flag} is on"
    containers = (spec.get("initContainers") or []) + (spec.get("containers") or [])
    if any(is_vigil(container) for container in containers) and spec.get("enableServiceLinks", True):
        yield (
            "runs a Vigil binary but enableServiceLinks is not false "
            "(injected VIGIL_*_SERVICE_* variables are rejected as configuration)"
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
            elif is_vigil(container) and "grpc" not in container[probe]:
                yield f"{probe} is not a gRPC probe (every Vigil service serves grpc.health.v1)"
    if is_vigil(container) and any(env.get("name") == "VIGIL_CONFIG" for env in container.get("env") or []):
        yield "sets VIGIL_CONFIG, which the binaries read as an (unknown) configuration key; pass --config instead"

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


# --- self-test -----------------------------------------------------------------------------------

Mutation = Callable[[dict], None]


def first_container(document: dict) -> dict:
    spec = pod_spec(document)
    assert spec is not None
    return spec["containers"][0]


def mutations() -> Iterator[tuple[str, str, Mutation, str]]:
    """(description, kind it applies to, change, what the lint must then say)."""

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

    def add_capability(document: dict) -> None:
        first_container(document)["securityContext"].setdefault("capabilities", {})["add"] = ["NET_ADMIN"]

    def livenessprobe_tcp(document: dict) -> None:
        first_container(document)["livenessProbe"] = {"tcpSocket": {"port": 7400}}

    def vigil_config_env(document: dict) -> None:
        first_container(document).setdefault("env", []).append({"name": "VIGIL_CONFIG", "value": "/x.toml"})

    yield "no memory limit", "Deployment", drop("resources", "limits", "memory"), "no memory limit"
    yield "no cpu request", "Job", drop("resources", "requests", "cpu"), "no cpu request"
    yield "no liveness probe", "Deployment", drop("livenessProbe"), "no livenessProbe"
    yield "no readiness probe", "Deployment", drop("readinessProbe"), "no readinessProbe"
    yield "a TCP liveness probe", "Deployment", livenessprobe_tcp, "livenessProbe is not a gRPC probe"
    yield (
        "a writable root filesystem",
        "Deployment",
        set_container("readOnlyRootFilesystem", False),
        "readOnlyRootFilesystem is not true",
    )
    yield (
        "privilege escalation",
        "Job",
        set_container("allowPrivilegeEscalation", True),
        "allowPrivilegeEscalation is not false",
    )
    yield "privileged", "Deployment", set_container("privileged", True), "privileged"
    yield "capabilities kept", "Deployment", drop("securityContext", "capabilities"), "do not drop ALL"
    yield "a capability added", "Deployment", add_capability, "adds capabilities"
    yield "root allowed", "Deployment", pod_security("runAsNonRoot", False), "runAsNonRoot is not true"
    yield "no seccomp profile", "Deployment", pod_security("seccompProfile", None), "seccomp profile is unset"
    yield (
        "seccomp unconfined",
        "Job",
        pod_security("seccompProfile", {"type": "Unconfined"}),
        "seccomp profile is Unconfined",
    )
    yield "service links on", "Deployment", set_pod("enableServiceLinks", True), "enableServiceLinks is not false"
    yield "host network", "Deployment", set_pod("hostNetwork", True), "hostNetwork is on"
    yield "VIGIL_CONFIG set", "Deployment", vigil_config_env, "sets VIGIL_CONFIG"


def self_test(source: str, documents: list[dict]) -> list[str]:
    """Failures of the self-test: breakages the lint did not report."""
    baseline, _ = lint_documents(source, documents)
    if baseline:
        return ["the self-test needs a manifest that passes the lint"]
    failures = []
    for description, kind, change, expected in mutations():
        index = next(
            (
                i
                for i, d in enumerate(documents)
                if d.get("kind") == kind and any(is_vigil(c) for c in (pod_spec(d) or {}).get("containers", []))
            ),
            None,
        )
        if index is None:
            failures.append(f"no Vigil {kind} to break with: {description}")
            continue
        broken = copy.deepcopy(documents)
        change(broken[index])
        problems, _ = lint_documents(source, broken)
        if not any(expected in problem.message for problem in problems):
            failures.append(
                f"not caught: {description} in {kind}/{dig(broken[index], 'metadata', 'name')} "
                f"(expected a problem saying {expected!r}, got {[p.message for p in problems]})"
            )
    return failures


# --- configuration against the binaries ----------------------------------------------------------

PLACEHOLDERS = {
    "VIGIL_DATABASE__URL": "postgres://lint:lint@db.invalid:5432/lint",
    "VIGIL_BUS__REDIS__URL": "redis://redis.invalid:6379",
}


# A container's environment as the lint passes it on: (name, literal value, or None when the value
# comes from elsewhere and a placeholder stands in for it).
Environment = tuple[tuple[str, str | None], ...]


def config_checks(documents: list[dict]) -> Iterator[tuple[str, str, str, Environment]]:
    """(workload, binary, configuration file text, environment) of each Vigil container."""
    config_maps = {dig(d, "metadata", "name"): d.get("data") or {} for d in documents if d.get("kind") == "ConfigMap"}
    for document in documents:
        spec = pod_spec(document)
        if spec is None:
            continue
        volumes = {v.get("name"): v for v in spec.get("volumes") or []}
        for container in spec.get("containers") or []:
            if not is_vigil(container):
                continue
            args = container.get("args") or []
            if "--config" not in args:
                continue
            config_path = Path(args[args.index("--config") + 1])
            mount = next(
                (m for m in container.get("volumeMounts") or [] if Path(m["mountPath"]) == config_path.parent), None
            )
            config_map = dig(volumes.get(mount["name"]) if mount else None, "configMap", "name")
            text = config_maps.get(config_map, {}).get(config_path.name)
            if text is None:
                raise SystemExit(
                    f"lint: {document['kind']}/{document['metadata']['name']}: "
                    f"{config_path} comes from no rendered ConfigMap"
                )
            # A literal value is passed as it is: the binaries read some at start-up (the OTLP endpoint)
            # and refuse ones they cannot use. A value from a Secret gets a placeholder instead.
            environment = tuple(
                sorted(
                    (env["name"], None if "valueFrom" in env else env.get("value", ""))
                    for env in container.get("env") or []
                )
            )
            workload = f"{document['kind']}/{document['metadata']['name']}"
            yield workload, Path(container["command"][0]).name, text, environment


def run_print_config(executable: Path, text: str, environment: Environment) -> str | None:
    """Why `executable` rejects the configuration `text` with `environment` set, or None."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as file:
        file.write(text)
        file.flush()
        # Only the container's variables: none of ours (a stray VIGIL_* here would be read too).
        env = {"PATH": os.environ.get("PATH", ""), "HOSTNAME": "lint", "RUST_BACKTRACE": "0"}
        env.update(
            {
                name: value if value is not None else PLACEHOLDERS.get(name, "lint-placeholder")
                for name, value in environment
            }
        )
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
            failures = self_test(source, documents)
            for failure in failures:
                print(f"lint self-test: {source}: {failure}")
            failed |= bool(failures)
            if not failures:
                print(f"lint self-test: {source}: each of {sum(1 for _ in mutations())} deliberate breakages caught")

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
