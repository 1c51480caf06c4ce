#!/usr/bin/env bash
# Builds memtax-probe with the CUDA toolkit alone and runs it on this host's GPU.
#   bash scripts/probe-device.sh OUT_DIR [memtax-probe arguments...]
# Writes OUT_DIR/probe-<gpu>.json, OUT_DIR/probe.log and OUT_DIR/nvidia-smi.txt.
set -euo pipefail
out=${1:?usage: probe-device.sh OUT_DIR [probe args]}
shift
mkdir -p "$out"
here=$(cd "$(dirname "$0")/.." && pwd)
build=${MEMTAX_PROBE_BUILD:-/tmp/memtax-probe-build}
arch=${MEMTAX_CUDA_ARCH:-90}
# NCCL for the allreduce suite: the toolkit's own, else the nvidia-nccl wheel's if Python has it.
nccl_root=$(python3 -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null || true)
cmake -S "$here/kernels" -B "$build" -DCMAKE_CUDA_ARCHITECTURES="$arch" ${nccl_root:+-DMEMTAX_NCCL_ROOT=$nccl_root} >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,power.draw,temperature.gpu --format=csv >"$out/nvidia-smi.txt" 2>&1 || true
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr -cs 'A-Za-z0-9' '-' | tr 'A-Z' 'a-z' | sed 's/-$//')
set +e
"$build/memtax-probe" --output "$out/probe-${gpu:-gpu}.json" "$@" 2>&1 | tee "$out/probe.log"
rc=${PIPESTATUS[0]}
set -e
echo "memtax-probe exit code $rc"
exit "$rc"
