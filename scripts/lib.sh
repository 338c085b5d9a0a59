# Shared helpers for scripts/run and scripts/test: install what is missing, start local services.
# Sourced, not executed.

log() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
# apt_install PACKAGE... : installs the Debian packages that are not installed yet.
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  if [ "$APT_UPDATED" -eq 0 ]; then
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
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
    log "installing npm packages in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# What the recorder needs: GStreamer to build against (gstreamer-rs) and its plugins at run time
# (RTP depayloaders, jitter buffer, WebM/Matroska muxers, splitmuxsink, opusparse, h264parse).
GSTREAMER_PACKAGES=(pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)

build_web() {
  npm_install web
  log "building the web app"
  (cd web && npm run --silent build)
}
