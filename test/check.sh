#!/bin/bash
# test/check.sh: the whole test suite, from a clean clone.
#
#   sudo bash test/check.sh
#
# Installs missing Debian packages, builds with warnings as errors, installs
# the extension, starts a scratch cluster as the postgres user and runs
# "make installcheck": the pg_regress tests (sql/*.sql against expected/*.out)
# and the TAP tests (test/t/*.pl, each starting its own clusters with
# PostgreSQL::Test::Cluster), then the fuzz harness of the safetensors parser
# for FUZZ_SECONDS (default 30; 0 skips it) when clang can build it
# (test/fuzz/run.sh).  The cluster is always stopped; the exit status
# is non-zero if anything failed, and the last line says what happened.
# Run as another user it uses that user and skips apt-get (see test/lib.sh).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STAGE="setup"
REGRESS_RESULT="not run"
TAP_RESULT="not run"
FUZZ_RESULT="not run"

finish() {
	local rc=$?

	cleanup "$rc" || true
	echo
	if [ "$rc" -eq 0 ]; then
		echo "check.sh: PASS — regression: $REGRESS_RESULT; TAP: $TAP_RESULT; fuzz: $FUZZ_RESULT"
	else
		echo "check.sh: FAIL at $STAGE — regression: $REGRESS_RESULT; TAP: $TAP_RESULT; fuzz: $FUZZ_RESULT"
	fi
	exit "$rc"
}
trap finish EXIT

STAGE="packages"
install_deps

STAGE="build"
make_scratch check
copy_tree
build_install

STAGE="cluster"
start_cluster

SRC="$SCRATCH/src"
failed=0

# pg_regress: every sql/*.sql except the install script (REGRESS in the Makefile).
STAGE="regression tests"
log "make installcheck: regression tests"
if ! as_user env PGHOST="$PGHOST" PGPORT="$PGPORT" \
	make --no-print-directory -C "$SRC" PG_CONFIG="$PG_CONFIG" installcheck TAP_TESTS= 2>&1 | tee "$SCRATCH/regress.out"; then
	failed=1
	if [ -f "$SRC/regression.diffs" ]; then
		echo "----- regression.diffs -----"
		cat "$SRC/regression.diffs"
		echo "----- end of regression.diffs -----"
	fi
fi
REGRESS_RESULT=$(grep -E 'tests? (passed|failed)' "$SCRATCH/regress.out" | sed 's/^[ =]*//; s/[ =.]*$//' | tail -1 || true)
REGRESS_RESULT=${REGRESS_RESULT:-"did not run to completion"}

# TAP: test/t/*.pl (PROVE_TESTS in the Makefile), run even if pg_regress failed.
STAGE="TAP tests"
log "make installcheck: TAP tests"
tap_count=$(ls "$SRC"/test/t/*.pl 2>/dev/null | wc -l)
if [ "$tap_count" -eq 0 ]; then
	TAP_RESULT="no TAP tests found"
	failed=1
elif as_user env -u PGHOST -u PGPORT \
	make --no-print-directory -C "$SRC" PG_CONFIG="$PG_CONFIG" installcheck REGRESS= 2>&1 | tee "$SCRATCH/tap.out"; then
	:
else
	failed=1
	# the log of each failed test file (prove's summary names them)
	for t in $(sed -n 's|^\(test/t/[^ ]*\.pl\) .*Wstat.*|\1|p' "$SCRATCH/tap.out"); do
		f="$SRC/tmp_check/log/regress_log_$(basename "$t" .pl)"
		[ -f "$f" ] || continue
		echo "----- last lines of $f -----"
		tail -n 60 "$f"
		echo "----- end of $(basename "$f") -----"
	done
fi
files=$(sed -n 's/^Files=\([0-9]*\), Tests=\([0-9]*\),.*/\1 files, \2 tests/p' "$SCRATCH/tap.out" 2>/dev/null | tail -1)
result=$(sed -n 's/^Result: //p' "$SCRATCH/tap.out" 2>/dev/null | tail -1)
TAP_RESULT="${files:-?} ${result:-did not run to completion}"
# prove must really have run every test/t/*.pl
ran=$(grep -cE '^test/t/[0-9]+_[A-Za-z0-9_]+\.pl \.' "$SCRATCH/tap.out" 2>/dev/null || true)
if [ "${ran:-0}" -ne "$tap_count" ]; then
	echo "check.sh: prove ran ${ran:-0} of $tap_count TAP test files"
	failed=1
fi

# Fuzz: the safetensors parser alone under libFuzzer for a bounded time; a
# finding fails the suite.  Skipped when clang cannot build it (run.sh exits 77).
STAGE="fuzz"
if [ "${FUZZ_SECONDS:-30}" = 0 ]; then
	FUZZ_RESULT="skipped (FUZZ_SECONDS=0)"
else
	log "fuzzing the safetensors parser for ${FUZZ_SECONDS:-30} s"
	set +e
	as_user env TMPDIR="$SCRATCH" PG_CONFIG="$PG_CONFIG" \
		bash "$SRC/test/fuzz/run.sh" "${FUZZ_SECONDS:-30}" 2>&1 | tee "$SCRATCH/fuzz.out"
	rc=${PIPESTATUS[0]}
	set -e
	case $rc in
		0) FUZZ_RESULT=$(tail -n 1 "$SCRATCH/fuzz.out" | sed 's/^fuzz: //') ;;
		77) FUZZ_RESULT="skipped (no clang with libFuzzer)" ;;
		*) FUZZ_RESULT="FAILED"; failed=1 ;;
	esac
fi

STAGE="tests"
[ "$failed" -eq 0 ]
