#!/bin/bash
# Phase split of kernel calls (encode / table sums / dequantise and store), and the
# cost of the output's write order, measured in C without Python.
#
#   bash benchmarks/phases/run.sh [ROUNDS] ["N D M C L" ...]
#
# Builds benchmarks/phases/phases.c three times against _ext/src/kernels_avx2.c and
# kernels_avx512.c, each with its variant's compiler flags: as shipped, with
# -DAM_PROFILE_ENCODE_ONLY and with -DAM_PROFILE_NO_STORE (the hooks of
# _ext/src/am_profile.h, which only this script sets), runs the builds interleaved
# ROUNDS times (each run: minimum of 3 calls), and prints the minimum and median over rounds of each, the phases as
# differences of the minimums, and the table sums' lookup rate. L is C (row-major x)
# or F (column-major). For row-major x the phases overlap with the read of x (and the
# encode-only build loses the row prefetches the table sums issue), so only the three
# times are shown there. FLAGS=1 computes row flags as the package does; AVX2=1 times
# the AVX2 table instead (then only AVX2 is needed; otherwise AVX-512). Needs gcc.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$here/../../_ext/src
rounds=${1:-9}
shift || true
configs=("$@")
if [ ${#configs[@]} -eq 0 ]; then
    configs=("100000 512 10 16 F" "100000 512 100 16 F" "100000 512 100 32 F"
             "10000 512 512 32 F" "8192 768 3072 64 F" "100000 512 100 16 C"
             "8192 768 3072 64 C")
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
base=(-O3 -fopenmp -ffp-contract=off -fno-math-errno -I"$src")
avx2=(-mavx2 -mfma -mbmi -mbmi2 -mf16c)
avx512=("${avx2[@]}" -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vbmi -mavx512vnni)
build() { # name, extra flags...
    local name=$1
    shift
    gcc "${base[@]}" "${avx2[@]}" "$@" -c "$src/kernels_avx2.c" -o "$out/$name-avx2.o"
    gcc "${base[@]}" "${avx512[@]}" "$@" -c "$src/kernels_avx512.c" -o "$out/$name-avx512.o"
    gcc "${base[@]}" "${avx2[@]}" "$here/phases.c" "$out/$name-avx2.o" "$out/$name-avx512.o" \
        -o "$out/$name" -lm
}
build full
build encode -DAM_PROFILE_ENCODE_ONLY
build sums -DAM_PROFILE_NO_STORE
gcc -O2 -mavx2 "$here/write_order.c" -o "$out/write_order"

echo "phases, 1 thread, ms (min / median of $rounds rounds); FLAGS=${FLAGS:-0} AVX2=${AVX2:-0}"
printf '%6s %4s %5s %3s %s | %15s %15s %15s | %7s %7s %7s %7s\n' N D M C L full encode-only \
    sums-only encode sums output "sum G/s"
for cfg in "${configs[@]}"; do
    for r in $(seq "$rounds"); do
        for b in full encode sums; do
            echo "$b $("$out/$b" $cfg 3 | awk '{print $2}')"
        done
    done | python3 "$here/summarise.py" $cfg
done
echo
echo "write order of an 8192 x 3072 float32 output, non-temporal stores (min of 9)"
"$out/write_order" 8192 3072 9
