#!/usr/bin/env bash
# Writes the README's pictures, docs/img/report.png and docs/img/terminal.png, from a smoke run:
# the browser tests of tests/test_workflow.py take them with Playwright in the system's Chromium
# (into tests/artifacts/, as told here), and this copies them here. A few minutes on a laptop.
#   bash docs/img/make-screenshots.sh      # in the repository, with .venv active
set -euo pipefail
cd "$(dirname "$0")/../.."
shots=(tests/artifacts/report.png tests/artifacts/terminal.png)
rm -f "${shots[@]}"
# the tests keep their screenshots in their temporary directories unless told where
MNISTBENCH_SCREENSHOTS=tests/artifacts \
  pytest -q tests/test_workflow.py -k "headless_chromium or terminal_screenshot"
for shot in "${shots[@]}"; do
  [ -s "$shot" ] || { echo "no $shot: was the test skipped (chromium, playwright)?" >&2; exit 1; }
done
cp "${shots[@]}" docs/img/
ls -l docs/img/*.png
