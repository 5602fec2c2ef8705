#!/bin/bash
# test/asan.sh: the regression suite against an AddressSanitizer build.
#
#   sudo bash test/asan.sh
#
# Builds the extension with -fsanitize=address,undefined (plus
# float-cast-overflow, which "undefined" leaves out in gcc) into a private
# copy of PostgreSQL in a scratch directory (the system's PostgreSQL is never
# touched), starts a cluster whose server runs with gcc's ASan runtime
# preloaded (the server itself is not instrumented; the extension is), runs
# the pg_regress suite against it, and fails if the sanitizers reported
# anything or a server process crashed.
#
# ASan checks every access the extension's code makes to the stack, to
# globals and to memory malloc() gave out directly (PostgreSQL hands out
# allocations above 8 kB that way), and catches use of freed malloc blocks.
# Small palloc() chunks share blocks, so an overflow inside a block is not
# seen.  Leak detection is off: memory contexts free at exit, which ASan
# would report as leaks (test/t/050_memory.pl watches memory instead).
#
# Environment: as test/check.sh (PG_CONFIG, SKIP_DEPS, KEEP_SCRATCH); after a
# failure the scratch directory, with the server's log, is kept.
# ASAN_TAP=1 also runs the TAP tests with the runtime preloaded (about 7
# minutes; ASAN_PROVE_TESTS="test/t/004_concurrent_retrain.pl ..." picks some).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SAN_FLAGS="-fsanitize=address -fsanitize=undefined -fsanitize=float-cast-overflow -fno-omit-frame-pointer -fno-common"
STAGE="setup"
RESULT="not run"

finish() {
	local rc=$?

	cleanup "$rc" || true
	echo
	if [ "$rc" -eq 0 ]; then
		echo "asan.sh: PASS — $RESULT"
	else
		echo "asan.sh: FAIL at $STAGE — $RESULT"
	fi
	exit "$rc"
}
trap finish EXIT

STAGE="packages"
install_deps

LIBASAN=$(gcc -print-file-name=libasan.so)
if [ ! -e "$LIBASAN" ]; then
	echo "gcc's libasan.so was not found (package libasan8, installed with gcc)" >&2
	exit 1
fi
LIBASAN=$(readlink -f "$LIBASAN")

# A private copy of PostgreSQL, laid out like the system's, so that
# "make install" writes only under the scratch directory.
STAGE="PostgreSQL copy"
make_scratch asan
SYS_PG_CONFIG=$PG_CONFIG
PGROOT="$SCRATCH/pg"
pg_libdir=$(dirname "$("$SYS_PG_CONFIG" --bindir)")	# /usr/lib/postgresql/15
pg_sharedir=$("$SYS_PG_CONFIG" --sharedir)			# /usr/share/postgresql/15
pg_includedir=$("$SYS_PG_CONFIG" --includedir)		# /usr/include/postgresql
log "copying PostgreSQL into $PGROOT"
for d in "$pg_libdir" "$pg_sharedir" "$pg_includedir"; do
	mkdir -p "$PGROOT$(dirname "$d")"
	cp -a "$d" "$PGROOT$(dirname "$d")/"
done
PG_CONFIG="$PGROOT$pg_libdir/bin/pg_config"
if [ "$("$PG_CONFIG" --pkglibdir)" != "$PGROOT$("$SYS_PG_CONFIG" --pkglibdir)" ]; then
	echo "the copy of PostgreSQL is not relocatable: $PG_CONFIG --pkglibdir says $("$PG_CONFIG" --pkglibdir)" >&2
	exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
	chown -R "$RUN_USER" "$PGROOT"
fi

STAGE="build"
copy_tree
log "building with $SAN_FLAGS"
as_user make -C "$SCRATCH/src" -s PG_CONFIG="$PG_CONFIG" clean
as_user make -C "$SCRATCH/src" -s -j"$(nproc)" PG_CONFIG="$PG_CONFIG" COPT="$SAN_FLAGS"
as_user make -C "$SCRATCH/src" -s PG_CONFIG="$PG_CONFIG" install
if ! ldd "$("$PG_CONFIG" --pkglibdir)/anomaly.so" | grep libasan >/dev/null; then
	echo "anomaly.so is not linked with libasan" >&2
	exit 1
fi

