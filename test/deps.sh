#!/bin/bash
# test/deps.sh: install what building and testing anomaly needs on Debian 12.
#
#   sudo bash test/deps.sh          install the missing packages (apt-get)
#   bash test/deps.sh --check       only report what is missing (exit 1 if any)
#
# Only Debian's own archive is used.  apt-get update runs only when something
# has to be installed, so a machine that has everything is left untouched.
set -euo pipefail

PACKAGES=(
	build-essential             # make, gcc
	postgresql-15               # the server (initdb, pg_ctl, pg_dump, pg_regress's psql)
	postgresql-server-dev-15    # PGXS, server headers, pg_regress, PostgreSQL::Test::Cluster
	libopenblas-dev             # dense arithmetic (sgemm/sgemv)
	libipc-run-perl             # TAP tests (PostgreSQL::Test::Cluster needs IPC::Run)
	postgresql-15-cron          # TAP test of scheduled detection with pg_cron
	python3                     # benchmark and evaluation scripts
	python3-psycopg2
	python3-numpy
	python3-sklearn             # reference metrics and peer detectors in the benchmarks
	python3-torch               # TAP test 060_torch_interop: PyTorch models to and from safetensors
	clang                       # the fuzz harness of the safetensors parser (test/fuzz/run.sh)
	libclang-rt-14-dev          # libFuzzer and the sanitizers' runtime for clang 14
)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps.sh: all ${#PACKAGES[@]} packages are installed"
	exit 0
fi

if [ "${1:-}" = "--check" ]; then
	echo "deps.sh: missing: ${missing[*]}" >&2
	exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing: ${missing[*]}" >&2
	echo "deps.sh: run as root to install them: sudo bash test/deps.sh" >&2
	exit 1
fi

echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "deps.sh: done"
