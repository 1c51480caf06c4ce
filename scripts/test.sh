#!/usr/bin/env bash
# The whole test job (CI runs it through the README's test command):
#   1. the GoogleTest suite and the binary checks on the Release build in ./build, where a warning
#      in src/ (-Wall -Wextra -Wpedantic) fails the build; the include walls and clang-format;
#   2. the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer (./build-asan);
#   3. each libFuzzer harness for MEMTAX_FUZZ_SECONDS (default 60) on a seed corpus made from
#      the shipped profiles and test inputs (./build-fuzz); any crash, hang (>10 s), leak or
#      sanitizer report fails the job. Execution counts go to build-fuzz/fuzz-summary.txt. Then the
#      planner's property test over 300 generated scenarios.
# MEMTAX_QUICK=1 runs stage 1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

echo "== 1/3 test suite (Release)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMEMTAX_WERROR=ON -DMEMTAX_BUILD_TESTS=ON -DMEMTAX_BUILD_BENCH=ON >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== install and package"
# `cmake --install` into a clean prefix, and cpack's .deb unpacked into another: each must give a
# memtax that runs from anywhere with its embedded catalog and the shipped scenarios beside it.
pkgtmp=$(mktemp -d)
trap 'rm -rf "$pkgtmp"' EXIT
cmake --install build --prefix "$pkgtmp/prefix" >/dev/null
(cd "$pkgtmp" && "$pkgtmp/prefix/bin/memtax" estimate --model qwen2.5-7b --gpu h100 --format json >/dev/null)
"$pkgtmp/prefix/bin/memtax" plan "$pkgtmp/prefix/share/memtax/scenarios/rag-128k-8b.yaml" >/dev/null
(cd build && cpack -G DEB -B "$pkgtmp/deb" >/dev/null)
deb=$(ls "$pkgtmp"/deb/memtax_*.deb)
dpkg-deb -f "$deb" Depends | grep -q "libyaml-cpp" || { echo "package: $deb does not depend on the yaml-cpp runtime it links" >&2; exit 1; }
dpkg-deb -x "$deb" "$pkgtmp/root"
(cd "$pkgtmp" && "$pkgtmp/root/usr/bin/memtax" models >/dev/null && "$pkgtmp/root/usr/bin/memtax" --version)
echo "installed and packaged: $(basename "$deb")"
[ "${MEMTAX_QUICK:-0}" = 1 ] && exit 0

echo "== 2/3 test suite under ASan + UBSan"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMEMTAX_SANITIZE=ON -DMEMTAX_BUILD_BENCH=OFF -DCMAKE_CXX_FLAGS="-O1" >/dev/null
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs"

echo "== 3/3 fuzzing (libFuzzer, ${MEMTAX_FUZZ_SECONDS:-60} s per harness)"
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_C_COMPILER=clang-14 \
  -DMEMTAX_FUZZ=ON -DMEMTAX_BUILD_TESTS=OFF -DMEMTAX_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j "$jobs" --target fuzz_yaml_profiles fuzz_hf_config fuzz_measurements fuzz_cli fuzz_scenario
corpus=build-fuzz/corpus
rm -rf "$corpus" && mkdir -p "$corpus"/{yaml_profiles,hf_config,measurements,cli,scenario}
# Seeds: every shipped profile (prefixed with the byte that picks its loader), the configs and
# measurement files, and every hand-written bad input (their regressions stay covered).
i=0
seed() { i=$((i + 1)); { printf '%s' "$2"; cat "$3"; } > "$corpus/$1/seed-$i"; }
for f in models/*.yaml tests/data/good_model.yaml tests/data/bad/model_*.yaml; do seed yaml_profiles m "$f"; done
for f in hardware/*.yaml tests/data/bad/gpu_*.yaml; do seed yaml_profiles g "$f"; done
for f in runtimes/*.yaml tests/data/bad/runtime_*.yaml; do seed yaml_profiles r "$f"; done
for f in hardware/clusters/*.yaml tests/data/bad/cluster_*.yaml; do seed yaml_profiles c "$f"; done
for f in tests/data/measured/*.config.json tests/data/*.json tests/data/bad/hf_*.json; do seed hf_config "" "$f"; done
for f in tests/data/measured/h*.json tests/data/bad/meas_*.json; do seed measurements "" "$f"; done
for f in scenarios/*.yaml tests/data/scenarios/*.yaml tests/data/bad/scenario_*.yaml; do seed scenario "" "$f"; done
printf 'estimate\n--model\nllama-3.1-70b\n--tp\n4\n--time\n' > "$corpus/cli/seed-estimate"
printf 'whatif\n--contexts\n1024,8192\n--runtime\nvllm\n' > "$corpus/cli/seed-whatif"
printf 'estimate\n--runtime\nhf-eager\n--mode\ndecode\n--context\n32768\n--explain\n--format\njson\n' > "$corpus/cli/seed-eager"
printf 'runtimes\n--format\njson\n' > "$corpus/cli/seed-list"
summary=build-fuzz/fuzz-summary.txt
: > "$summary"
for h in yaml_profiles hf_config measurements cli scenario; do
  max_len=65536; [ "$h" = cli ] && max_len=512
  log=build-fuzz/fuzz_$h.log
  # -fork would hide the first crash's stack; one process, stop at the first finding.
  if ! ASAN_OPTIONS=detect_leaks=1 build-fuzz/fuzz_$h "$corpus/$h" -max_total_time="${MEMTAX_FUZZ_SECONDS:-60}" \
       -timeout=10 -rss_limit_mb=2048 -max_len=$max_len -print_final_stats=1 -artifact_prefix=build-fuzz/crash-$h- \
       > "$log" 2>&1; then
    echo "fuzz_$h FAILED:"; tail -40 "$log"; exit 1
  fi
  runs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  echo "fuzz_$h: $runs executions, no crash" | tee -a "$summary"
done
# The planner's invariants over generated scenarios (tests/test_planner_properties.cpp), beyond the
# suite's 16: 300 more from another fixed seed, so a failure here is reproduced by the same line.
MEMTAX_PROPERTY_SEED=7 MEMTAX_PROPERTY_CASES=300 build/tests/memtax_tests --gtest_filter='PlannerProperties.*' --gtest_brief=1 \
  | tee -a "$summary" | tail -3
echo "all stages passed in ${SECONDS} s"
