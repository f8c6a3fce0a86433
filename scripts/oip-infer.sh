#!/usr/bin/env bash
# Sends images to the Open Inference Protocol's infer endpoint with the binary data extension, as Triton's and
# KServe's clients do: a JSON header naming input "image" (BYTES, shape [N]) and its binary size, then each image as
# a 4-byte little-endian length and its bytes; the header's length goes in Inference-Header-Content-Length.
# Usage: scripts/oip-infer.sh [-m MODEL] [-k CLASSIFICATION] IMAGE...   (GATEWAY, default http://127.0.0.1:8080;
# API_KEY when the gateway needs one). Prints the JSON answer.
set -euo pipefail
model=text-orientation
classification=0
while getopts "m:k:" opt; do
  case "$opt" in
    m) model="$OPTARG" ;;
    k) classification="$OPTARG" ;;
    *) echo "usage: $0 [-m MODEL] [-k CLASSIFICATION] IMAGE..." >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "usage: $0 [-m MODEL] [-k CLASSIFICATION] IMAGE..." >&2; exit 2; }
gateway="${GATEWAY:-http://127.0.0.1:8080}"
body="$(mktemp)"
trap 'rm -f "$body" "$body.len"' EXIT
python3 - "$body" "$model" "$classification" "$@" <<'PY'
import json, struct, sys
out, model, k, files = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
binary = b"".join(struct.pack("<I", len(d)) + d for d in (open(f, "rb").read() for f in files))
request = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(files)], "parameters": {"binary_data_size": len(binary)}}]}
if k > 0:
    # The classification extension needs the output's name: ask the model's metadata for it.
    import urllib.request, os
    req = urllib.request.Request(f"{os.environ.get('GATEWAY', 'http://127.0.0.1:8080')}/v2/models/{model}")
    if os.environ.get("API_KEY"):
        req.add_header("X-Api-Key", os.environ["API_KEY"])
    output = json.load(urllib.request.urlopen(req))["outputs"][0]["name"]
    request["outputs"] = [{"name": output, "parameters": {"classification": k}}]
header = json.dumps(request).encode()
open(out, "wb").write(header + binary)
open(out + ".len", "w").write(str(len(header)))
PY
curl -sS -H "Content-Type: application/octet-stream" -H "Inference-Header-Content-Length: $(cat "$body.len")" \
  ${API_KEY:+-H "X-Api-Key: $API_KEY"} --data-binary @"$body" "$gateway/v2/models/$model/infer"
echo
