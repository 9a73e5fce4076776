#!/usr/bin/env bash
# The GPU check of issue 11 on a real GPU machine (NVIDIA H200, Linux, Vulkan), in two steps:
#
#   scripts/gpu-check.sh pack   here, on the development machine: builds dist/ and packs what the GPU machine
#                               lacks into .gpu/ (git-ignored through .git/info/exclude): node, dist/, the
#                               production node_modules (webgpu's linux-x64 dawn.node only), the native addon
#                               and its BLAS/oneDNN/OpenMP libraries, and the Vulkan loader's .deb (libvulkan1).
#                               About 45 MB (xz); the device tool carries at most 64 MiB with the working tree.
#   scripts/gpu-check.sh [run]  there (the device tool: carry [".gpu"], command `bash scripts/gpu-check.sh`):
#                               unpacks .gpu/ under /tmp, installs the Vulkan loader if ldconfig has none, points
#                               Vulkan at NVIDIA's ICD if none is registered, sets WCT_GPU_BACKEND=default, then
#                               runs `wct env` (text and --json) and `npm run bench -- --device gpu`, writing
#                               everything under $OUT (7 files: the tool brings back at most 8).
#
# For a smoke test on a machine without a GPU: GPU_CHECK_BACKEND=opengles GPU_CHECK_NO_INSTALL=1 (installs
# nothing into /, benches llvmpipe).
#
# Budget: the run step finishes in under 8 minutes (env 2 x 2 min at most, the bench 6 min at most: each step
# is under `timeout`); on an H200 the bench itself should take about a minute. docs/GPU-NOTES.md section 5.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PACK="$ROOT/.gpu"

pack() {
  cd "$ROOT" || exit 1
  local exclude
  exclude="$(git rev-parse --git-common-dir)/info/exclude"
  grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >>"$exclude"
  echo "gpu-check pack: building dist/ (tsc; type errors elsewhere do not stop the emit)"
  npx tsc -p tsconfig.json >/dev/null 2>&1
  for f in dist/src/cli/wct.js dist/bench/run.js dist/bench/gpu.js build/Release/wct_native.node; do
    [ -f "$f" ] || { echo "gpu-check pack: $f is missing (npm ci, npm run build)" >&2; exit 1; }
  done
  local stage
  stage="$(mktemp -d)"
  mkdir -p "$stage/rt/lib" "$stage/rt/build/Release" "$stage/rt/bench/results" "$stage/rt/node_modules"
  cp "$(readlink -f "$(command -v node)")" "$stage/rt/node"
  cp -r dist package.json "$stage/rt/"
  cp build/Release/wct_native.node "$stage/rt/build/Release/"
  # the addon's libraries that are not the C/C++ runtime (a CUDA image has no OpenBLAS or oneDNN)
  ldd build/Release/wct_native.node | awk '/=> \//{print $3}' |
    grep -Ev '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s)\.so' |
    while read -r lib; do cp -L "$lib" "$stage/rt/lib/"; done
  # production dependencies only; webgpu without the other platforms' dawn.node
  npm ls --omit=dev --parseable --all 2>/dev/null | tail -n +2 | while read -r dir; do
    local rel="${dir#"$ROOT"/}"
    mkdir -p "$stage/rt/$(dirname "$rel")"
    if [ "$rel" = node_modules/webgpu ]; then
      mkdir -p "$stage/rt/$rel/dist"
      cp "$dir"/*.js "$dir"/*.json "$stage/rt/$rel/"
      cp -r "$dir/dist/linux-x64" "$stage/rt/$rel/dist/"
    else
      cp -r "$dir" "$stage/rt/$(dirname "$rel")/"
    fi
  done
  rm -rf "$PACK"
  mkdir -p "$PACK/debs"
  echo "gpu-check pack: compressing (xz, a minute or two)"
  tar -C "$stage/rt" -cf - . | xz -6 -T0 >"$PACK/runtime.tar.xz"
  rm -rf "$stage"
  # the Vulkan loader, as docs for the device machine describe (amd64 package lists of their own)
  local lists=/tmp/amd64-lists o
  mkdir -p "$lists/partial"
  o="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=$lists"
  # shellcheck disable=SC2086
  { apt-get $o update -qq && (cd "$PACK/debs" && apt-get $o download -qq libvulkan1); } ||
    echo "gpu-check pack: could not download libvulkan1 (the run step then needs it installed there)" >&2
  du -sh "$PACK" "$PACK"/* "$PACK"/debs/* 2>/dev/null
}

run() {
  local out="${OUT:-$ROOT/gpu-check-out}"
  mkdir -p "$out"
  local log="$out/check.log"
  : >"$log"
  say() { echo "gpu-check: $*" | tee -a "$log"; }
  [ -f "$PACK/runtime.tar.xz" ] || { say "no $PACK/runtime.tar.xz: run scripts/gpu-check.sh pack first and carry .gpu"; exit 1; }
  local rt=/tmp/wct-gpu-rt t0=$SECONDS
  rm -rf "$rt" && mkdir -p "$rt"
  tar -xJf "$PACK/runtime.tar.xz" -C "$rt" || { say "cannot unpack the runtime"; exit 1; }
  if [ -z "${GPU_CHECK_NO_INSTALL:-}" ] && ! ldconfig -p | grep -q 'libvulkan\.so\.1'; then
    say "no Vulkan loader: installing $(ls "$PACK"/debs/*.deb 2>/dev/null | xargs -n1 basename | tr '\n' ' ')"
    for f in "$PACK"/debs/*.deb; do [ -f "$f" ] && dpkg -x "$f" /; done
    ldconfig
  fi
  local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  if [ -z "${VK_DRIVER_FILES:-}" ] && ! ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1 &&
    [ -f "$icd" ]; then
    export VK_DRIVER_FILES="$icd"
    say "VK_DRIVER_FILES=$icd"
  fi
  export WCT_GPU_BACKEND="${GPU_CHECK_BACKEND:-default}"
  export LD_LIBRARY_PATH="$rt/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  say "unpacked in $((SECONDS - t0)) s; node $("$rt/node" --version)"
  (nvidia-smi 2>&1 || echo "no nvidia-smi") >"$out/nvidia-smi.txt"
  cd "$rt" || exit 1
  timeout 120 ./node dist/src/cli/wct.js env >"$out/env.txt" 2>&1
  say "wct env: exit $? ($((SECONDS - t0)) s)"
  timeout 120 ./node dist/src/cli/wct.js env --json >"$out/env.json" 2>>"$log"
  say "wct env --json: exit $? ($((SECONDS - t0)) s)"
  timeout 360 ./node dist/bench/run.js --device gpu >"$out/bench-gpu.md" 2>"$out/bench-gpu.log"
  say "bench --device gpu: exit $? ($((SECONDS - t0)) s)"
  cp bench/results/gpu.json "$out/bench-gpu.json" 2>/dev/null || say "no bench/results/gpu.json"
  say "done in $((SECONDS - t0)) s"
}

case "${1:-run}" in
  pack) pack ;;
  run) run ;;
  *) echo "usage: scripts/gpu-check.sh [pack|run]" >&2; exit 2 ;;
esac
