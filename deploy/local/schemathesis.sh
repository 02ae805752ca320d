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

pip_tool schemathesis "${SCHEMATHESIS_VERSION:-4.32.5}" schemathesis "${1:-}"
