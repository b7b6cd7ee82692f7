#!/usr/bin/env bash
# `make test-repeat [N=10] [TEST_WORKERS=2] [REPEAT_TESTS=...] [PYTEST_ARGS=...]`: run the tests
# that start processes, use threads or measure time N times in a row (a test that fails 1 run in 10
# is broken), in TEST_WORKERS pytest-xdist processes with --dist loadgroup, the way `make test`
# runs them (0 = one process). Every run's output is kept: build/test-repeat/<start time>/run_<i>.log
# (and tmp_<i>/, the tests' files, when the run failed), and one tab-separated line per run in
# runs.tsv there (run, start, load average at start and end, seconds, result, counts, the failed
# tests). Exit status 1 when any run failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=${1:-10}
WORKERS=${TEST_WORKERS:-2}
TESTS=${REPEAT_TESTS:-"test/test_ros_*.py test/test_bag_play.py test/test_bag_recover.py
  test/test_bags_ros.py test/test_bags_v1.py test/test_node_service.py test/test_node_sync.py
  test/test_doctor_live.py test/test_demo.py test/test_bench_service.py
  test/test_sim_node_source.py test/test_train_kill.py test/test_train_ddp.py
  test/hostile/test_hostile_node.py"}
LOG=build/test-repeat/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$LOG"
XDIST=()
if [ "$WORKERS" != 0 ]; then XDIST=(-n "$WORKERS" --dist loadgroup); fi
printf 'run\tstart_utc\tload_start\tload_end\tseconds\tresult\tcounts\tfailed_tests\n' \
  > "$LOG/runs.tsv"
failed=0
echo "test-repeat: $N runs, ${WORKERS} worker(s), of:" $TESTS "(not colcon); logs in $LOG/"
for i in $(seq 1 "$N"); do
  t0=$SECONDS
  start=$(date -u +%H:%M:%S)
  load=$(cut -d' ' -f1 /proc/loadavg)
  # shellcheck disable=SC2086  # TESTS is a list of globs
  if .venv/bin/python -m pytest $TESTS -q -ra -m "not colcon" -p no:cacheprovider "${XDIST[@]}" \
      --basetemp="$LOG/tmp_$i" --timeout="${TEST_TIMEOUT:-600}" ${PYTEST_ARGS:-} \
      > "$LOG/run_$i.log" 2>&1; then
    result=ok
    rm -rf "$LOG/tmp_$i"  # a failed run keeps its tests' files (node logs, bags) to look at
  else
    result=FAILED
    failed=$((failed + 1))
  fi
  counts=$(grep -E '(passed|failed|error)' "$LOG/run_$i.log" | tail -1 | tr -d '=' | xargs)
  tests=$(grep -E '^(FAILED|ERROR) ' "$LOG/run_$i.log" | cut -d' ' -f2 | paste -sd' ' -)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$i" "$start" "$load" \
    "$(cut -d' ' -f1 /proc/loadavg)" "$((SECONDS - t0))" "$result" "$counts" "${tests:--}" \
    >> "$LOG/runs.tsv"
  echo "run $i/$N: $result in $((SECONDS - t0)) s, load average $load at start: $counts" \
       "${tests:+($tests)}"
done
echo "test-repeat: $((N - failed)) of $N runs passed (table: $LOG/runs.tsv)"
exit $((failed > 0))
