#!/usr/bin/env bash
# One lease's evidence on the GPU of this host (docs/probe.md): memtax-probe's single-GPU suites
# with the device's own memory count per case, PyTorch's SDPA timings, and the memory harness at
# shapes no earlier run used (batch 3; 2k, 8k and 16k tokens). Every file records its lease (the
# machine's boot id), so a check can tell another lease from a second run of the same one.
#   bash scripts/lease-evidence.sh OUT_DIR
# Writes OUT_DIR/probe-<gpu>.json, probe.log, nvidia-smi.txt, sdpa_time.json, hf_memory.json and
# lease.log. A step that fails is logged and the others still run.
set -uo pipefail
out=${1:?usage: lease-evidence.sh OUT_DIR}
mkdir -p "$out"
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
log="$out/lease.log"
echo "lease $(cat /proc/sys/kernel/random/boot_id 2>/dev/null) on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" | tee "$log"
bash scripts/probe-device.sh "$out" --suites stream,gemm,attention-eager,attention-flash,decode-paged,mlp >/dev/null 2>>"$log" ||
  echo "probe: exit $?" | tee -a "$log"
grep -E "^check|probe cases|FAILED|failed" "$out/probe.log" | tail -20 | tee -a "$log"
PYTHONUNBUFFERED=1 timeout 240 python3 kernels/torch/measure_sdpa_time.py "$out" --name sdpa_time.json >>"$log" 2>&1 ||
  echo "sdpa_time: exit $?" | tee -a "$log"
PYTHONUNBUFFERED=1 timeout 300 python3 kernels/torch/measure_hf_memory.py "$out" --warmup --contexts 2048,8192,16384 --batches 1,3 \
  --name hf_memory.json >>"$log" 2>&1 || echo "hf_memory: exit $?" | tee -a "$log"
ls -la "$out" | tee -a "$log"
# The harness writes its configs beside the file; keep them in one archive (the files that come
# back from a lease are few).
(cd "$out" && ls ./*.config.json >/dev/null 2>&1 && tar czf configs.tgz ./*.config.json && rm -f ./*.config.json)
