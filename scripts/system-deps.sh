#!/usr/bin/env bash
# Installs the Debian packages the test suite needs (real servers, real browsers), once.
# Called by `make test`; safe to run again. Without root it only reports what is missing.
set -euo pipefail

need=()
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)  # the page's browser test (Playwright drives it)
command -v ip >/dev/null 2>&1 || need+=(iproute2)        # the split test's network namespaces

if ((${#need[@]} == 0)); then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing Debian packages (${need[*]}) and not root; tests that need them will skip loudly" >&2
  exit 0
fi
echo "system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
