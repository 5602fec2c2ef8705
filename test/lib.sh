# test/lib.sh: shared by test/check.sh and test/demo.sh (sourced, not run).
#
# Builds the extension from a private copy of the source tree, installs it
# into the PostgreSQL that PG_CONFIG names, and runs a throw-away cluster in a
# scratch directory:
#
#   - As root, the copy, the cluster and the tests belong to the "postgres"
#     user (CI's clone may sit in a directory postgres cannot read); only
#     "make install" runs as root.  Missing Debian packages are installed.
#   - As another user, everything runs as that user and apt is skipped; the
#     PostgreSQL that PG_CONFIG names must then be writable by that user.
#
# The cluster listens only on a Unix socket inside the scratch directory, on a
# port no other server uses, so it never disturbs a server already running.
#
# Environment: PG_CONFIG (default: PostgreSQL 15's pg_config), SKIP_DEPS=1 to
# skip the package step, KEEP_SCRATCH=1 to keep the scratch directory.

set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ -z "${PG_CONFIG:-}" ]; then
	if [ -x /usr/lib/postgresql/15/bin/pg_config ]; then
		PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
	else
		PG_CONFIG=pg_config
	fi
fi
export PG_CONFIG

if [ "$(id -u)" -eq 0 ]; then
	RUN_USER=postgres
else
	RUN_USER=$(id -un)
fi

SCRATCH=""
PG_BINDIR=""
PG_STARTED=0
PGPORT_CHOSEN=""

log() { echo "==> $*"; }

# Run a command as the test user (postgres when we are root).
as_user() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u "$RUN_USER" -- env PATH="$PATH" LANG=C.UTF-8 LC_ALL=C.UTF-8 "$@"
	else
		"$@"
	fi
}

# Install missing packages (root), or warn about them (other users).
install_deps() {
	if [ "${SKIP_DEPS:-0}" = 1 ]; then
		log "skipping package check (SKIP_DEPS=1)"
	elif [ "$(id -u)" -eq 0 ]; then
		log "checking packages"
		bash "$ROOT_DIR/test/deps.sh"
	else
		log "not root: skipping apt-get"
		bash "$ROOT_DIR/test/deps.sh" --check || log "warning: packages are missing; continuing"
	fi
}

# Create the scratch directory owned by the test user.
make_scratch() {
	local base=${TMPDIR:-/tmp}

	# as root, a TMPDIR under /root would be out of the postgres user's reach
	[ "$(id -u)" -ne 0 ] || base=/tmp
	SCRATCH=$(mktemp -d "$base/anomaly-$1.XXXXXX")
	mkdir -p "$SCRATCH/src" "$SCRATCH/sock"
	if [ "$(id -u)" -eq 0 ]; then
		chown -R "$RUN_USER" "$SCRATCH"
	fi
	log "scratch directory $SCRATCH (user $RUN_USER)"
}

# Copy the source tree (without git metadata or build results) into the scratch directory.
copy_tree() {
	tar -C "$ROOT_DIR" \
		--exclude=./.git --exclude='*.o' --exclude='*.bc' --exclude='*.so' \
		--exclude=./results --exclude=./tmp_check --exclude=./log \
		--exclude=./regression.diffs --exclude=./regression.out \
		-cf - . | tar -C "$SCRATCH/src" -xf -
	if [ "$(id -u)" -eq 0 ]; then
		chown -R "$RUN_USER" "$SCRATCH/src"
	fi
}

# Build (warnings are errors: see PG_CFLAGS in the Makefile) and install.
build_install() {
	log "building with $PG_CONFIG"
	as_user make -C "$SCRATCH/src" -s PG_CONFIG="$PG_CONFIG" clean
	as_user make -C "$SCRATCH/src" -s -j"$(nproc)" PG_CONFIG="$PG_CONFIG"
	log "installing into $("$PG_CONFIG" --pkglibdir)"
	if ! make -C "$SCRATCH/src" -s PG_CONFIG="$PG_CONFIG" install; then
		if [ "$(id -u)" -ne 0 ]; then
			echo "make install failed: run as root, or set PG_CONFIG to a PostgreSQL you can write to" >&2
		fi
		return 1
	fi
}

# A TCP port nothing listens on (the socket itself lives in our own directory).
free_port() {
	local p
	for p in $(seq 54330 54999); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# initdb + start a cluster in $SCRATCH/data on a free port, socket in $SCRATCH/sock.
start_cluster() {
	PG_BINDIR=$("$PG_CONFIG" --bindir)
	PGPORT_CHOSEN=$(free_port)
	log "starting a scratch cluster on port $PGPORT_CHOSEN (socket in $SCRATCH/sock)"
	as_user "$PG_BINDIR/initdb" -D "$SCRATCH/data" -A trust -E UTF8 --locale=C --no-sync \
		>"$SCRATCH/initdb.log" 2>&1 || { cat "$SCRATCH/initdb.log"; return 1; }
	as_user "$PG_BINDIR/pg_ctl" -D "$SCRATCH/data" -l "$SCRATCH/server.log" -w \
		-o "-p $PGPORT_CHOSEN -k $SCRATCH/sock -c listen_addresses=''" start >/dev/null \
		|| { cat "$SCRATCH/server.log"; return 1; }
	PG_STARTED=1
	export PGHOST="$SCRATCH/sock" PGPORT="$PGPORT_CHOSEN"
}

# Stop the cluster (if we started it) and remove the scratch directory
# unless asked to keep it or the run failed.  Used from an EXIT trap; the
# exit status may be passed as $1 by a trap handler that ran commands first.
cleanup() {
	local rc=${1:-$?}

	if [ "$PG_STARTED" = 1 ]; then
		as_user "$PG_BINDIR/pg_ctl" -D "$SCRATCH/data" -m fast -w stop >/dev/null 2>&1 || true
		PG_STARTED=0
	fi
	if [ -n "$SCRATCH" ] && [ -d "$SCRATCH" ]; then
		if [ "$rc" -eq 0 ] && [ "${KEEP_SCRATCH:-0}" != 1 ]; then
			rm -rf "$SCRATCH"
		else
			echo "scratch directory kept: $SCRATCH"
		fi
	fi
	return "$rc"
}

# psql against the scratch cluster as the test user.
scratch_psql() {
	as_user "$PG_BINDIR/psql" -X -v ON_ERROR_STOP=1 -h "$SCRATCH/sock" -p "$PGPORT_CHOSEN" "$@"
}
