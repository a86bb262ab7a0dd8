#!/usr/bin/env bash
# Installs broker into $PREFIX/bin. Safe to run again.
#  - From an unpacked release (a prebuilt `broker` beside this script, no package.json):
#    needs no Node.js, npm or network; checks the binary against SHA256SUMS if present.
#  - From a clone: needs Node.js (20+), npm and the npm registry; builds dist/broker.
set -euo pipefail
cd "$(dirname "$0")"
PREFIX="${PREFIX:-$HOME/.local}"

if [ -f broker ] && [ ! -f package.json ]; then
  if [ -f SHA256SUMS ]; then
    command -v sha256sum >/dev/null || { echo "install.sh: sha256sum is required to check the binary against SHA256SUMS" >&2; exit 1; }
    # Only the binary's own line: the file may list others that are not here.
    line="$(grep -E '^[0-9a-f]{64}  broker$' SHA256SUMS || true)"
    [ -n "$line" ] || { echo "install.sh: SHA256SUMS does not list broker; refusing to install an unchecked binary" >&2; exit 1; }
    if ! printf '%s\n' "$line" | sha256sum -c --status -; then
      echo "install.sh: broker does not match its checksum in SHA256SUMS (damaged or altered download); refusing to install it" >&2
      echo "    download the release again and check it with: sha256sum -c --ignore-missing SHA256SUMS" >&2
      exit 1
    fi
    echo "==> broker matches SHA256SUMS"
  fi
  # A binary for another system fails here, before anything is copied.
  if ! ./broker --version >/dev/null 2>&1; then
    echo "install.sh: this broker does not run on this machine ($(uname -sm)); download the release for your system" >&2
    exit 1
  fi
  source="broker"
else
  for tool in node npm; do
    command -v "$tool" >/dev/null || { echo "install.sh: $tool is required to build from source (Node.js 20 or newer); or install a release archive instead" >&2; exit 1; }
  done
  echo "==> installing dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "==> building dist/broker"
  npm run --silent build >/dev/null
  source="dist/broker"
fi

install -d -m 0755 "$PREFIX/bin"
install -m 0755 "$source" "$PREFIX/bin/broker"
echo "==> installed broker $("$PREFIX/bin/broker" --version) to $PREFIX/bin/broker"
case ":$PATH:" in
  *":$PREFIX/bin:"*) ;;
  *) echo "    note: $PREFIX/bin is not on your PATH; add it, e.g. export PATH=\"$PREFIX/bin:\$PATH\"" ;;
esac
