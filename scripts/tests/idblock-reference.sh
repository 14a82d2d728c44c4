#!/usr/bin/env bash
# cvmforge id-block vs the reference snp-create-id-block: ID block, key digests, and our signatures checked by OpenSSL.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec scripts/idblock-reference-check.sh
