#!/usr/bin/env python3
"""Invariants of Easel's rendered Kubernetes manifests.

    check_invariants.py [--self-test] PROFILE=RENDERED.yaml ...

PROFILE is `dev` or `production` (production adds the rules about secrets,
autoscaling and disruption budgets). Each rule is checked per rendering and
reported as passed or failed, with one line per violation naming the object
and container. --self-test also mutates the production rendering in ways that
must be caught and fails if a mutation slips through.

The schema-level checks (kubernetes-validate, KEDA's schema) live in
scripts/check-k8s.sh; this file is about what the schemas cannot know.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]

WORKER = "easel-worker"
WORKER_CONTAINER = "worker"
# Time a worker needs after its last batch: ack, write results, close channels.
GRACE_MARGIN_SECONDS = 10

# The Secrets production expects to exist (created out of band, docs/DEPLOY.md)
# and the keys the manifests read from them.
EXTERNAL_SECRETS = {
    "easel-database": {"url"},
    "easel-api-database": {"url", "password"},
    "easel-rabbitmq": {"url", "management-url"},
    "easel-s3-ingest": {"access-key-id", "secret-access-key"},
    "easel-s3-worker": {"access-key-id", "secret-access-key"},
    "easel-s3-api": {"access-key-id", "secret-access-key"},
    "easel-worker-drain": {"token"},
}

# The Secrets each of Easel's containers may read, by (workload, container): every
# service gets its own credentials and no more. The api is the read side: a read-only
# database role, a read-only S3 key (the dashboard's thumbnails), no broker. Ingest writes images; the worker (and what
# copies the checkpoint for it) reads them. Only the worker holds the drain token.
SECRETS_BY_CONTAINER = {
    ("Deployment/easel-ingest", "ingest"): {"easel-database", "easel-rabbitmq", "easel-s3-ingest"},
    ("Deployment/easel-api", "api"): {"easel-api-database", "easel-s3-api"},
    ("Deployment/easel-worker", "worker"): {"easel-database", "easel-rabbitmq", "easel-s3-worker", "easel-worker-drain"},
    ("Deployment/easel-worker", "fetch-model"): {"easel-s3-worker"},
    # `easel-ingest migrate` loads ingest's settings, which production checks in full.
    ("Job/easel-migrate", "migrate"): {"easel-database", "easel-rabbitmq", "easel-s3-ingest"},
    ("Job/easel-migrate", "api-reader"): {"easel-database", "easel-api-database"},
    ("Job/easel-model-populate", "populate"): {"easel-s3-worker"},
}

# Who may open a connection to each service's pods (NetworkPolicy `from` peers, as
# {"namespace": ..., "pod": ...} label selectors; None = any pod of the namespace).
INGRESS_CONTROLLER_NAMESPACE = "ingress-nginx"
MONITORING_NAMESPACE = "monitoring"
PROMETHEUS_POD = {"app.kubernetes.io/name": "prometheus"}
ALLOWED_PEERS = {
    "easel-ingest": [(INGRESS_CONTROLLER_NAMESPACE, None), (MONITORING_NAMESPACE, PROMETHEUS_POD)],
    "easel-api": [(INGRESS_CONTROLLER_NAMESPACE, None), (MONITORING_NAMESPACE, PROMETHEUS_POD)],
    WORKER: [(MONITORING_NAMESPACE, PROMETHEUS_POD)],
}

# Environment variables that hold credentials: never a literal in production.
CREDENTIAL_ENV = re.compile(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY|DATABASE__URL|RABBITMQ__URL)", re.I)

POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}
LONG_RUNNING_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}
KEDA_GROUP = "keda.sh"


@dataclass
class Violation:
    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.where}: {self.message}"


class Rendering:
    """One `kubectl kustomize` output, indexed for lookups."""

    def __init__(self, name: str, profile: str, docs: list[dict]):
        self.name = name
        self.profile = profile
        self.docs = [d for d in docs if d]

    def of_kind(self, kind: str, group: str | None = None):
        for d in self.docs:
            if d.get("kind") == kind and (group is None or d["apiVersion"].startswith(group + "/")):
                yield d

    def get(self, kind: str, name: str):
        return next((d for d in self.of_kind(kind) if d["metadata"]["name"] == name), None)

    def workloads(self):
        """(object, pod spec) for everything that runs pods."""
        for d in self.docs:
            if d.get("kind") in POD_TEMPLATE_KINDS:
                yield d, d["spec"]["template"]["spec"]
            elif d.get("kind") == "CronJob":
                yield d, d["spec"]["jobTemplate"]["spec"]["template"]["spec"]

    def containers(self):
        """(object, pod spec, container, is_init) for every container."""
        for obj, pod in self.workloads():
            for c in pod.get("initContainers") or []:
                yield obj, pod, c, True
            for c in pod.get("containers") or []:
                yield obj, pod, c, False


def ident(obj: dict, container: dict | None = None) -> str:
    s = f"{obj['kind']}/{obj['metadata']['name']}"
    return f"{s} container {container['name']}" if container else s


# ---------------------------------------------------------------- rules


def rule_resources(r: Rendering):
    for obj, _, c, _ in r.containers():
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in (res.get(kind) or {}):
                    yield Violation("resources", ident(obj, c), f"no {kind}.{resource}")


def rule_security_context(r: Rendering):
    for obj, pod, c, _ in r.containers():
        psc = pod.get("securityContext") or {}
        sc = c.get("securityContext") or {}
        where = ident(obj, c)
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            yield Violation("security-context", where, "runAsNonRoot is not true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            yield Violation("security-context", where, "runAsUser is 0 (root)")
        if sc.get("allowPrivilegeEscalation") is not False:
            yield Violation("security-context", where, "allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            yield Violation("security-context", where, "readOnlyRootFilesystem is not true")
        if sc.get("privileged"):
            yield Violation("security-context", where, "privileged")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            yield Violation("security-context", where, "capabilities.drop does not contain ALL")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            yield Violation("security-context", where, "no RuntimeDefault seccompProfile")


def rule_probes(r: Rendering):
    for obj, _, c, is_init in r.containers():
        if is_init or obj["kind"] not in LONG_RUNNING_KINDS:
            continue
        for probe in ("readinessProbe", "livenessProbe"):
            if not c.get(probe):
                yield Violation("probes", ident(obj, c), f"no {probe}")
        named = {p.get("name") for p in c.get("ports") or []}
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            action = (c.get(probe) or {}).get("httpGet") or (c.get(probe) or {}).get("tcpSocket")
            if action and isinstance(action.get("port"), str) and action["port"] not in named:
                yield Violation("probes", ident(obj, c), f"{probe} uses undeclared port {action['port']!r}")


def rule_images_pinned(r: Rendering):
    for obj, _, c, _ in r.containers():
        image = c.get("image", "")
        if "@sha256:" in image:
            continue
        last = image.rsplit("/", 1)[-1]
        tag = last.split(":", 1)[1] if ":" in last else None
        if not tag:
            yield Violation("images-pinned", ident(obj, c), f"image {image!r} has no tag or digest")
        elif tag == "latest":
            yield Violation("images-pinned", ident(obj, c), f"image {image!r} uses :latest")


def container_env(r: Rendering, container: dict) -> dict[str, str]:
    """A container's environment as Kubernetes would build it (literal
    values and ConfigMap-sourced ones; Secret-sourced ones are left out)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef")
        cm = r.get("ConfigMap", ref["name"]) if ref else None
        if cm:
            env.update({k: str(v) for k, v in (cm.get("data") or {}).items()})
    for e in container.get("env") or []:
        if "value" in e:
            env[e["name"]] = str(e["value"])
        elif (ref := (e.get("valueFrom") or {}).get("configMapKeyRef")):
            cm = r.get("ConfigMap", ref["name"])
            if cm and ref["key"] in (cm.get("data") or {}):
                env[e["name"]] = str(cm["data"][ref["key"]])
    return env


