# shellcheck shell=bash
# Helpers shared by the deploy/local scripts. Sourced, never run.
#
# Everything the scripts start lives outside the repository, under
# SIMPLECI_TEST_STATE_DIR (default /var/lib/simpleci-test); downloaded jars are cached
# under SIMPLECI_CACHE_DIR (default ~/.cache/simpleci).

SIMPLECI_TEST_STATE_DIR="${SIMPLECI_TEST_STATE_DIR:-/var/lib/simpleci-test}"
SIMPLECI_CACHE_DIR="${SIMPLECI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/simpleci}"

# log prints a progress message on stderr, so stdout stays machine-readable.
log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

# die prints an error on stderr and exits 1.
die() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

require_root() {
	[[ $(id -u) -eq 0 ]] || die "run me as root (I install Debian packages and start servers as dedicated users)"
}

# apt_install installs Debian packages; `apt-get update` runs once per script run, and only
# when something is missing, so a machine that has everything stays offline.
_apt_updated=0
apt_install() {
	if [[ $_apt_updated -eq 0 ]]; then
		log "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
		_apt_updated=1
	fi
	log "apt-get install -y $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 || die "apt-get install $* failed"
}

# port_open HOST PORT succeeds when something accepts TCP connections there.
port_open() {
	(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# now_s prints seconds since the epoch.
now_s() { date +%s; }
