#!/usr/bin/env bash
# The whole flow on the embedded default: serve, upload a photograph, stream it through a lossy link.
# Uses a free loopback port and a throwaway data folder; the server is stopped on exit, whatever happens.
set -euo pipefail
SPINR=${SPINR:-.venv/bin/spinr}
PY=${PY:-.venv/bin/python}
OUT=${1:-demo-out/stream}
LOSS=${LOSS:-0.2}
mkdir -p "$OUT"
DATA=$(mktemp -d)
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
$SPINR serve --host 127.0.0.1 --port "$PORT" --data-dir "$DATA" > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 1 150); do  # up to 30 s for the server to answer
  if $PY -c "import httpx,sys; sys.exit(httpx.get('$URL/health', timeout=1).status_code != 200)" 2>/dev/null; then break; fi
  kill -0 $SERVER 2>/dev/null || { echo "server failed to start, see $OUT/server.log" >&2; exit 1; }
  sleep 0.2
done
$PY -c "from skimage import data; from PIL import Image; Image.fromarray(data.astronaut()[::4, ::4]).save('$OUT/astronaut.png')"
echo "server at $URL (browser client at $URL/), uploading $OUT/astronaut.png" >&2
ID=$($SPINR upload "$OUT/astronaut.png" --server "$URL" --preset quick --wait --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "streaming image $ID over a perfect link" >&2
$SPINR stream "$ID" --server "$URL" --out "$OUT/perfect" --ref "$OUT/astronaut.png"
echo "streaming image $ID through a channel with ${LOSS} loss" >&2
$SPINR stream "$ID" --server "$URL" --out "$OUT/lossy" --loss "$LOSS" --channel-seed 3 --ref "$OUT/astronaut.png"
echo "frames in $OUT/perfect and $OUT/lossy" >&2
