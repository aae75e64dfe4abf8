#!/usr/bin/env bash
# Regenerates the README's explanation, design-space and segmentation figures in docs/img/ with the
# commands the README shows beside them. On 2 cores: the demo ~10 min (skipped when runs/demo is
# finished), explanations ~8 min, the design-space benchmark ~55 min, segmentation ~30 min, the notes'
# experiments ~45 min (quick budget, 3 seeds; small-kernels also at full: ~11 min more).
#   bash benchmarks/readme_figures.sh            # everything
#   bash benchmarks/readme_figures.sh explain    # one part: explain, designspace, segmentation or experiments
set -euo pipefail
cd "$(dirname "$0")/.."
CNNLAB="${CNNLAB:-.venv/bin/python -m cnnlab}"
OUT="${OUT:-runs/readme-figures}"
IMG=docs/img
parts="${*:-explain designspace segmentation experiments}"
mkdir -p "$OUT"

for part in $parts; do
  case "$part" in
    explain)
      $CNNLAB demo --out runs/demo   # resumes: finished networks are skipped
      $CNNLAB explain runs/demo/resnet20 --method saliency guided-backprop gradcam occlusion --from-test 8 \
        --out "$OUT/explain" --quiet
      $CNNLAB explain runs/demo/resnet20 --method class-images tsne neighbours sanity --from-test 8 \
        --out "$OUT/explain" --quiet
      for m in saliency guided-backprop gradcam occlusion class-images tsne neighbours sanity; do
        cp "$OUT/explain/$m.png" "$IMG/explain_$m.png"
      done ;;
    designspace)  # the benchmark: 64 networks per space (resumable)
      .venv/bin/python benchmarks/designspace.py --threads 2 --out "$OUT/designspace"
      cp "$OUT/designspace/edf.png" "$IMG/designspace_edf.png"
      cp "$OUT/designspace/ranks.png" "$IMG/designspace_ranks.png"
      cp "$OUT/designspace/anynetx_e/parameters.png" "$IMG/designspace_e_parameters.png" ;;
    segmentation)
      .venv/bin/python benchmarks/segmentation.py --threads 2 --out "$OUT/segmentation"
      cp "$OUT/segmentation/overlays.png" "$IMG/segmentation_overlays.png" ;;
    experiments)
      for name in batchnorm-learning-rate batchnorm-batch-size small-kernels bottlenecks ensembles fine-tuning \
                  augmentation skip-connections; do
        $CNNLAB experiment "$name" --out "$OUT/exp/$name" --budget quick --workers 2
      done
      for name in batchnorm-learning-rate batchnorm-batch-size small-kernels bottlenecks ensembles fine-tuning \
                  augmentation; do
        cp "$OUT/exp/$name/figure.png" "$IMG/exp_$name.png"
      done
      cp "$OUT/exp/skip-connections/figure.png" "$IMG/skip_connections.png"
      $CNNLAB experiment small-kernels --out "$OUT/exp/small-kernels-full" --budget full --workers 2
      cp "$OUT/exp/small-kernels-full/figure.png" "$IMG/exp_small-kernels-full.png" ;;
    *) echo "readme_figures.sh: unknown part '$part' (explain, designspace, segmentation or experiments)" >&2
       exit 2 ;;
  esac
done
echo "figures in $IMG/"
