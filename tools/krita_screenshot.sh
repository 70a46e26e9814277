#!/usr/bin/env bash
# The README's picture of the Krita plug-in: the meadow sample cut out inside Krita (headless,
# tools/krita_screenshot.py), then that document opened in Krita's window on a virtual display
# (Xvfb) and the screen captured.
#
#   bash tools/krita_screenshot.sh docs/krita.png      (needs: krita, xvfb, imagemagick)
set -euo pipefail
out=$(realpath -m "${1:-docs/krita.png}")
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export KIRINUKI_COMMAND=${KIRINUKI_COMMAND:-$root/.venv/bin/kirinuki}
SHOT_PICTURE=$root/src/kirinuki/samples/sylvie-on-meadow.jpg SHOT_DOCUMENT=$work/meadow.kra \
    PYTHONPATH=$root/src/kirinuki/krita/plugin:$root/tools QT_QPA_PLATFORM=offscreen \
    kritarunner -s krita_screenshot -f main >/dev/null 2>&1 || true  # Krita may abort on its way out
test -s "$work/meadow.kra" || { echo "the cut in Krita made no document" >&2; exit 1; }
Xvfb :77 -screen 0 1280x800x24 >/dev/null 2>&1 &
sleep 2
HOME=$work DISPLAY=:77 krita --nosplash "$work/meadow.kra" >/dev/null 2>&1 &
sleep "${SHOT_WAIT:-25}"
DISPLAY=:77 import -window root "$work/screen.png"
convert "$work/screen.png" -trim +repage "$out"   # the window alone: no window manager places it
echo "wrote $out"