def setting(env: dict[str, str], section: str, key: str) -> tuple[float | None, str]:
    """A numeric setting as the services resolve it (crates/core configuration.rs):
    APP_<SECTION>__<KEY> overrides config/{APP_ENVIRONMENT}.yaml, which overrides
    config/base.yaml."""
    var = f"APP_{section.upper()}__{key.upper()}"
    if var in env:
        return float(env[var]), var
    environment = env.get("APP_ENVIRONMENT", "local")
    for name in (f"{environment}.yaml", "base.yaml"):
        path = REPO / "config" / name
        if path.is_file():
            value = ((yaml.safe_load(path.read_text()) or {}).get(section) or {}).get(key)
            if value is not None:
                return float(value), f"config/{name} {section}.{key}"
    return None, "nowhere"


def rule_worker(r: Rendering):
    dep = r.get("Deployment", WORKER)
    if dep is None:
        yield Violation("worker", f"Deployment/{WORKER}", "missing")
        return
    pod = dep["spec"]["template"]["spec"]
    c = next((c for c in pod["containers"] if c["name"] == WORKER_CONTAINER), None)
    if c is None:
        yield Violation("worker", ident(dep), f"no container named {WORKER_CONTAINER!r}")
        return
    where = ident(dep, c)
    res = c.get("resources") or {}
    for kind in ("requests", "limits"):
        if int((res.get(kind) or {}).get("nvidia.com/gpu", 0)) < 1:
            yield Violation("worker", where, f"{kind} has no nvidia.com/gpu")
    if not any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations") or []):
        yield Violation("worker", ident(dep), "no toleration for the nvidia.com/gpu taint")
    ready = ((c.get("readinessProbe") or {}).get("httpGet") or {}).get("path")
    if ready != "/readyz":
        yield Violation("worker", where, f"readinessProbe is {ready!r}, not /readyz (model loaded)")
    start = c.get("startupProbe") or {}
    budget = start.get("periodSeconds", 10) * start.get("failureThreshold", 3)
    if budget < 300:
        yield Violation("worker", where, f"startupProbe allows {budget}s for model loading, want >= 300s")
    if not ((c.get("lifecycle") or {}).get("preStop")):
        yield Violation("worker", where, "no preStop hook to stop consuming")
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts") or []}
    model_dir = container_env(r, c).get("APP_WORKER__MODEL_DIR")
    if not model_dir or model_dir not in mounts or not mounts[model_dir].get("readOnly"):
        yield Violation("worker", where, f"model dir {model_dir!r} is not a read-only mount")
    if "/tmp" not in mounts:
        yield Violation("worker", where, "no writable /tmp (the root filesystem is read-only)")


