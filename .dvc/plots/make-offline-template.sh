#!/usr/bin/env bash
# Writes .dvc/plots/offline.html: DVC's plots page with Vega, Vega-Lite and vega-embed inline, so
# that `dvc plots show` draws offline (DVC's own page loads them from a CDN). The versions are the
# ones dvc-render's page asks for; the packages come from the npm registry (`npm pack`). All three
# are BSD-3-Clause, University of Washington Interactive Data Lab: .dvc/plots/VEGA-LICENSE.
#   bash .dvc/plots/make-offline-template.sh      # in the repository, with npm on PATH
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
libs=(vega@5.20.2:build/vega.min.js vega-lite@5.2.0:build/vega-lite.min.js
      vega-embed@6.18.2:build/vega-embed.min.js)
scripts=""
: >VEGA-LICENSE
for lib in "${libs[@]}"; do
  spec=${lib%%:*} file=${lib#*:}
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null && mkdir -p "$spec" && tar xzf ./*.tgz -C "$spec" && rm ./*.tgz)
  { echo "== $spec (npm), package/LICENSE =="; cat "$tmp/$spec/package/LICENSE"; echo; } >>VEGA-LICENSE
  scripts+="<script>/* $spec, BSD-3-Clause: .dvc/plots/VEGA-LICENSE */
$(cat "$tmp/$spec/package/$file")
</script>
"
done
# DVC fills {plot_divs} and {refresh_tag}; without {scripts} it adds no CDN <script> of its own.
cat >offline.html <<HTML
<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
$scripts    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
HTML
echo "wrote $(pwd)/offline.html ($(wc -c <offline.html) bytes)"
