#!/usr/bin/env bash
# Print the path of docker-compose, installing Debian's package when it is missing
# (without its recommended Docker engine: `docker-compose config` needs none).
#
#   deploy/local/docker-compose.sh                  # install if needed, print the path
#   deploy/local/docker-compose.sh --if-installed   # print it only if installed, else exit 3
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

if ! command -v docker-compose >/dev/null; then
	[[ "${1:-}" != "--if-installed" ]] || exit 3
	require_root
	apt_install --no-install-recommends docker-compose
fi
command -v docker-compose
