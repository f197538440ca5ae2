#!/usr/bin/env bash
# Choi & Bajic's lossy-coding / cloud-only study on dfsim's models, and the same curves under
# packet loss: runs every scenario of scenarios/paper/ into results/paper/, then derives the
# figures and the BD-rate tables (results/paper/README.md reads them).
#   bash scenarios/paper/run.sh            (from the repository root, after setup.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
dfsim=.venv/bin/dfsim
R=results/paper
for s in detection-cloud-only detection-lossless detection-lossy \
         detection-lossy-retrained-add_1 detection-lossy-retrained-add_2 \
         classifier classifier-retrained efficientnet \
         detection-under-loss classifier-under-loss; do
    start=$SECONDS
    $dfsim run --quiet "scenarios/paper/$s.yaml"
    echo "$s: $((SECONDS - start)) s"
done

# Fig. 4: lossless feature coding at 8/10/12 bits, four split points, and the cloud-only points
$dfsim plot $R/detection-lossless $R/detection-cloud-only --x kbpi --y map \
    --by split,bits,codec --out $R/fig4-detection >/dev/null
# Fig. 5: lossy HEVC at two split points, default and retrained weights, against cloud-only
$dfsim plot $R/detection-cloud-only $R/detection-lossy $R/detection-lossy-retrained-add_1 \
    $R/detection-lossy-retrained-add_2 --x kbpi --y map --by split,codec \
    --out $R/fig5-detection >/dev/null
$dfsim plot $R/classifier $R/classifier-retrained --x kbpi --y top1 --by split,codec \
    --out $R/fig5-classifier >/dev/null
$dfsim plot $R/efficientnet --x kbpi --y coding_agreement --by split,codec >/dev/null
# Table 1: BD-KBPI against cloud-only HEVC
$dfsim compare $R/detection-cloud-only $R/detection-lossy $R/detection-lossy-retrained-add_1 \
    $R/detection-lossy-retrained-add_2 --allow-mixed --bd-rate --metric map --curves method,split,codec \
    --anchor detection-cloud-only:zeros/input/hevc > $R/table1-detection.md
$dfsim compare $R/classifier $R/classifier-retrained --allow-mixed --bd-rate --metric top1 \
    --curves method,split,codec --anchor classifier:zeros/input/hevc > $R/table1-classifier.md
$dfsim compare $R/efficientnet --bd-rate --metric coding_agreement --curves split,codec \
    --anchor input/hevc > $R/table1-efficientnet.md
# Under loss: one panel per loss rate, cloud-only and split in their two modes
for sm in detection-under-loss:map classifier-under-loss:top1; do
    s=${sm%%:*} m=${sm##*:}
    $dfsim plot $R/$s --x kbpi --y "$m" --by channel,split,mode --panels loss_rate \
        --methods linear >/dev/null
done
