#!/usr/bin/env bash
# After a default point-cloud run: write its table into the experiment's docstring, draw its
# plots and copy them with the evaluation JSON into results/<name>/ (the repository's record).
# Usage: bash scripts/publish_points.sh point_jepa|jepa3d [workdir, default runs/<name>]
set -euo pipefail
cd "$(dirname "$0")/.."
name="$1"; workdir="${2:-runs/$name}"; py=${PYTHON:-python}
$py scripts/record_results.py --workdir="$workdir" --into="experiments/$name.py"
$py scripts/plot_results.py --workdir="$workdir" \
  --metrics svm_acc few_shot_acc retrieval_top1 retrieval_mrr
mkdir -p "results/$name"
cp "$workdir"/results/{loss.png,eval.png,eval.md} "results/$name/"
cp "$(ls -v "$workdir"/results/eval_step*.json | tail -1)" "results/$name/"