def rule_worker_grace(r: Rendering):
    dep = r.get("Deployment", WORKER)
    if dep is None:
        return  # reported by rule_worker
    pod = dep["spec"]["template"]["spec"]
    c = next((c for c in pod["containers"] if c["name"] == WORKER_CONTAINER), None)
    if c is None:
        return
    where = ident(dep, c)
    seconds, source = setting(container_env(r, c), "worker", "max_batch_seconds")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if seconds is None:
        yield Violation("worker-grace", where, "APP_WORKER__MAX_BATCH_SECONDS is set nowhere "
                        "(manifests or config/*.yaml): cannot check the grace period")
    elif grace < seconds + GRACE_MARGIN_SECONDS:
        yield Violation("worker-grace", ident(dep), f"terminationGracePeriodSeconds {grace} does not exceed "
                        f"max batch seconds {seconds:g} (from {source}) + {GRACE_MARGIN_SECONDS}s margin: "
                        "scale-down would kill batches in flight")


def rule_drain(r: Rendering):
    """/drain takes only POST with the drain token: the preStop hook must be the
    worker's own `drain` command (an httpGet hook sends GET without credentials),
    the token must come from a Secret, and the drain deadline must act through the
    liveness probe on /healthz."""
    dep = r.get("Deployment", WORKER)
    if dep is None:
        return  # reported by rule_worker
    c = next((c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == WORKER_CONTAINER), None)
    if c is None:
        return
    where = ident(dep, c)
    pre_stop = (c.get("lifecycle") or {}).get("preStop") or {}
    command = (pre_stop.get("exec") or {}).get("command") or []
    if pre_stop.get("httpGet"):
        yield Violation("drain", where, "preStop is an httpGet: /drain refuses GET and requests without the token")
    elif not (command and command[0].endswith("easel-worker") and command[1:] == ["drain"]):
        yield Violation("drain", where, f"preStop does not run `easel-worker drain` (it runs {command!r})")
    token = next((e for e in c.get("env") or [] if e["name"] == "APP_WORKER__DRAIN_TOKEN"), None)
    if token is None or not (token.get("valueFrom") or {}).get("secretKeyRef"):
        yield Violation("drain", where, "APP_WORKER__DRAIN_TOKEN does not come from a Secret: /drain would refuse "
                        "every request, the preStop hook included")
    seconds, _ = setting(container_env(r, c), "worker", "drain_deadline_seconds")
    if not seconds or seconds < 1:
        yield Violation("drain", where, "worker.drain_deadline_seconds is set nowhere (manifests or config/*.yaml)")
    liveness = ((c.get("livenessProbe") or {}).get("httpGet") or {}).get("path")
    if liveness != "/healthz":
        yield Violation("drain", where, f"livenessProbe is {liveness!r}, not /healthz: a drained worker that never "
                        "gets SIGTERM would idle for ever")


def generated_name(r: Rendering, name: str) -> str:
    """A Secret's name as written, without the hash suffix a secretGenerator (dev) adds."""
    if r.get("Secret", name) is not None and re.fullmatch(r".+-[a-z0-9]{10}", name):
        return name[:-11]
    return name


