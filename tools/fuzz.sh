#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 300), under limits that catch bombs
# (512 MB RSS, 5 s per input), seeded from fuzz/seeds/ (made from
# the fixtures), two at a time. Needs `cargo install cargo-fuzz`. Crashes land in
# fuzz/artifacts/<target>/; the growing corpus in fuzz/corpus/<target>/ (both ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
run() {
  local t=$1
  mkdir -p "fuzz/corpus/$t"
  cargo fuzz run --sanitizer none --release "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$secs" -max_len=262144 -rss_limit_mb=512 -timeout=5 -print_final_stats=1 \
    > "fuzz/$t.log" 2>&1 || echo "$t: exited $? (see fuzz/$t.log)"
  grep -E "stat::number_of_executed_units|Done [0-9]+ runs|SUMMARY|panicked" "fuzz/$t.log" | sed "s/^/$t: /" || true
}
run pickle_vm & run open_bytes & wait
run convert_bytes & run structured & wait
