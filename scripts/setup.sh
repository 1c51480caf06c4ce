#!/usr/bin/env bash
# Installs memtax's dependencies from Debian's packages. Idempotent: installs only what is
# missing, so a second run does nothing and needs no network.
#   scripts/setup.sh          what the build and the CLI need (the main job): a compiler, CMake and
#                             the libraries memtax links or includes.
#   scripts/setup.sh --tests  that plus what only the tests need: GoogleTest and Google Benchmark;
#                             clang-14 with libFuzzer and GCC's sanitizer runtimes (the fuzzing and
#                             ASan+UBSan stages of scripts/test.sh); Chromium, a font and Cairo (the
#                             test that renders a capacity report headless and reads the screenshot
#                             back); clang-format (the layout check); dpkg-dev (cpack's .deb
#                             dependencies, smoke-tested by scripts/test.sh).
set -euo pipefail
pkgs=(cmake g++ make pkg-config libeigen3-dev libcli11-dev libyaml-cpp-dev libfmt-dev
      libboost-graph-dev nlohmann-json3-dev)
case "${1:-}" in
  "") ;;
  --tests) pkgs+=(libgtest-dev libbenchmark-dev clang-14 libclang-rt-14-dev libasan8 libubsan1
                  chromium fonts-dejavu-core libcairo2-dev clang-format dpkg-dev) ;;
  *) echo "setup.sh: unknown argument \"$1\"; valid: --tests (or none)" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