def rule_secret_scope(r: Rendering):
    """Each of Easel's containers reads only the Secrets SECRETS_BY_CONTAINER lists for it."""
    refs: dict[tuple[str, str], set[str]] = {}
    for obj, _, c, _ in r.containers():
        key = (f"{obj['kind']}/{obj['metadata']['name']}", c["name"])
        names = refs.setdefault(key, set())
        for e in c.get("env") or []:
            if (ref := (e.get("valueFrom") or {}).get("secretKeyRef")):
                names.add(ref["name"])
        names.update(s["secretRef"]["name"] for s in c.get("envFrom") or [] if s.get("secretRef"))
    for obj, pod in r.workloads():
        for v in pod.get("volumes") or []:
            if v.get("secret"):
                for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
                    if any(m["name"] == v["name"] for m in c.get("volumeMounts") or []):
                        refs[(f"{obj['kind']}/{obj['metadata']['name']}", c["name"])].add(v["secret"]["secretName"])
    for (workload, container), names in refs.items():
        names = {generated_name(r, n) for n in names}
        if not workload.split("/", 1)[1].startswith("easel-"):
            continue  # dev's Postgres, RabbitMQ, SeaweedFS
        allowed = SECRETS_BY_CONTAINER.get((workload, container))
        where = f"{workload} container {container}"
        if allowed is None:
            if names:
                yield Violation("secret-scope", where, f"reads Secrets {sorted(names)} but has no entry in "
                                "SECRETS_BY_CONTAINER (check_invariants.py)")
        elif names - allowed:
            yield Violation("secret-scope", where, f"reads {sorted(names - allowed)}, beyond its own "
                            f"{sorted(allowed)}")
    api = r.get("Deployment", "easel-api")
    for c in (api or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
        for e in c.get("env") or []:
            if e["name"].startswith("APP_RABBITMQ__URL"):
                yield Violation("secret-scope", ident(api, c), f"the api gets {e['name']}: it never reaches the broker")


def _peers(rule: dict):
    """(namespace name or None, pod matchLabels or None, problem or None) per `from` peer."""
    for peer in rule.get("from") or []:
        if "ipBlock" in peer:
            yield None, None, "an ipBlock peer"
            continue
        ns = peer.get("namespaceSelector")
        pod = peer.get("podSelector")
        if ns is None:
            yield None, None, "a peer without namespaceSelector (any pod of the namespace)"
            continue
        if set(ns) - {"matchLabels"} or set(ns.get("matchLabels") or {}) != {"kubernetes.io/metadata.name"}:
            yield None, None, f"namespaceSelector {ns} does not name one namespace"
            continue
        if pod is not None and set(pod) - {"matchLabels"}:
            yield None, None, f"podSelector {pod} is not matchLabels only"
            continue
        yield ns["matchLabels"]["kubernetes.io/metadata.name"], (pod or {}).get("matchLabels") or None, None


def rule_network_policies(r: Rendering):
    """Every service is behind an Ingress NetworkPolicy whose every rule names its
    peers (an empty `from` admits everyone) and port, and the peers are those
    ALLOWED_PEERS gives it: the ingress controller and Prometheus for ingest and
    api, Prometheus alone for the worker."""
    policies = [p for p in r.of_kind("NetworkPolicy") if "Ingress" in (p["spec"].get("policyTypes") or [])]
    for name, allowed in ALLOWED_PEERS.items():
        dep = r.get("Deployment", name)
        if dep is None:
            continue
        labels = dep["spec"]["template"]["metadata"].get("labels") or {}
        selecting = [p for p in policies
                     if (p["spec"]["podSelector"].get("matchLabels") or {}).items() <= labels.items()]
        if not selecting:
            yield Violation("network-policies", ident(dep), "no Ingress NetworkPolicy selects its pods")
        ports = {str(p.get("containerPort")) for c in dep["spec"]["template"]["spec"]["containers"]
                 for p in c.get("ports") or []}
        for policy in selecting:
            for i, rule in enumerate(policy["spec"].get("ingress") or []):
                where = f"{ident(policy)} ingress[{i}]"
                if not rule.get("from"):
                    yield Violation("network-policies", where, "no `from`: admits every pod and address")
                if not rule.get("ports"):
                    yield Violation("network-policies", where, "no `ports`: admits every port")
                for port in rule.get("ports") or []:
                    if str(port.get("port")) not in ports:
                        yield Violation("network-policies", where, f"port {port.get('port')} is not one {name} serves")
                for namespace, pod, problem in _peers(rule):
                    if problem:
                        yield Violation("network-policies", where, problem)
                    elif not any(namespace == ns and (want is None or pod == want) for ns, want in allowed):
                        yield Violation("network-policies", where, f"admits {pod or 'every pod'} of namespace "
                                        f"{namespace!r}; {name} admits only {allowed}")


def rule_http_grace(r: Rendering):
    """ingest and api get SIGTERM, then application.shutdown_grace_seconds to finish
    requests in flight: the pod's grace period must cover it."""
    for name in ("easel-ingest", "easel-api"):
        dep = r.get("Deployment", name)
        if dep is None:
            yield Violation("http-grace", f"Deployment/{name}", "missing")
            continue
        pod = dep["spec"]["template"]["spec"]
        seconds, source = setting(container_env(r, pod["containers"][0]), "application", "shutdown_grace_seconds")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if seconds is None:
            yield Violation("http-grace", ident(dep), "application.shutdown_grace_seconds is set nowhere "
                            "(manifests or config/*.yaml): cannot check the grace period")
        elif grace <= seconds:
            yield Violation("http-grace", ident(dep), f"terminationGracePeriodSeconds {grace} does not exceed "
                            f"shutdown grace {seconds:g}s (from {source}): requests in flight would be cut")


def rule_no_literal_secrets(r: Rendering):
    if r.profile != "production":
        return
    for s in r.of_kind("Secret"):
        if s.get("data") or s.get("stringData"):
            yield Violation("no-literal-secrets", ident(s),
                            "production holds a Secret with literal data; create it out of band and reference it")
    for obj, _, c, _ in r.containers():
        for e in c.get("env") or []:
            if "value" in e and CREDENTIAL_ENV.search(e["name"]) and str(e["value"]).strip():
                yield Violation("no-literal-secrets", ident(obj, c), f"env {e['name']} is a literal")


def secret_refs(r: Rendering):
    """(where, secret name, key or None) for every reference to a Secret."""
    for obj, pod, c, _ in r.containers():
        for e in c.get("env") or []:
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                yield ident(obj, c), ref["name"], ref["key"]
        for source in c.get("envFrom") or []:
            if source.get("secretRef"):
                yield ident(obj, c), source["secretRef"]["name"], None
    for obj, pod in r.workloads():
        for v in pod.get("volumes") or []:
            if v.get("secret"):
                yield ident(obj), v["secret"]["secretName"], None
    for ta in r.of_kind("TriggerAuthentication", KEDA_GROUP):
        for ref in ta["spec"].get("secretTargetRef") or []:
            yield ident(ta), ref["name"], ref["key"]


def rule_references(r: Rendering):
    """ConfigMaps resolve inside the rendering; Secrets resolve inside it (dev)
    or are among the documented external ones, with documented keys (production)."""
    for obj, _, c, _ in r.containers():
        refs = [e["valueFrom"]["configMapKeyRef"] for e in c.get("env") or []
                if (e.get("valueFrom") or {}).get("configMapKeyRef")]
        refs += [s["configMapRef"] for s in c.get("envFrom") or [] if s.get("configMapRef")]
        for ref in refs:
            cm = r.get("ConfigMap", ref["name"])
            if cm is None:
                yield Violation("references", ident(obj, c), f"ConfigMap {ref['name']!r} is not in the rendering")
            elif "key" in ref and ref["key"] not in (cm.get("data") or {}):
                yield Violation("references", ident(obj, c), f"ConfigMap {ref['name']!r} has no key {ref['key']!r}")
    for where, name, key in secret_refs(r):
        if r.profile == "production":
            if name not in EXTERNAL_SECRETS:
                yield Violation("references", where, f"Secret {name!r} is not one of the documented "
                                f"external Secrets {sorted(EXTERNAL_SECRETS)}")
            elif key is not None and key not in EXTERNAL_SECRETS[name]:
                yield Violation("references", where, f"Secret {name!r} key {key!r} is not documented")
        else:
            secret = r.get("Secret", name)
            if secret is None:
                yield Violation("references", where, f"Secret {name!r} is not in the rendering")
            elif key is not None and key not in {**(secret.get("data") or {}), **(secret.get("stringData") or {})}:
                yield Violation("references", where, f"Secret {name!r} has no key {key!r}")


def rule_autoscaling(r: Rendering):
    targets = {}
    for hpa in r.of_kind("HorizontalPodAutoscaler"):
        targets[hpa["spec"]["scaleTargetRef"]["name"]] = ident(hpa)
    for so in r.of_kind("ScaledObject", KEDA_GROUP):
        targets[so["spec"]["scaleTargetRef"]["name"]] = ident(so)
    for name, by in targets.items():
        dep = r.get("Deployment", name)
        if dep is None:
            yield Violation("autoscaling", by, f"targets Deployment {name!r}, which is not in the rendering")
        elif "replicas" in dep["spec"]:
            yield Violation("autoscaling", ident(dep), f"sets spec.replicas although {by} owns the count")
    if r.profile != "production":
        return
    for name in ("easel-ingest", "easel-api"):
        if not any(h["spec"]["scaleTargetRef"]["name"] == name and h["spec"]["minReplicas"] >= 2
                   for h in r.of_kind("HorizontalPodAutoscaler")):
            yield Violation("autoscaling", f"Deployment/{name}", "no HPA with minReplicas >= 2")
    so = next((s for s in r.of_kind("ScaledObject", KEDA_GROUP)
               if s["spec"]["scaleTargetRef"]["name"] == WORKER), None)
    if so is None:
        yield Violation("autoscaling", f"Deployment/{WORKER}", "no KEDA ScaledObject")
        return
    if so["spec"].get("minReplicaCount") != 0:
        yield Violation("autoscaling", ident(so), "minReplicaCount is not 0 (idle GPUs cost money)")
    triggers = [t for t in so["spec"]["triggers"] if t["type"] == "rabbitmq"]
    if not triggers:
        yield Violation("autoscaling", ident(so), "no rabbitmq trigger")
    for t in triggers:
        md = t.get("metadata") or {}
        # AMQP counts ready messages only: workers would be scaled away mid-batch
        # (kedacore/keda #638, #6719).
        if md.get("protocol") != "http":
            yield Violation("autoscaling", ident(so), "rabbitmq trigger is not protocol: http")
        if md.get("mode") != "QueueLength":
            yield Violation("autoscaling", ident(so), "rabbitmq trigger is not mode: QueueLength")
        if str(md.get("excludeUnacknowledged", "false")).lower() == "true":
            yield Violation("autoscaling", ident(so), "excludeUnacknowledged: true ignores jobs in flight")
        auth = (t.get("authenticationRef") or {}).get("name")
        if not auth or r.get("TriggerAuthentication", auth) is None:
            yield Violation("autoscaling", ident(so), f"authenticationRef {auth!r} is not in the rendering")


def rule_disruption(r: Rendering):
    if r.profile != "production":
        return
    covered = {p["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/name")
               for p in r.of_kind("PodDisruptionBudget")}
    for name in ("easel-ingest", "easel-api", WORKER):
        if name not in covered:
            yield Violation("disruption", f"Deployment/{name}", "no PodDisruptionBudget")
    for name in ("easel-ingest", "easel-api"):
        dep = r.get("Deployment", name)
        if dep is not None and not (dep["spec"]["template"]["spec"].get("affinity") or {}).get("podAntiAffinity"):
            yield Violation("disruption", ident(dep), "no podAntiAffinity")


DASHBOARD_METRICS = {"easel_jobs_total", "easel_batch_size", "easel_stage_seconds", "easel_queue_depth"}


def defined_metrics() -> set[str]:
    """easel_* names quoted in the Rust files that record metrics (they use the
    `metrics` crate: counter!/gauge!/histogram!, directly or through constants)."""
    found = set()
    for root in ("services", "crates/core"):
        for path in (REPO / root).rglob("*.rs"):
            text = path.read_text()
            if re.search(r"\b(counter|gauge|histogram)!|metrics::", text):
                found.update(re.findall(r'"(easel_[a-z0-9_]+)"', text))
    return found


def rule_dashboard(r: Rendering):
    cm = r.get("ConfigMap", "easel-grafana-dashboard")
    if cm is None:
        yield Violation("dashboard", "ConfigMap/easel-grafana-dashboard", "missing")
        return
    if (cm["metadata"].get("labels") or {}).get("grafana_dashboard") != "1":
        yield Violation("dashboard", ident(cm), "not labelled grafana_dashboard=1 for Grafana's sidecar")
    (name, text), = (cm.get("data") or {}).items()
    try:
        dash = json.loads(text)
    except json.JSONDecodeError as e:
        yield Violation("dashboard", ident(cm), f"{name} is not JSON: {e}")
        return
    exprs = [t["expr"] for p in dash.get("panels", []) for t in p.get("targets", [])]
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"\beasel_\w+", e)}
    for metric in DASHBOARD_METRICS - used:
        yield Violation("dashboard", ident(cm), f"no panel shows {metric}")
    if not any("DCGM_FI_DEV_GPU_UTIL" in e for e in exprs):
        yield Violation("dashboard", ident(cm), "no GPU utilisation panel (DCGM_FI_DEV_GPU_UTIL)")
    defined = defined_metrics()
    if defined:
        for metric in sorted(used - defined):
            yield Violation("dashboard", ident(cm), f"{metric} is not registered anywhere in services/ or crates/core/")


