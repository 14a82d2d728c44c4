#!/usr/bin/env bash
# The main job: set everything up, build the demo image from recipes/demo.yaml into out/demo, and print its digests
# and launch measurements.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
target/release/cvmforge build recipes/demo.yaml -o out/demo --force "$@"
