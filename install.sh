#!/usr/bin/env bash
# Installs broker from this clone: dependencies, build, binary into $PREFIX/bin.
# Needs only Node.js (20+), npm and the npm registry. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
PREFIX="${PREFIX:-$HOME/.local}"

for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "install.sh: $tool is required (Node.js 20 or newer)" >&2; exit 1; }
done

echo "==> installing dependencies (npm ci)"
npm ci --no-audit --no-fund --loglevel=error
echo "==> building dist/broker"
npm run --silent build >/dev/null
install -d -m 0755 "$PREFIX/bin"
install -m 0755 dist/broker "$PREFIX/bin/broker"
echo "==> installed broker $("$PREFIX/bin/broker" --version) to $PREFIX/bin/broker"
case ":$PATH:" in
  *":$PREFIX/bin:"*) ;;
  *) echo "    note: $PREFIX/bin is not on your PATH; add it, e.g. export PATH=\"$PREFIX/bin:\$PATH\"" ;;
esac