RULES = [
    rule_resources,
    rule_security_context,
    rule_probes,
    rule_images_pinned,
    rule_worker,
    rule_worker_grace,
    rule_drain,
    rule_http_grace,
    rule_no_literal_secrets,
    rule_references,
    rule_secret_scope,
    rule_network_policies,
    rule_autoscaling,
    rule_disruption,
    rule_dashboard,
]


def check(r: Rendering) -> dict[str, list[Violation]]:
    """Violations per rule name (an empty list: the rule passed)."""
    results = {}
    for rule in RULES:
        for v in rule(r):
            results.setdefault(v.rule, []).append(v)
        results.setdefault(rule.__name__.removeprefix("rule_").replace("_", "-"), [])
    return results


# ---------------------------------------------------------------- self-test


def _worker(docs):
    return next(d for d in docs if d.get("kind") == "Deployment" and d["metadata"]["name"] == WORKER)


def _worker_container(docs):
    return next(c for c in _worker(docs)["spec"]["template"]["spec"]["containers"] if c["name"] == WORKER_CONTAINER)


def _worker_config(docs):
    return next(d for d in docs if d.get("kind") == "ConfigMap" and "APP_WORKER__MAX_BATCH_SECONDS" in (d.get("data") or {}))


def _deployment(docs, name):
    return next(d for d in docs if d.get("kind") == "Deployment" and d["metadata"]["name"] == name)


