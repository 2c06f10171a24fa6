#!/usr/bin/env bash
# Runs `agent run` for the action with its inputs, passed as INPUT_* variables (never
# through `${{ }}` inside a script). `agent` itself writes the step's outputs
# (GITHUB_OUTPUT), the annotations and the job summary; this only turns the inputs
# into arguments. Its exit code is agent's: 0 verified, 1 not verified, 2 bad usage,
# 3 infrastructure.
#
#   INPUT_SPECS    spec files or globs (`**` allowed), separated by spaces or newlines
#   INPUT_LOCKED   true: verify from the locks only, no model call (default true)
#   INPUT_REFRESH_BASE  true: pull the base images again, re-check and repair
#                  (`--refresh-base`); it takes precedence over INPUT_LOCKED
#   INPUT_PUSH     repository to push verified images to (empty: no push)
#   INPUT_SIGN     true: sign attestations of pushed images
#   INPUT_SHARD    K/N: run only that shard of the specs
#   INPUT_CONFIG   agent.toml to use (empty: ./agent.toml when present)
#   INPUT_JUNIT    JUnit report path (empty: none)
#   INPUT_OUT      run directories' folder (default runs)
set -euo pipefail
shopt -s nullglob globstar

args=(run --out "${INPUT_OUT:-runs}")
if [ "${INPUT_REFRESH_BASE:-false}" = true ]; then
  # A refresh may repair with the model, which `--locked` forbids: the refresh wins.
  args+=(--refresh-base)
elif [ "${INPUT_LOCKED:-true}" = true ]; then
  args+=(--locked)
fi
if [ -n "${INPUT_PUSH:-}" ]; then args+=(--push "$INPUT_PUSH"); fi
if [ "${INPUT_SIGN:-false}" = true ]; then args+=(--sign); fi
if [ -n "${INPUT_SHARD:-}" ]; then args+=(--shard "$INPUT_SHARD"); fi
if [ -n "${INPUT_CONFIG:-}" ]; then args+=(--config "$INPUT_CONFIG"); fi
if [ -n "${INPUT_JUNIT:-}" ]; then args+=(--junit "$INPUT_JUNIT"); fi

# Split the input on whitespace without globbing, then glob each pattern alone, so a
# pattern that matches nothing is named.
set -f
# shellcheck disable=SC2206
patterns=(${INPUT_SPECS:?INPUT_SPECS: name the spec files or globs})
set +f
specs=()
for pattern in "${patterns[@]}"; do
  # shellcheck disable=SC2206
  matches=($pattern)
  if [ ${#matches[@]} -eq 0 ]; then
    echo "::error title=agent::no spec file matches \`$pattern\`" >&2
    exit 2
  fi
  specs+=("${matches[@]}")
done

# `agent` reads GITHUB_ACTIONS itself; outside GitHub (the tests) it may be unset.
exec "${AGENT_BIN:-agent}" "${args[@]}" "${specs[@]}"
