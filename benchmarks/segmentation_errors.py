"""Where a trained scene segmenter goes wrong, on the validation scenes: background or item classes, and by visibility.

Reads a run of ``cnnlab train unet --data fashion-mnist-scenes...`` (default: the U-Net of
``benchmarks/segmentation.py``) and labels its validation scenes (never the test scenes: this analysis
guides recipe changes). It reports:

* item pixels called background and background pixels called an item, as shares of the item pixels;
* item pixels given another item's class (the confusions), and the mIoU the network would have with every
  such confusion corrected (background errors kept);
* per placed item, the share of its foreground left visible by the items pasted over it, and the pixel
  accuracy of items by that share; the share of wholly visible items whose pixels are mostly wrong.

    python benchmarks/segmentation_errors.py                              # runs/segmentation/runs/unet
    python benchmarks/segmentation_errors.py runs/seg/best.pt --json errors.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from cnnlab.data.scenes import SceneSpec, item_owners, load_scenes
from cnnlab.models import create_model
from cnnlab.train import load_checkpoint
from cnnlab.train.segmetrics import confusion_matrix, segmentation_scores

VISIBLE_BINS = (0.0, 0.25, 0.5, 0.75, 0.95, 1.0001)


def predictions(ckpt: dict, images: torch.Tensor, batch: int = 250) -> torch.Tensor:
    """The network's label maps for uint8 images (N, 1, H, W), normalized as in training."""
    cfg = ckpt["config"]
    model = create_model(cfg["model"], num_classes=len(ckpt["data"]["classes"]), in_chans=images.shape[1],
                         **cfg["model_args"])
    model.load_state_dict(ckpt["model"])
    model.eval()
    mean = torch.tensor(ckpt["data"]["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(ckpt["data"]["std"]).view(1, -1, 1, 1)
    with torch.inference_mode():
        return torch.cat([model((images[i:i + batch].float() / 255 - mean) / std).argmax(1)
                          for i in range(0, len(images), batch)])


def analyse(ckpt: dict, data_dir: str | None) -> dict:
    spec = SceneSpec.parse(ckpt["data"]["dataset"])
    scenes = load_scenes(spec, data_dir)["val"]
    classes = list(ckpt["data"]["classes"])
    k = len(classes)
    pred, target = predictions(ckpt, scenes.images), scenes.labels.long()
    conf = confusion_matrix(pred, target, k, 255).double()
    items = conf[1:].sum()
    confused = items - conf[1:, 0].sum() - conf.diagonal()[1:].sum()
    fixed = conf.clone()
    fixed.diagonal()[1:] += fixed[1:, 1:].sum(1) - fixed.diagonal()[1:]  # item pixels given their own class
    fixed[1:, 1:] = torch.diag(fixed.diagonal()[1:])
    owner, foreground = item_owners(spec, scenes, "val", data_dir)
    shown = owner >= 0
    right = (pred == target)[shown].double()
    visible = torch.bincount(owner[shown], minlength=len(foreground)).double()
    correct = torch.bincount(owner[shown], weights=right, minlength=len(foreground))
    share = visible / torch.from_numpy(foreground).double().clamp_min(1)
    by_visibility = []
    for lo, hi in zip(VISIBLE_BINS[:-1], VISIBLE_BINS[1:]):
        sel = (share >= lo) & (share < hi) & (visible > 0)
        by_visibility.append({"visible": [lo, min(hi, 1.0)], "items": int(sel.sum()),
                              "pixel_accuracy": float(correct[sel].sum() / visible[sel].sum().clamp_min(1))})
    whole = (share >= 0.95) & (visible > 0)
    return {
        "run_data": ckpt["data"]["dataset"],
        "val_scenes": len(scenes.images),
        "miou": segmentation_scores(conf.long()).miou,
        "items_called_background": float(conf[1:, 0].sum() / items),
        "background_called_item": float(conf[0, 1:].sum() / items),
        "items_given_another_item_class": float(confused / items),
        "miou_with_item_confusions_corrected": segmentation_scores(fixed.long()).miou,
        "pixel_accuracy_by_visible_share": by_visibility,
        "whole_items_mostly_wrong": float((correct[whole] / visible[whole] <= 0.5).double().mean()),
        "confusions": {classes[t]: {classes[p]: float(conf[t, p] / conf[t].sum())
                                    for p in torch.argsort(conf[t], descending=True)[:4].tolist()}
                       for t in range(1, k)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", nargs="?", default="runs/segmentation/runs/unet/best.pt",
                        help="a scene segmentation run's best.pt (default: the segmentation benchmark's U-Net)")
    parser.add_argument("--data-dir", default=None, help="where Fashion-MNIST is and the scenes are cached")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    if not str(ckpt.get("data", {}).get("dataset", "")).startswith("fashion-mnist-scenes"):
        print(f"{args.checkpoint}: not a run on fashion-mnist-scenes", file=sys.stderr)
        return 2
    r = analyse(ckpt, args.data_dir)
    print(f"{r['val_scenes']} validation scenes, mIoU {100 * r['miou']:.1f}%")
    print(f"item pixels called background {100 * r['items_called_background']:.3f}%, background called an item "
          f"{100 * r['background_called_item']:.3f}% (of the item pixels)")
    print(f"item pixels given another item's class {100 * r['items_given_another_item_class']:.1f}%; mIoU with "
          f"those corrected {100 * r['miou_with_item_confusions_corrected']:.2f}%")
    for row in r["pixel_accuracy_by_visible_share"]:
        lo, hi = row["visible"]
        print(f"  items {100 * lo:.0f}-{100 * hi:.0f}% visible: {row['items']:>5} items, pixel accuracy "
              f"{100 * row['pixel_accuracy']:.1f}%")
    print(f"wholly visible items (>= 95%) with most pixels wrong: {100 * r['whole_items_mostly_wrong']:.1f}%")
    for name, row in r["confusions"].items():
        print(f"  {name:<12} " + "  ".join(f"{p}: {100 * v:.0f}%" for p, v in row.items()))
    if args.json:
        args.json.write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
