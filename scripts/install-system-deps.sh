#!/usr/bin/env bash
# Installs the Debian tools the test suite needs on a fresh machine:
# yamllint (chart lint), redis-server (dispatcher Redis store tests), buildah (image build test),
# gnupg (gpg verifies the client's commit signatures).
# Idempotent: skips what is already there, so `npm test` runs it first (the `pretest` script).
# When a tool is missing and cannot be installed here (not root and no passwordless sudo, no
# apt-get, or apt-get failed), it stops at once with one message naming the command to run,
# instead of letting dozens of tests fail one by one.
set -uo pipefail

# REDIS_SERVER points the tests at a redis-server elsewhere (test/support/redis.ts).
have() { command -v "$1" >/dev/null 2>&1; }
need=()
have yamllint || need+=(yamllint)
if [ -n "${REDIS_SERVER:-}" ]; then [ -x "$REDIS_SERVER" ] || need+=(redis-server); else have redis-server || [ -x /usr/bin/redis-server ] || need+=(redis-server); fi
have buildah || need+=(buildah)
have gpg || need+=(gnupg)
[ ${#need[@]} -eq 0 ] && exit 0

cmd="apt-get update && apt-get install -y --no-install-recommends ${need[*]}"
give_up() {
  echo "npm test needs the Debian package(s) ${need[*]}, which are not installed and $1." >&2
  echo "Install them, then run npm test again:  sudo sh -c '$cmd'" >&2
  exit 1
}

have apt-get || give_up "this machine has no apt-get"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  { have sudo && sudo -n true 2>/dev/null; } || give_up "this user can't install them (not root, no passwordless sudo)"
  SUDO="sudo -n"
fi
echo "installing Debian packages the tests need: ${need[*]}" >&2
log=$(mktemp)
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"; } >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  rm -f "$log"
  give_up "apt-get could not install them (its last lines are above)"
fi
rm -f "$log"
