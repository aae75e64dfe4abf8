"""``cnnlab explain``: figures and arrays of what a trained network learned."""

from __future__ import annotations

import argparse

from cnnlab.cli._common import examples, positive_int, print_json_or, say

__all__ = ["register"]


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated channel numbers, got {text!r}") from err


def _words(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _steps(text: str) -> int | None:
    return None if text == "all" else int(text)


def _cmd_explain(args: argparse.Namespace) -> int:
    from cnnlab.explain.report import ExplainSettings, explain_checkpoint

    settings = ExplainSettings(
        target=args.target, layer=args.layer, filter_layer=args.filter_layer, window=args.window,
        stride=args.stride, samples=args.samples, channels=args.channels, k=args.k, neighbours=args.neighbours,
        steps=args.steps, sanity_methods=args.sanity_methods, sanity_steps=args.sanity_steps,
        max_images=args.max_images, batch_size=args.batch_size, seed=args.seed, threads=args.threads,
        device=args.device, data_dir=args.data_dir, progress=not args.quiet,
    )
    summary = explain_checkpoint(args.checkpoint, args.method, args.out, args.images, args.from_test, settings)
    if not args.quiet:
        say(f"wrote {len(summary['files'])} files to {args.out}")
    print_json_or(args, summary, "\n".join(f"{args.out}/{f}" for f in summary["files"]))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``explain``."""
    from cnnlab.explain.report import GROUPS, METHODS, ExplainSettings

    defaults = ExplainSettings()
    methods = "\n".join(f"  {name:<16} {text}" for name, text in METHODS.items())
    groups = "; ".join(f"{g} = {', '.join(m)}" for g, m in GROUPS.items() if g != "all")
    p = sub.add_parser(
        "explain", help="explain a trained network: saliency, Grad-CAM, occlusion, class images, t-SNE, ...",
        **examples("cnnlab explain runs/lenet --method saliency gradcam --from-test 8 --out runs/lenet/explain",
                   "cnnlab explain runs/lenet --method tsne neighbours --out runs/lenet/explain",
                   "cnnlab explain runs/lenet/best.pt --method occlusion --images shoe.png --target Sneaker "
                   "--out out", raw_description=True),
        description="Run explanation methods on a checkpoint written by cnnlab train and write a PNG figure "
                    "and the raw arrays (.npz) per method to --out.\n\nmethods:\n" + methods +
                    f"\n\ngroups: all; {groups}",
    )
    p.add_argument("checkpoint", metavar="RUN_DIR_OR_CHECKPOINT", help="a run directory or a .pt checkpoint")
    p.add_argument("--method", "-m", nargs="+", required=True, metavar="METHOD",
                   help="one or more methods or groups (space- or comma-separated), e.g. saliency gradcam, or all")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--images", nargs="+", metavar="FILE", help="image files to explain (PNG, JPEG, ...)")
    source.add_argument("--from-test", type=positive_int, metavar="N",
                        help="explain the first N images of the test split")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the figures and arrays")
    p.add_argument("--target", metavar="CLASS",
                   help="class to explain: index or name, or 'label' for each test image's own class "
                        "(default: the predicted class)")
    p.add_argument("--layer", metavar="NAME",
                   help="layer for gradcam, guided-gradcam, activations and top-patches: a stage (e.g. stages.2) "
                        "or any module name (default: the last stage for Grad-CAM, the first for the others)")
    p.add_argument("--filter-layer", metavar="NAME", help="convolution whose kernels 'filters' shows "
                                                          "(default: the first)")
    p.add_argument("--window", type=positive_int,
                   help="occlusion square side in pixels (default: a seventh of the side)")
    p.add_argument("--stride", type=positive_int, help="occlusion step in pixels (default: half the window)")
    p.add_argument("--samples", type=positive_int, default=defaults.samples, help="SmoothGrad noisy copies per image")
    p.add_argument("--channels", type=_int_list, help="channels for top-patches, e.g. 0,3,7 (default: the first 8)")
    p.add_argument("--k", type=positive_int, default=defaults.k, help="top patches per channel")
    p.add_argument("--neighbours", type=positive_int, default=defaults.neighbours, help="nearest neighbours per image")
    p.add_argument("--steps", type=positive_int, default=defaults.steps, help="gradient-ascent steps of class-images")
    p.add_argument("--sanity-methods", type=_words, default=defaults.sanity_methods,
                   help="attribution methods the sanity check randomizes, comma-separated "
                        f"(default: {','.join(defaults.sanity_methods)})")
    p.add_argument("--sanity-steps", type=_steps, default=defaults.sanity_steps,
                   help="randomization depths to compute, spread over the layers, or 'all' (default: 16)")
    p.add_argument("--max-images", type=positive_int,
                   help="test images read for tsne, pca, neighbours, top-patches (default: 10000; 2000 for folders)")
    p.add_argument("--batch-size", type=positive_int, default=defaults.batch_size)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--threads", type=positive_int, default=defaults.threads, help="t-SNE threads")
    p.add_argument("--device", default=defaults.device)
    p.add_argument("--data-dir", help="folder holding the data set, if not where training found it")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_explain)
