#!/usr/bin/env bash
# Installs what the runner's sandbox uses when it is missing (Debian packages):
# bubblewrap, and slirp4netns for jobs with the network on. `make test` and `make bench`
# call it; a machine that has both stays offline.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
need=()
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v slirp4netns >/dev/null || need+=(slirp4netns)
if [[ ${#need[@]} -gt 0 ]]; then
	require_root
	apt_install "${need[@]}"
fi
