#!/usr/bin/env bash
# Install schemathesis (PyPI, pinned) into a virtualenv cached outside the repository and
# print the path of its `schemathesis` command. Idempotent: a venv that already holds the
# pinned version is reused without touching the network.
#
#   deploy/local/schemathesis.sh            # install if needed, print the command's path
#   deploy/local/schemathesis.sh --if-installed   # print it only if installed, else exit 3
#   "$(deploy/local/schemathesis.sh)" run --checks all http://127.0.0.1:8080/openapi.json
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
VENV="$SIMPLECI_CACHE_DIR/schemathesis-$VERSION"
BIN="$VENV/bin/schemathesis"

# The marker is written last, so an interrupted install is redone, not reused.
if [[ -x "$BIN" && -f "$VENV/.installed" ]]; then
	echo "$BIN"
	exit 0
fi
[[ "${1:-}" != "--if-installed" ]] || exit 3
PY="$(command -v python3 || true)"
[[ -n "$PY" ]] || die "python3 is needed to install schemathesis"
log "installing schemathesis $VERSION into $VENV"
rm -rf "$VENV"
mkdir -p "$SIMPLECI_CACHE_DIR"
"$PY" -m venv "$VENV" >&2 || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION" >&2 ||
	die "pip install schemathesis==$VERSION failed"
"$BIN" --version >&2
touch "$VENV/.installed"
echo "$BIN"
