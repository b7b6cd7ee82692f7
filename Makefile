# VITA-Grasp developer commands. Every target that runs code first runs `setup` (fast when
# nothing changed). Nothing needs an activated venv.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY := .venv/bin/python
# Extra arguments: make demo ARGS="--image x.png"; make test PYTEST_ARGS="-k msgs -x"
ARGS ?=
PYTEST_ARGS ?=
# Per-test time limit [s] (pytest-timeout).
TEST_TIMEOUT ?= 600
# make test runs the test files in this many processes (pytest-xdist; 0 = one process)
TEST_WORKERS ?= 2
COLCON_WS ?= build/colcon_ws

# The ROS wheels' bootstrapper marks its re-exec in this variable; a value inherited from another
# venv's python would keep this venv's python from setting up its own library path.
unexport _ROS_WHEELS_BOOTSTRAP_COMPLETE

# make real CORNELL=DIR: the real-photograph experiment on another Cornell-layout copy.
CORNELL ?= ../shared/data/cornell

# The real `ros2 launch`/topic/param/lifecycle and vision_msgs (upstream sources, installed into the
# venv; the launch tests use them and skip where they are absent): make rostools ROS2_TOOLS=DIR.
ROS2_TOOLS ?= ../shared/ros2-tools

.PHONY: help setup rostools test test-repeat hostile lint demo bench real colcon clean distclean

help:  ## List the targets
	@echo "VITA-Grasp make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  \1\t/' | expand -t 14

setup:  ## Create/upgrade .venv: pinned packages, ROS 2 wheels, messages, pip install -e . (idempotent)
	@bash scripts/setup.sh

rostools: setup  ## Install ros2 launch/topic/param/lifecycle + vision_msgs from $(ROS2_TOOLS) into .venv (idempotent; skipped where absent)
	@if [ -f "$(ROS2_TOOLS)/install.sh" ]; then bash "$(ROS2_TOOLS)/install.sh" .venv; \
	else echo "rostools: $(ROS2_TOOLS)/install.sh not found: the launch tests will be skipped"; fi

test: setup rostools  ## Lint (ruff; the import contract, .importlinter) and run the test suite (PYTEST_ARGS=...)
	$(PY) -m ruff check .
	.venv/bin/lint-imports --no-cache
	$(PY) -m pytest test -q -ra -n $(TEST_WORKERS) --dist loadgroup --durations=15 --timeout=$(TEST_TIMEOUT) $(PYTEST_ARGS)

# make test-repeat N=10: runs of the process / timing tests (REPEAT_TESTS=... to choose them), in
# TEST_WORKERS processes like make test; logs and a table (runs.tsv) in build/test-repeat/<time>/.
N ?= 10

test-repeat: setup rostools  ## Run the tests that start processes or measure time N times (N=10) in a row
	@TEST_WORKERS=$(TEST_WORKERS) TEST_TIMEOUT=$(TEST_TIMEOUT) bash scripts/test_repeat.sh $(N)

hostile: setup  ## The whole fuzzing suite (test/hostile, every generated case; summary in outputs/hostile/)
	HOSTILE=long nice -n 10 $(PY) -m pytest test/hostile -q -ra --timeout=$(TEST_TIMEOUT) $(PYTEST_ARGS)

lint: setup  ## Only the linters: ruff check (make lint ARGS=--fix) and the import contract
	$(PY) -m ruff check . $(ARGS)
	.venv/bin/lint-imports --no-cache

demo: setup  ## Run the demo: scripts/demo.py $(ARGS)
	$(PY) scripts/demo.py $(ARGS)

bench: setup  ## Run the benchmarks: bench/run_all.py $(ARGS)
	$(PY) bench/run_all.py $(ARGS)

real: setup  ## Cornell 5-fold cross-validation (CORNELL=dir), regenerates docs/real_images.md
	$(PY) scripts/real_images.py --root $(CORNELL) $(ARGS)

colcon: setup  ## colcon build the ROS package into $(COLCON_WS) against the venv
	@bash scripts/setup.sh colcon $(COLCON_WS)

clean:  ## Remove build products (build/, caches); keeps .venv
	rm -rf build install log .pytest_cache *.egg-info
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean  ## clean, and remove .venv too
	rm -rf .venv
