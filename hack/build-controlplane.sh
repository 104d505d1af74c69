#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from Go modules into bin/k8s/ (the
# KUBEBUILDER_ASSETS directory envtest reads). Nothing is downloaded but Go
# modules. A binary already present at the pinned version is reused; a cold
# build takes about ten minutes on two cores.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${KUBEBUILDER_ASSETS:-$root/bin/k8s}
kube_version=v1.37.2
mkdir -p "$out"

ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${kube_version} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
stamp="$out/.version"
want="kube=${kube_version} etcd=$(awk '/go.etcd.io\/etcd\/server\/v3 /{print $2}' "$root/hack/tools/etcd/go.mod")"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$out/kube-apiserver" && -x "$out/etcd" && -x "$out/kubectl" ]]; then
  exit 0
fi

build() { # build <module dir> <package> <binary name>
  local start=$SECONDS
  echo ">> building $3 from $2 (first build only; this takes a few minutes)" >&2
  (cd "$root/hack/tools/$1" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$3" "$2")
  echo ">> built $out/$3 in $((SECONDS - start)) s" >&2
}

# Progress dots so a long cold build never looks hung.
( while sleep 30; do echo ">> still building control-plane binaries ($(date +%T))" >&2; done ) &
ticker=$!
trap 'kill $ticker 2>/dev/null || true' EXIT

build etcd go.etcd.io/etcd/server/v3 etcd
build kube k8s.io/kubernetes/cmd/kube-apiserver kube-apiserver
build kube k8s.io/kubernetes/cmd/kubectl kubectl
echo "$want" > "$stamp"
echo ">> control-plane binaries ready in $out" >&2