def _policy(docs, name):
    return next(d for d in docs if d.get("kind") == "NetworkPolicy" and d["metadata"]["name"] == name)


def _pop(mapping, *keys):
    for k in keys[:-1]:
        mapping = mapping[k]
    mapping.pop(keys[-1])


# (description, rule that must catch it, mutation of the production rendering)
MUTATIONS = [
    ("a container without a memory limit", "resources",
     lambda d: _pop(_worker_container(d), "resources", "limits", "memory")),
    ("an init container without a cpu request", "resources",
     lambda d: _pop(_worker(d)["spec"]["template"]["spec"]["initContainers"][0], "resources", "requests", "cpu")),
    ("a container allowed to run as root", "security-context",
     lambda d: _worker_container(d)["securityContext"].update(runAsNonRoot=False)),
    ("a writable root filesystem", "security-context",
     lambda d: _worker_container(d)["securityContext"].update(readOnlyRootFilesystem=False)),
    ("privilege escalation allowed", "security-context",
     lambda d: _worker_container(d)["securityContext"].pop("allowPrivilegeEscalation")),
    ("no readiness probe", "probes",
     lambda d: _worker_container(d).pop("readinessProbe")),
    ("no liveness probe on ingest", "probes",
     lambda d: next(c for x in d if x.get("kind") == "Deployment" and x["metadata"]["name"] == "easel-ingest"
                    for c in x["spec"]["template"]["spec"]["containers"]).pop("livenessProbe")),
    ("the worker without a GPU", "worker",
     lambda d: [_worker_container(d)["resources"][k].pop("nvidia.com/gpu") for k in ("requests", "limits")]),
    ("readiness on /healthz instead of /readyz", "worker",
     lambda d: _worker_container(d)["readinessProbe"]["httpGet"].update(path="/healthz")),
    ("a grace period shorter than a batch", "worker-grace",
     lambda d: _worker(d)["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=60)),
    ("a max batch time longer than the grace period", "worker-grace",
     lambda d: _worker_config(d)["data"].update(APP_WORKER__MAX_BATCH_SECONDS="600")),
    ("an API grace period shorter than its HTTP shutdown grace", "http-grace",
     lambda d: next(x for x in d if x.get("kind") == "Deployment" and x["metadata"]["name"] == "easel-api")
     ["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=5)),
    ("a literal Secret in production", "no-literal-secrets",
     lambda d: d.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "easel-database"},
                         "stringData": {"url": "postgres://easel:hunter2@db/easel"}})),
    ("a literal database URL in production", "no-literal-secrets",
     lambda d: _worker_container(d)["env"].append({"name": "APP_DATABASE__URL", "value": "postgres://x:y@db/z"})),
    ("an image on :latest", "images-pinned",
     lambda d: _worker_container(d).update(image="registry.example.com/easel/worker:latest")),
    ("an image without a tag", "images-pinned",
     lambda d: _worker_container(d).update(image="registry.example.com/easel/worker")),
    ("the ScaledObject over AMQP", "autoscaling",
     lambda d: next(x for x in d if x.get("kind") == "ScaledObject")["spec"]["triggers"][0]["metadata"]
     .update(protocol="amqp")),
    ("the ScaledObject ignoring unacked messages", "autoscaling",
     lambda d: next(x for x in d if x.get("kind") == "ScaledObject")["spec"]["triggers"][0]["metadata"]
     .update(excludeUnacknowledged="true")),
    ("fixed replicas on an autoscaled Deployment", "autoscaling",
     lambda d: _worker(d)["spec"].update(replicas=2)),
    ("a reference to an undocumented Secret", "references",
     lambda d: _worker_container(d)["env"].append(
         {"name": "X", "valueFrom": {"secretKeyRef": {"name": "easel-other", "key": "x"}}})),
    ("a preStop httpGet on /drain (GET, no token)", "drain",
     lambda d: _worker_container(d)["lifecycle"].update(preStop={"httpGet": {"path": "/drain", "port": "http"}})),
    ("the worker without its drain token", "drain",
     lambda d: _worker_container(d).update(env=[e for e in _worker_container(d)["env"]
                                                if e["name"] != "APP_WORKER__DRAIN_TOKEN"])),
    ("the worker's liveness probe off /healthz", "drain",
     lambda d: _worker_container(d)["livenessProbe"].update(tcpSocket={"port": "http"}) or
     _worker_container(d)["livenessProbe"].pop("httpGet")),
    ("the api with ingest's S3 key, which may write", "secret-scope",
     lambda d: _deployment(d, "easel-api")["spec"]["template"]["spec"]["containers"][0]["env"].append(
         {"name": "APP_S3__SECRET_ACCESS_KEY",
          "valueFrom": {"secretKeyRef": {"name": "easel-s3-ingest", "key": "secret-access-key"}}})),
    ("the api on the owner's database role", "secret-scope",
     lambda d: _deployment(d, "easel-api")["spec"]["template"]["spec"]["containers"][0]["env"][1]
     ["valueFrom"]["secretKeyRef"].update(name="easel-database")),
    ("ingest with the worker's S3 key", "secret-scope",
     lambda d: [e["valueFrom"]["secretKeyRef"].update(name="easel-s3-worker")
                for e in _deployment(d, "easel-ingest")["spec"]["template"]["spec"]["containers"][0]["env"]
                if e["name"].startswith("APP_S3__")]),
    ("a worker policy rule without `from`", "network-policies",
     lambda d: _policy(d, "easel-worker")["spec"]["ingress"][0].pop("from")),
    ("the worker open to every pod of the monitoring namespace", "network-policies",
     lambda d: _policy(d, "easel-worker")["spec"]["ingress"][0]["from"][0].pop("podSelector")),
    ("the api open to another namespace", "network-policies",
     lambda d: _policy(d, "easel-api")["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
     .update({"kubernetes.io/metadata.name": "default"})),
    ("ingest without a NetworkPolicy", "network-policies",
     lambda d: d.remove(_policy(d, "easel-ingest"))),
    ("no PodDisruptionBudget for the worker", "disruption",
     lambda d: d.remove(next(x for x in d if x.get("kind") == "PodDisruptionBudget"
                             and x["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == WORKER))),
]


def self_test(production: Rendering) -> tuple[int, int]:
    passed = failed = 0
    for description, rule, mutate in MUTATIONS:
        docs = copy.deepcopy(production.docs)
        mutate(docs)
        caught = check(Rendering(production.name, production.profile, docs)).get(rule)
        if caught:
            passed += 1
            print(f"  ok    {description}: caught by [{rule}] ({caught[0].message})")
        else:
            failed += 1
            print(f"  MISSED {description}: rule [{rule}] reported nothing")
    return passed, failed


def main(argv: list[str]) -> int:
    run_self_test = "--self-test" in argv
    renderings = []
    for arg in (a for a in argv if a != "--self-test"):
        profile, _, path = arg.partition("=")
        if profile not in ("dev", "production") or not path:
            print(__doc__, file=sys.stderr)
            return 2
        renderings.append(Rendering(Path(path).stem, profile, list(yaml.safe_load_all(Path(path).read_text()))))
    if not renderings:
        print(__doc__, file=sys.stderr)
        return 2

    passed = failed = 0
    for r in renderings:
        print(f"{r.name} ({r.profile}):")
        for rule, violations in check(r).items():
            if violations:
                failed += 1
                print(f"  FAIL  {rule}")
                for v in violations:
                    print(f"        {v}")
            else:
                passed += 1
                print(f"  ok    {rule}")
    if not defined_metrics():
        print("note: no easel_* metric is registered in services/ or crates/core/ yet; "
              "the dashboard's metric names are not cross-checked")

    if run_self_test:
        production = next((r for r in renderings if r.profile == "production"), None)
        if production is None:
            print("--self-test needs a production rendering", file=sys.stderr)
            return 2
        if any(check(production).values()):
            print("self-test skipped: the production rendering itself fails")
            failed += 1
        else:
            print("self-test (each mutation of the production rendering must be caught):")
            p, f = self_test(production)
            passed += p
            failed += f

    print(f"k8s-invariants: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
