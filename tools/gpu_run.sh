#!/usr/bin/env bash
# One GPU training run for the default model, prepared to need nothing it cannot bring along.
#
#   bash tools/gpu_run.sh MINUTES            (on the GPU machine, from the project root)
#
# Needs: PyTorch, numpy, Pillow, onnx and onnxruntime on the machine (no install, no network);
# the compact data copy in .data/compact (python tools/compact_data.py ../shared/data .data/compact);
# the bundled weights (the run starts from them: --init-from default). Writes to $OUT (or
# gpu-out/): the checkpoints, train/val logs, an evaluation report on the validation cutouts
# and the exported ONNX model. Bring those back, evaluate on the full-size val/ here, and
# bundle the checkpoint with tools/bundle_model.py only if it scores better.
set -euo pipefail
MINUTES=${1:-9}
OUT=${OUT:-gpu-out}
BATCH=${BATCH:-64}          # a CPU dry run: BATCH=8 WORKERS=1 THROUGHPUT="1"
WORKERS=${WORKERS:-14}
THROUGHPUT=${THROUGHPUT:-1 8 32}
DATA=.data/compact
export PYTHONPATH=src PYTHONUNBUFFERED=1
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$OUT/log.txt" || true
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/log.txt"

# Data-pipeline speed on this machine, for the record (a few seconds).
python benchmarks/composite_speed.py --data "$DATA" --sizes 256 512 --samples 64 2>&1 | tee -a "$OUT/log.txt" || true

python -m kirinuki train --data "$DATA" --val "$DATA/val/anime" --out "$OUT/run" \
    --init-from default --minutes "$MINUTES" --batch "$BATCH" --workers "$WORKERS" -q \
    --set 'sizes=[384,448,512]' --set model.work_size=512 --set optim.lr=1e-3 \
    --set optim.warmup_steps=50 --set val_every=500 --set ckpt_every=250 --set log_every=50 \
    2>&1 | tee -a "$OUT/log.txt"

CKPT="$OUT/run/best.pt"; [ -f "$CKPT" ] || CKPT="$OUT/run/last.pt"
python -m kirinuki export --checkpoint "$CKPT" --onnx "$OUT/model.onnx" 2>&1 | tee -a "$OUT/log.txt"
python -m kirinuki evaluate --model "$CKPT" --device auto --data "$DATA/val/anime" \
    --backgrounds "$DATA/backgrounds" --sizes 256 512 --out "$OUT/eval" 2>&1 | tee -a "$OUT/log.txt"
# Keep what comes back small: the weights-only copy of the best checkpoint is enough.
python - "$CKPT" "$OUT/best-weights.pt" <<'PY'
import sys, torch
s = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
s.pop("optimizer", None)
torch.save(s, sys.argv[2])
PY
# Inference throughput of the whole batched GPU path at 1024x1024 (about 20 s).
python benchmarks/gpu_throughput.py --checkpoint "$OUT/best-weights.pt" --batches $THROUGHPUT --seconds 5 \
    2>&1 | tee -a "$OUT/log.txt" || true
# At most 8 files come back, 16 MB each: log.txt, model.onnx, best-weights.pt, report.md,
# worst.png, train_log.csv, val_log.csv.
for f in "$OUT/eval/report.md" "$OUT/eval/worst.png" "$OUT/run/train_log.csv" "$OUT/run/val_log.csv"; do
    if [ -f "$f" ]; then mv "$f" "$OUT/"; fi
done
rm -rf "$OUT/run" "$OUT/eval"
ls -la "$OUT"
