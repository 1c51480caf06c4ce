#!/usr/bin/env bash
# Configures and builds the memtax binary in ./build (Release) — the main job, with what
# scripts/setup.sh installs (no tests, no benchmarks). Usage: scripts/build.sh [extra cmake args]
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMEMTAX_BUILD_TESTS=OFF -DMEMTAX_BUILD_BENCH=OFF "$@" >/dev/null
cmake --build build -j "$(nproc)" --target memtax
