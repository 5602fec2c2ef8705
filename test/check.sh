#!/bin/bash
# test/check.sh: the whole test suite, from a clean clone.
#
#   sudo bash test/check.sh
#
# Installs missing Debian packages, builds with warnings as errors, installs
# the extension, starts a scratch cluster as the postgres user and runs
# "make installcheck": the pg_regress tests (sql/*.sql against expected/*.out)
# twice (the second time with force_parallel_mode = regress) and the TAP
# tests (test/t/*.pl, each starting its own clusters with
# PostgreSQL::Test::Cluster); then the fuzz harness of the safetensors parser
# for FUZZ_SECONDS (default 30; 0 skips it) when clang can build it
# (test/fuzz/run.sh), and test/asan.sh runs the regression suite against an
# AddressSanitizer build.  The cluster is always stopped; the exit status
# is non-zero if anything failed, and the last line says what happened.
# Run as another user it uses that user and skips apt-get (see test/lib.sh).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STAGE="setup"
REGRESS_RESULT="not run"
TAP_RESULT="not run"
FUZZ_RESULT="not run"
ASAN_RESULT="not run"

finish() {
	local rc=$?

	cleanup "$rc" || true
	echo
	if [ "$rc" -eq 0 ]; then
		echo "check.sh: PASS — regression: $REGRESS_RESULT; TAP: $TAP_RESULT; fuzz: $FUZZ_RESULT; ASan: $ASAN_RESULT"
	else
		echo "check.sh: FAIL at $STAGE — regression: $REGRESS_RESULT; TAP: $TAP_RESULT; fuzz: $FUZZ_RESULT; ASan: $ASAN_RESULT"
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

# pg_regress: every sql/*.sql except the install script (REGRESS in the
# Makefile).  run_regress LABEL [PGOPTIONS] runs the suite once, with the
# given server options for every session, and prints the diffs of a failure.
run_regress() {
	local label=$1 opts=${2:-} out="$SCRATCH/regress-$1.out" result

	log "make installcheck: regression tests ($label)"
	if ! as_user env PGHOST="$PGHOST" PGPORT="$PGPORT" PGOPTIONS="$opts" \
		make --no-print-directory -C "$SRC" PG_CONFIG="$PG_CONFIG" installcheck TAP_TESTS= 2>&1 | tee "$out"; then
		failed=1
		if [ -f "$SRC/regression.diffs" ]; then
			echo "----- regression.diffs ($label) -----"
			cat "$SRC/regression.diffs"
			echo "----- end of regression.diffs -----"
		fi
	fi
	result=$(grep -E 'tests? (passed|failed)' "$out" | sed 's/^[ =]*//; s/[ =.]*$//' | tail -1 || true)
	REGRESS_RESULT="${REGRESS_RESULT:+$REGRESS_RESULT, }$label: ${result:-did not run to completion}"
}

STAGE="regression tests"
REGRESS_RESULT=""
run_regress serial
# The same suite again with every query that can run in parallel run in a
# parallel worker (the scoring functions are PARALLEL SAFE: a worker loads the
# model itself, with the query's snapshot).  One to three minutes, as every query
# starts a worker; SKIP_PARALLEL=1 skips it.
STAGE="regression tests (force_parallel_mode = regress)"
if [ "${SKIP_PARALLEL:-0}" != 1 ]; then
	run_regress parallel "-c force_parallel_mode=regress"
fi

# TAP: test/t/*.pl (PROVE_TESTS in the Makefile), run even if pg_regress failed.
STAGE="TAP tests"
log "make installcheck: TAP tests"
tap_count=$(ls "$SRC"/test/t/*.pl 2>/dev/null | wc -l)
if [ "$tap_count" -eq 0 ]; then
	TAP_RESULT="no TAP tests found"
	failed=1
elif as_user env -u PGHOST -u PGPORT PG_TEST_TIMEOUT_DEFAULT="${PG_TEST_TIMEOUT_DEFAULT:-600}" \
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

# The regression suite once more, against an AddressSanitizer and UBSan build
# in a private copy of PostgreSQL with its own cluster (test/asan.sh, about a
# minute).  SKIP_ASAN=1 skips it.
if [ "${SKIP_ASAN:-0}" = 1 ]; then
	ASAN_RESULT="skipped (SKIP_ASAN=1)"
else
	STAGE="AddressSanitizer"
	if ! SKIP_DEPS=1 bash "$ROOT_DIR/test/asan.sh" 2>&1 | tee "$SCRATCH/asan.out"; then
		failed=1
	fi
	ASAN_RESULT=$(sed -n 's/^asan.sh: //p' "$SCRATCH/asan.out" | tail -1)
	ASAN_RESULT=${ASAN_RESULT:-"did not run to completion"}
fi

STAGE="tests"
[ "$failed" -eq 0 ]