# The server (and every backend it forks) runs with the ASan runtime
# preloaded, followed by test/asan_preload.c (without it the server hangs at
# start: see that file).  Reports go to the server's log.
STAGE="cluster"
gcc -shared -fPIC -O2 -o "$SCRATCH/asan_preload.so" "$ROOT_DIR/test/asan_preload.c"
chmod a+r "$SCRATCH/asan_preload.so"
SAN_ENV=(
	LD_PRELOAD="$LIBASAN $SCRATCH/asan_preload.so"
	ASAN_OPTIONS="detect_leaks=0"
	UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=0"
)
PG_BINDIR=$("$PG_CONFIG" --bindir)
PGPORT_CHOSEN=$(free_port)
log "starting a cluster with $LIBASAN preloaded on port $PGPORT_CHOSEN"
as_user "$PG_BINDIR/initdb" -D "$SCRATCH/data" -A trust -E UTF8 --locale=C --no-sync \
	>"$SCRATCH/initdb.log" 2>&1 || { cat "$SCRATCH/initdb.log"; exit 1; }
as_user env "${SAN_ENV[@]}" timeout 300 "$PG_BINDIR/pg_ctl" -D "$SCRATCH/data" -l "$SCRATCH/server.log" -w \
	-o "-p $PGPORT_CHOSEN -k $SCRATCH/sock -c listen_addresses=''" start >/dev/null \
	|| { cat "$SCRATCH/server.log"; exit 1; }
PG_STARTED=1
export PGHOST="$SCRATCH/sock" PGPORT="$PGPORT_CHOSEN"
# the runtime is really in the server (and so in the backends it forks)
if ! grep -q libasan "/proc/$(head -1 "$SCRATCH/data/postmaster.pid")/maps" 2>/dev/null; then
	echo "the server has no ASan runtime loaded" >&2
	exit 1
fi

failed=0
STAGE="regression tests"
log "make installcheck: regression tests under ASan"
if ! as_user env PGHOST="$PGHOST" PGPORT="$PGPORT" \
	make --no-print-directory -C "$SCRATCH/src" PG_CONFIG="$PG_CONFIG" installcheck TAP_TESTS= 2>&1 | tee "$SCRATCH/regress.out"; then
	failed=1
	[ -f "$SCRATCH/src/regression.diffs" ] && cat "$SCRATCH/src/regression.diffs"
fi
RESULT="regression: $(grep -E 'tests? (passed|failed)' "$SCRATCH/regress.out" | sed 's/^[ =]*//; s/[ =.]*$//' | tail -1 || true)"

if [ "${ASAN_TAP:-0}" = 1 ]; then
	STAGE="TAP tests"
	log "TAP tests with the ASan runtime preloaded"
	if ! as_user env -u PGHOST -u PGPORT "${SAN_ENV[@]}" \
		make --no-print-directory -C "$SCRATCH/src" PG_CONFIG="$PG_CONFIG" installcheck REGRESS= \
		${ASAN_PROVE_TESTS:+PROVE_TESTS="$ASAN_PROVE_TESTS"} 2>&1 | tee "$SCRATCH/tap.out"; then
		failed=1
	fi
	RESULT="$RESULT; TAP: $(sed -n 's/^Result: //p' "$SCRATCH/tap.out" | tail -1)"
fi

STAGE="sanitizer reports"
as_user "$PG_BINDIR/pg_ctl" -D "$SCRATCH/data" -m fast -w stop >/dev/null || true
PG_STARTED=0
# The server's stderr (server.log) holds the reports: ASan stops the backend
# at its first error, which then shows as a crashed server process; UBSan
# reports every "runtime error" and goes on.
san_re='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:'
crash_re='server process .* (was terminated by signal|exited with exit code)'
# With ASAN_TAP=1 the TAP tests' own servers log under tmp_check/log (their
# crashes are the tests' business: 005_timeout_crash kills a backend).
reports=$(cat "$SCRATCH/server.log" "$SCRATCH"/src/tmp_check/log/*.log 2>/dev/null | grep -cE "$san_re" || true)
crashes=$(grep -cE "$crash_re" "$SCRATCH/server.log" || true)
if [ "$reports" -gt 0 ] || [ "$crashes" -gt 0 ]; then
	failed=1
	echo "----- sanitizer reports and crashes -----"
	grep -E -A 25 "$san_re|$crash_re" "$SCRATCH/server.log" "$SCRATCH"/src/tmp_check/log/*.log 2>/dev/null | head -n 300
	echo "----- end of reports -----"
fi
RESULT="$RESULT; sanitizer reports: $reports; crashed server processes: $crashes"

STAGE="tests"
[ "$failed" -eq 0 ]
