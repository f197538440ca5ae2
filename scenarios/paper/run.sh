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

# Figs. 4 and 5 (lossless and lossy coding against cloud-only) and every other figure of
# results/paper/: the list in dfsim/tools/figures.py (docs/guide/plots.md)
.venv/bin/python -m dfsim.tools.figures --only $R >/dev/null
# Table 1: BD-KBPI against cloud-only HEVC
$dfsim compare $R/detection-cloud-only $R/detection-lossy $R/detection-lossy-retrained-add_1 \
    $R/detection-lossy-retrained-add_2 --allow-mixed --bd-rate --metric map --curves method,split,codec \
    --anchor detection-cloud-only:zeros/input/hevc > $R/table1-detection.md
$dfsim compare $R/classifier $R/classifier-retrained --allow-mixed --bd-rate --metric top1 \
    --curves method,split,codec --anchor classifier:zeros/input/hevc > $R/table1-classifier.md
$dfsim compare $R/efficientnet --bd-rate --metric coding_agreement --curves split,codec \
    --anchor input/hevc > $R/table1-efficientnet.md
