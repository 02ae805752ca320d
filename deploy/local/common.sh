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

# pip_tool PACKAGE VERSION COMMAND [--if-installed]: install the PyPI package PACKAGE==VERSION
# into a virtualenv cached under SIMPLECI_CACHE_DIR and print the path of its COMMAND.
# Idempotent: a venv that already holds the pinned version is reused without touching the
# network; with --if-installed a missing one exits 3 instead of being installed.
pip_tool() {
	local pkg="$1" version="$2" cmd="$3" mode="${4:-}"
	local venv="$SIMPLECI_CACHE_DIR/$pkg-$version"
	local bin="$venv/bin/$cmd"
	# The marker is written last, so an interrupted install is redone, not reused.
	if [[ -x "$bin" && -f "$venv/.installed" ]]; then
		echo "$bin"
		return 0
	fi
	[[ "$mode" != "--if-installed" ]] || exit 3
	local py
	py="$(command -v python3 || true)"
	[[ -n "$py" ]] || die "python3 is needed to install $pkg"
	log "installing $pkg $version into $venv"
	rm -rf "$venv"
	mkdir -p "$SIMPLECI_CACHE_DIR"
	"$py" -m venv "$venv" >&2 || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
	"$venv/bin/pip" install --quiet --disable-pip-version-check "$pkg==$version" >&2 ||
		die "pip install $pkg==$version failed"
	"$bin" --version >&2
	touch "$venv/.installed"
	echo "$bin"
}
