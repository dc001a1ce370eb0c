#!/usr/bin/env bash
# Renders docs/architecture.mmd to docs/architecture.svg (or to the path given as $1).
#
# Needs node + npm and a Chromium (Debian: apt-get install -y chromium). mermaid-cli is
# installed under $MMDC_PREFIX (default /tmp/mmdc) without the browser puppeteer would
# download; it drives the system Chromium instead ($CHROMIUM, else chromium on PATH).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/architecture.svg}
prefix=${MMDC_PREFIX:-/tmp/mmdc}
mmdc=$prefix/node_modules/.bin/mmdc
if [ ! -x "$mmdc" ]; then
    PUPPETEER_SKIP_DOWNLOAD=1 npm install --silent --no-audit --no-fund \
        --prefix "$prefix" @mermaid-js/mermaid-cli@11
fi
browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$browser" ]; then
    echo "render_diagram.sh: no chromium found (apt-get install -y chromium)" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '{"executablePath": "%s", "args": ["--no-sandbox", "--headless", "--disable-gpu"]}\n' \
    "$browser" > "$tmp/puppeteer.json"
# Labels as SVG <text>, not HTML in <foreignObject>, so every SVG viewer shows them.
printf '{"htmlLabels": false, "flowchart": {"htmlLabels": false}}\n' > "$tmp/mermaid.json"
"$mmdc" --quiet -p "$tmp/puppeteer.json" -c "$tmp/mermaid.json" \
    -i "$here/architecture.mmd" -o "$tmp/architecture.svg"
# Mermaid puts each word in its own <tspan> with a leading space; keep those spaces in
# viewers that trim them (librsvg, ImageMagick).
sed '1s/^<svg /<svg xml:space="preserve" /' "$tmp/architecture.svg" > "$out"
