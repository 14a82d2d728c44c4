#!/usr/bin/env bash
# The whole publishing chain of a release, end to end, printing each command and what it said:
#   build the demo -> verify (rebuild and compare) -> attest (in-toto statements) -> sign (DSSE) -> log init/append
#   -> log prove -> log verify-proof -> log audit over HTTP (python3 -m http.server on 127.0.0.1) -> log witness
#   -> log checkpoint --add-cosignatures -> log audit with a witness quorum.
# Run after scripts/setup.sh (or scripts/demo.sh). Everything goes under build/publish-chain; exits non-zero at the
# first command that fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CVMFORGE_BIN:-target/release/cvmforge}
w=build/publish-chain
rm -rf "$w"
mkdir -p "$w"
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null' EXIT

step() {
  echo
  echo "\$ $*"
  "$@"
}

step "$bin" build recipes/demo.yaml -o "$w/out"
bundle=$(ls "$w"/out/*.cvm.tar)
echo
echo "\$ $bin --json verify $bundle --recipe recipes/demo.yaml > $w/verify.json"
"$bin" --json verify "$bundle" --recipe recipes/demo.yaml > "$w/verify.json"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print("verify: identical =", d["identical"], "|", len(d["outputs"]), "outputs,", len(d["measurements"]), "measurements compared")' "$w/verify.json"
step "$bin" keygen -o "$w/release" --name example.org/cvmforge-releases
step "$bin" keygen -o "$w/log" --name example.org/cvmforge-log
step "$bin" keygen -o "$w/w1" --name w1.example.org
step "$bin" attest "$w/out" -o "$w/statements" --verify-report "$w/verify.json"
step "$bin" sign "$w/statements/launch.intoto.json" --key "$w/release.key" -o "$w/launch.dsse.json"
step "$bin" sign "$w/statements/provenance.intoto.json" --key "$w/release.key" -o "$w/provenance.dsse.json"
step "$bin" verify-statement "$w/launch.dsse.json" --key "$w/release.pub" --predicate-type https://cvmforge.dev/launch-measurements/v1 > "$w/launch.predicate.json"
echo "(predicate: $(wc -c < "$w/launch.predicate.json") bytes in $w/launch.predicate.json)"
step "$bin" log init "$w/site" --origin example.org/cvmforge-log --key "$w/log.key" --signer "$w/release.pub"
step "$bin" log append "$w/site" "$w/launch.dsse.json" "$w/provenance.dsse.json" --key "$w/log.key"
step "$bin" log prove "$w/site" --entry "$w/launch.dsse.json" --log-key "$w/log.pub" -o "$w/launch.tlog-proof"
echo "--- $w/launch.tlog-proof (the extra line cut at 60 characters)"
cut -c1-60 "$w/launch.tlog-proof"
step "$bin" log verify-proof "$w/launch.tlog-proof" --log-key "$w/log.pub" --entry "$w/launch.dsse.json"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$w/site" "$port" > "$w/http.log" 2>&1 &
server=$!
for _ in $(seq 50); do python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$port" 2>/dev/null && break; sleep 0.1; done
url=http://127.0.0.1:$port/
step "$bin" log audit "$url" --log-key "$w/log.pub" --state "$w/audit-state"
echo
echo "\$ $bin log witness $url --log-key $w/log.pub --witness-key $w/w1.key --name w1.example.org --state $w/w1-state --time 1767225600"
"$bin" log witness "$url" --log-key "$w/log.pub" --witness-key "$w/w1.key" --name w1.example.org --state "$w/w1-state" \
  --time 1767225600 | tee "$w/w1.vkey"
step "$bin" log checkpoint "$w/site" --log-key "$w/log.pub" --add-cosignatures "$w/w1-state/checkpoint" --witness-key "$w/w1.vkey"
step "$bin" log audit "$url" --log-key "$w/log.pub" --state "$w/audit-state" --witness-key "$w/w1.vkey" --quorum 1
echo
echo "publish-chain: every step passed"
