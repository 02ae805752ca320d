#!/usr/bin/env bash
# Install kubernetes-validate (PyPI, pinned; it ships the Kubernetes JSON schemas) into a
# virtualenv cached outside the repository and print the path of its command. Idempotent,
# like schemathesis.sh.
#
#   deploy/local/kubernetes-validate.sh                  # install if needed, print the path
#   deploy/local/kubernetes-validate.sh --if-installed   # print it only if installed, else exit 3
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

pip_tool kubernetes-validate "${KUBERNETES_VALIDATE_VERSION:-1.37.0}" kubernetes-validate "${1:-}"
