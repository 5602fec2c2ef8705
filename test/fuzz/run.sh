#!/bin/bash
# test/fuzz/run.sh [SECONDS]: build the libFuzzer harness of the safetensors
# parser and run it for a bounded time (default 60 s, or FUZZ_SECONDS).
#
# The harness (fuzz_safetensors.c) links src/safetensors.c alone, as a
# frontend program, against PostgreSQL's libpgcommon and libpgport, with
# AddressSanitizer and UndefinedBehaviorSanitizer.  It starts from the seed
# corpus in corpus/ (regenerate with make_seeds.py) copied to a scratch
# directory, so the repository is not modified.  Exit status: 0 when the run
# ends without a finding, 1 on a finding (the input that caused it is kept
# and named in the output), 77 when clang with libFuzzer is not available.
#
# Needs clang and its runtime (Debian: clang, libclang-rt-14-dev).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SECONDS_TO_RUN=${1:-${FUZZ_SECONDS:-60}}
CC=${FUZZ_CC:-clang}

if [ -z "${PG_CONFIG:-}" ]; then
	if [ -x /usr/lib/postgresql/15/bin/pg_config ]; then
		PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
	else
		PG_CONFIG=pg_config
	fi
fi

if ! command -v "$CC" >/dev/null 2>&1; then
	echo "fuzz: $CC not found; skipped (install clang and libclang-rt-14-dev)"
	exit 77
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/anomaly-fuzz.XXXXXX")
keep=0
cleanup() { [ "$keep" = 1 ] || rm -rf "$WORK"; }
trap cleanup EXIT

INC=$("$PG_CONFIG" --includedir-server)
LIB=$("$PG_CONFIG" --pkglibdir)
for a in libpgcommon.a libpgport.a; do
	if [ ! -f "$LIB/$a" ]; then
		# Debian keeps the static libraries beside the server's modules
		LIB=/usr/lib/postgresql/15/lib
	fi
done

echo "fuzz: building with $CC"
if ! "$CC" -g -O1 -Wall -Wno-ignored-attributes \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-DFRONTEND -I"$INC" -I"$ROOT/src" \
	"$HERE/fuzz_safetensors.c" "$ROOT/src/safetensors.c" \
	"$LIB/libpgcommon.a" "$LIB/libpgport.a" -lm \
	-o "$WORK/fuzz_safetensors" 2>"$WORK/build.log"; then
	if grep -q -e "fsanitize=fuzzer" -e "libclang_rt.fuzzer" -e "clang_rt" "$WORK/build.log"; then
		cat "$WORK/build.log"
		echo "fuzz: $CC cannot build libFuzzer programs; skipped (install libclang-rt-14-dev)"
		exit 77
	fi
	cat "$WORK/build.log"
	echo "fuzz: build failed"
	exit 1
fi

mkdir -p "$WORK/corpus" "$WORK/artifacts"
cp "$HERE"/corpus/* "$WORK/corpus/"
echo "fuzz: running for $SECONDS_TO_RUN s from $(ls "$HERE/corpus" | wc -l) seeds"
set +e
"$WORK/fuzz_safetensors" -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -timeout=10 \
	-rss_limit_mb=2048 -print_final_stats=1 -dict="$HERE/safetensors.dict" \
	-artifact_prefix="$WORK/artifacts/" "$WORK/corpus" >"$WORK/fuzz.log" 2>&1
rc=$?
set -e
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$WORK/fuzz.log" | tail -1)
units=$(sed -n 's/^stat::new_units_added: *//p' "$WORK/fuzz.log" | tail -1)
if [ "$rc" -ne 0 ] || ls "$WORK"/artifacts/* >/dev/null 2>&1; then
	keep=1
	tail -n 60 "$WORK/fuzz.log"
	echo "fuzz: FINDING after ${runs:-?} executions; inputs kept in $WORK/artifacts"
	exit 1
fi
echo "fuzz: no finding in ${runs:-?} executions (${units:-?} new corpus units, ${SECONDS_TO_RUN} s)"
