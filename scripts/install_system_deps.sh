#!/usr/bin/env bash
# Installs the system packages the tests and the optional engines use:
# Tesseract (eng, rus), Chromium for the browser tests, and the DejaVu and
# Liberation fonts the rendered test receipts are drawn in (testkit/receipts.py).
# Needs root and apt-get; anywhere else it only reports what is missing,
# and the tests that need a missing tool are skipped with that message.
set -u
need=()
command -v tesseract >/dev/null 2>&1 || need+=(tesseract-ocr tesseract-ocr-eng tesseract-ocr-rus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
[ -e /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf ] || need+=(fonts-liberation)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing system packages: ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null \
    || echo "warning: apt-get install failed; tests needing ${need[*]} will be skipped"
else
  echo "note: missing ${need[*]}; install with: sudo apt-get install -y ${need[*]}"
  echo "      (tests that need them are skipped)"
fi
exit 0
