#!/usr/bin/env bash
# Builds memtax-probe with several depths of the decode-paged split kernel's page pipeline
# (MEMTAX_DECODE_STAGES, pages per CTA in shared memory) and runs the stream and decode-paged
# suites with each, on this host's GPU.
#   bash scripts/decode-tune.sh OUT_DIR "4 6"
# Writes OUT_DIR/probe-STAGES.json and OUT_DIR/tune.txt (decode-paged K+V bandwidth per case as a
# share of the stream copy's).
set -euo pipefail
out=${1:?usage: decode-tune.sh OUT_DIR "STAGES ..."}
variants=${2:-"4"}
mkdir -p "$out"
here=$(cd "$(dirname "$0")/.." && pwd)
for v in $variants; do
  # a variant is STAGES or STAGES:FLAG=VALUE (another -D for the probe, e.g. 4:MEMTAX_DECODE_PDL=0)
  flags="-DMEMTAX_DECODE_STAGES=${v%%:*}"
  [[ $v == *:* ]] && flags="$flags -D${v#*:}"
  cmake -S "$here/kernels" -B "/tmp/memtax-probe-tune-$v" -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_FLAGS="$flags" >/dev/null &
done
wait
for v in $variants; do cmake --build "/tmp/memtax-probe-tune-$v" -j "$(nproc)" >/dev/null & done
wait
for v in $variants; do
  "/tmp/memtax-probe-tune-$v/memtax-probe" --suites stream,decode-paged --output "$out/probe-$v.json" >"$out/probe-$v.log" 2>&1 ||
    echo "variant $v: exit $?" | tee -a "$out/tune.txt"
done
python3 - "$out" $variants <<'PY' | tee -a "$out/tune.txt"
import json, sys
out, variants = sys.argv[1], sys.argv[2:]
for v in variants:
    try: d = json.load(open(f"{out}/probe-{v}.json"))
    except Exception as e: print(v, "no result:", e); continue
    copy = max(2 * c["params"]["bytes"] / c["measured"]["time_s"] for c in d["cases"]
               if c["kind"] == "stream" and c["params"]["op"] == "copy" and c["status"] == "ok")
    print(f"== {v}: stream copy {copy/1e12:.3f} TB/s; checks:",
          ", ".join(f"{c['rel_error']:.1e}" for c in d["checks"] if c["suite"] == "decode-paged"))
    for c in d["cases"]:
        if c["kind"] != "decode-paged" or c["status"] != "ok": continue
        p, m = c["params"], c["measured"]
        kv = 2 * p["batch"] * p["context"] * p["kv_heads"] * p["head_dim"] * 2
        st = {k["name"]: k["time_s"] for k in m.get("kernels", [])}
        print(f"{c['id']:32s} tps {p['tokens_per_split']:5d} total {m['time_s']*1e6:9.1f} us split {st.get('split',0)*1e6:9.1f} "
              f"combine {st.get('combine',0)*1e6:6.1f}  {100*kv/m['time_s']/copy:5.1f}% of copy")
PY
