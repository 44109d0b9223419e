#!/usr/bin/env bash
# Validates the Kubernetes manifests offline (`make k8s-validate`):
#   1. renders every overlay under deploy/k8s/overlays with `kubectl kustomize`;
#   2. validates each rendering against the Kubernetes API schemas with `kubernetes-validate --strict`
#      (installed into a virtualenv under ~/.cache on first use; it bundles the schemas);
#   3. lints it (deploy/k8s/lint.py): resources, probes, security settings, Vigil specifics (TLS,
#      authentication, what the probes reach), with a self-test proving each rule fires; checks the
#      cert-manager example (deploy/k8s/examples/cert-manager.yaml) against the renderings; and
#      checks the configuration files against the binaries in target/debug when they are built.
# No cluster is needed or contacted. Renderings are left in target/k8s/ for inspection.
#
# Environment: K8S_VERSION (default 1.31.0), the Kubernetes version to validate against;
# VIGIL_K8S_VENV, where kubernetes-validate is installed; VIGIL_BINARIES (default target/debug).
set -euo pipefail

# Everything below is relative to the repository root.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
k8s_version=${K8S_VERSION:-1.31.0}
# The release of kubernetes-validate used here; it bundles schemas for Kubernetes 1.25 to 1.37.
validator_release=1.37.0
venv=${VIGIL_K8S_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil/kubernetes-validate-$validator_release}
binaries=${VIGIL_BINARIES:-target/debug}
out=target/k8s

fail() {
  echo "k8s-validate: error: $*" >&2
  echo "k8s-validate: the manifests were NOT validated." >&2
  exit 1
}

# --- tools -----------------------------------------------------------------------------------------
if ! command -v kubectl >/dev/null 2>&1; then
  fail "kubectl not found on PATH. It renders the kustomize overlays (\`kubectl kustomize\`, offline);
install kubectl 1.27 or newer (https://kubernetes.io/docs/tasks/tools/) and run this again."
fi
command -v python3 >/dev/null 2>&1 || fail "python3 not found on PATH (the schema validator and the lint are Python)."

if [[ ! -x $venv/bin/kubernetes-validate ]]; then
  echo "k8s-validate: installing kubernetes-validate $validator_release into $venv"
  python3 -m venv "$venv" || fail "cannot create a virtualenv at $venv (is python3-venv installed?)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$validator_release" ||
    fail "cannot install kubernetes-validate $validator_release from PyPI into $venv"
fi
supported=$("$venv/bin/python" -c \
  'from kubernetes_validate.utils import all_versions; print(" ".join(dict.fromkeys(all_versions())))') ||
  fail "the kubernetes-validate in $venv does not run; delete that directory and try again"
wanted_minor=$(cut -d. -f1,2 <<<"$k8s_version")
if ! tr ' ' '\n' <<<"$supported" | cut -d. -f1,2 | grep -qxF "$wanted_minor"; then
  fail "kubernetes-validate $validator_release has no schemas for Kubernetes $k8s_version (it has: $supported)"
fi

echo "k8s-validate: $(kubectl version --client 2>/dev/null | paste -sd ' ' -)"
validator_version=$("$venv/bin/kubernetes-validate" --version)
echo "k8s-validate: kubernetes-validate $validator_version, schemas for Kubernetes $k8s_version (strict)"

# --- render and validate -----------------------------------------------------------------------------
mkdir -p "$out"
rendered=()
shopt -s nullglob
overlays=(deploy/k8s/overlays/*/kustomization.yaml)
((${#overlays[@]})) || fail "no overlays found under deploy/k8s/overlays"
for kustomization in "${overlays[@]}"; do
  overlay=$(dirname "$kustomization")
  name=$(basename "$overlay")
  file=$out/$name.yaml
  kubectl kustomize "$overlay" >"$file" || fail "kubectl kustomize $overlay failed"
  kinds=$(grep -E '^kind: ' "$file" | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $3; sep=", "}')
  echo "k8s-validate: rendered $overlay -> $file: $kinds"
  # --quiet prints failures and warnings only; any failure makes the exit status non-zero.
  if ! "$venv/bin/kubernetes-validate" --strict --quiet -k "$k8s_version" "$file"; then
    fail "$file does not validate against the Kubernetes $k8s_version schemas"
  fi
  echo "k8s-validate: $file: every object valid against the Kubernetes $k8s_version schemas"
  rendered+=("$file")
done

# --- lint ----------------------------------------------------------------------------------------------
lint_args=(--self-test)
[[ -d $binaries ]] && lint_args+=(--binaries "$binaries")
# Not an overlay (it needs cert-manager's CRDs, which kubernetes-validate has no schemas for): the lint
# checks that it issues the TLS Secrets the renderings mount, for the names their services dial.
certificates=deploy/k8s/examples/cert-manager.yaml
[[ -f $certificates ]] && lint_args+=(--certificates "$certificates")
python3 deploy/k8s/lint.py "${lint_args[@]}" "${rendered[@]}" || fail "the lint found problems (above)"

echo "k8s-validate: all overlays render, validate and pass the lint"
