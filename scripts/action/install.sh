#!/usr/bin/env bash
# Installs a released `agent` binary for the action: downloads
# `agent-<target>.tar.gz` and its `.sha256` from the release, refuses the tarball
# unless `sha256sum -c` accepts it, and puts `agent` in AGENT_INSTALL_DIR (kept by
# actions/cache between jobs). Without a release for this machine it compiles the
# action's own sources with `cargo install`, unless AGENT_COMPILE_FALLBACK is false.
# A checksum that does not match is never a reason to compile: it is an error.
#
# Environment (the action passes its inputs this way, never through `${{ }}`):
#   AGENT_VERSION         release tag (v0.1.0) or `latest`
#   AGENT_DOWNLOAD_URL    releases base URL, e.g. https://github.com/OWNER/REPO/releases
#                         (empty: the action's own repository's)
#   AGENT_ACTION_REPOSITORY  OWNER/REPO of the action, when the runner tells it
#   AGENT_INSTALL_DIR     where `agent` goes (default: $HOME/.agent/bin)
#   AGENT_COMPILE_FALLBACK  true (default) or false
#   AGENT_SOURCE_DIR      the sources to compile (default: the action's checkout)
# Writes the folder to GITHUB_PATH and `path=` to GITHUB_OUTPUT when they are set.
set -euo pipefail

version=${AGENT_VERSION:-latest}
install_dir=${AGENT_INSTALL_DIR:-$HOME/.agent/bin}
source_dir=${AGENT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}

# Without a download URL, the releases of the repository the action was taken from:
# github.action_repository, which some runners leave empty in composite actions,
# else the checkout's place (`.../_actions/<owner>/<repo>/<ref>`).
base=${AGENT_DOWNLOAD_URL:-}
if [ -z "$base" ]; then
  repository=${AGENT_ACTION_REPOSITORY:-}
  if [ -z "$repository" ]; then
    case "$source_dir" in
      */_actions/*/*/*)
        rest=${source_dir#*/_actions/}
        owner=${rest%%/*}
        rest=${rest#*/}
        repository="$owner/${rest%%/*}"
        ;;
      *)
        echo "::error title=agent install::cannot tell which repository's releases to use; set the download-url input" >&2
        exit 1
        ;;
    esac
  fi
  base="${GITHUB_SERVER_URL:-https://github.com}/$repository/releases"
fi
base=${base%/}

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) target=x86_64-unknown-linux-gnu ;;
  Linux-aarch64 | Linux-arm64) target=aarch64-unknown-linux-gnu ;;
  Darwin-arm64) target=aarch64-apple-darwin ;;
  Darwin-x86_64) target=x86_64-apple-darwin ;;
  *) target=unknown ;;
esac
asset="agent-$target.tar.gz"
if [ "$version" = latest ]; then
  url="$base/latest/download"
else
  url="$base/download/$version"
fi

publish() {
  if [ -n "${GITHUB_PATH:-}" ]; then echo "$install_dir" >>"$GITHUB_PATH"; fi
  if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "path=$install_dir/agent" >>"$GITHUB_OUTPUT"; fi
  echo "agent: $("$install_dir/agent" --version) in $install_dir"
}

# A binary restored by actions/cache (keyed by version) is used as it is.
if [ -x "$install_dir/agent" ] && "$install_dir/agent" --version >/dev/null 2>&1; then
  echo "agent: using the cached binary"
  publish
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
download() {
  curl --fail --silent --show-error --location --retry 3 --max-time 300 \
    --output "$work/$1" "$url/$1"
}

if [ "$target" != unknown ] && download "$asset" && download "$asset.sha256"; then
  # The checksum file names the tarball as the release built it; check that name.
  read -r expected _ <"$work/$asset.sha256"
  if ! printf '%s  %s\n' "$expected" "$asset" | (cd "$work" && sha256sum --check --strict --status); then
    echo "::error title=agent install::checksum of $asset does not match $asset.sha256 from $url; refusing to install it" >&2
    exit 1
  fi
  mkdir -p "$work/unpacked"
  tar -xzf "$work/$asset" -C "$work/unpacked" agent
  mkdir -p "$install_dir"
  install -m 0755 "$work/unpacked/agent" "$install_dir/agent"
  publish
  exit 0
fi

if [ "${AGENT_COMPILE_FALLBACK:-true}" != true ]; then
  echo "::error title=agent install::no release $asset at $url and compiling is off" >&2
  exit 1
fi
echo "::warning title=agent install::no release $asset at $url; compiling agent (several minutes)"
root=$(dirname "$install_dir")
cargo install --locked --path "$source_dir/crates/agent-cli" --root "$root"
if [ "$root/bin" != "$install_dir" ]; then
  mkdir -p "$install_dir"
  install -m 0755 "$root/bin/agent" "$install_dir/agent"
fi
publish
