#!/usr/bin/env bash
# `make test-repeat [N=10] [REPEAT_TESTS=...] [PYTEST_ARGS=...]`: run the tests that start
# processes or measure time N times in a row (a test that fails 1 run in 10 is broken). Each run's
# output goes to build/test-repeat/run_<i>.log; one line per run (result, time, load average) and
# a closing count. Exit status 1 when any run failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=${1:-10}
TESTS=${REPEAT_TESTS:-"test/test_ros_*.py test/test_bag_play.py test/test_bags_ros.py test/test_train_kill.py test/test_train_ddp.py"}
LOG=build/test-repeat
mkdir -p "$LOG"
failed=0
echo "test-repeat: $N runs of: $TESTS (not colcon); logs in $LOG/"
for i in $(seq 1 "$N"); do
  t0=$SECONDS
  load=$(cut -d' ' -f1 /proc/loadavg)
  # shellcheck disable=SC2086  # TESTS is a list of globs
  if .venv/bin/python -m pytest $TESTS -q -m "not colcon" -p no:cacheprovider \
      --timeout=600 ${PYTEST_ARGS:-} > "$LOG/run_$i.log" 2>&1; then
    result=ok
  else
    result=FAILED
    failed=$((failed + 1))
  fi
  echo "run $i/$N: $result in $((SECONDS - t0)) s, load average $load at start:" \
       "$(grep -E '(passed|failed|error)' "$LOG/run_$i.log" | tail -1)"
done
echo "test-repeat: $((N - failed)) of $N runs passed"
exit $((failed > 0))
