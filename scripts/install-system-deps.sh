#!/usr/bin/env bash
# Installs the Debian tools the test suite needs on a fresh machine:
# yamllint (chart lint), redis-server (dispatcher Redis store tests), buildah (image build test).
# Idempotent: skips what is already there.
set -euo pipefail
need=()
command -v yamllint >/dev/null 2>&1 || need+=(yamllint)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v buildah >/dev/null 2>&1 || need+=(buildah)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
