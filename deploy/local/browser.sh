#!/usr/bin/env bash
# Install what the web UI's browser tests need (services/simpleci/e2e/ui_test.go) and print
# the node_modules directory holding playwright-core: Debian's Chromium (/usr/bin/chromium;
# no browser is downloaded) and playwright-core, pinned in deploy/local/browser/package.json
# and package-lock.json, installed with `npm ci` into a cache outside the repository.
# Idempotent: what is already installed is reused without touching the network.
#
#   deploy/local/browser.sh                  # install if needed, print NODE_PATH
#   deploy/local/browser.sh --if-installed   # print it only if all is installed, else exit 3
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

SRC="$(cd "$(dirname "$0")/browser" && pwd)"
# The cache is keyed by the lock file, so a new pin installs afresh.
KEY="$(sha256sum "$SRC/package-lock.json" | cut -c1-16)"
DIR="$SIMPLECI_CACHE_DIR/playwright-$KEY"
CHROMIUM=/usr/bin/chromium

# The marker is written last, so an interrupted install is redone, not reused.
if [[ -x "$CHROMIUM" && -f "$DIR/.installed" ]]; then
	echo "$DIR/node_modules"
	exit 0
fi
[[ "${1:-}" != "--if-installed" ]] || exit 3
if [[ ! -x "$CHROMIUM" ]]; then
	require_root
	apt_install chromium
fi
command -v npm >/dev/null || die "npm is needed to install playwright-core (Debian: apt-get install npm)"
if [[ ! -f "$DIR/.installed" ]]; then
	log "installing playwright-core into $DIR"
	rm -rf "$DIR"
	mkdir -p "$DIR"
	cp "$SRC/package.json" "$SRC/package-lock.json" "$DIR/"
	# No browser download: the tests drive Debian's Chromium.
	(cd "$DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2) ||
		die "npm ci of playwright-core failed"
	touch "$DIR/.installed"
fi
echo "$DIR/node_modules"
