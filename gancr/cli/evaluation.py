"""``gancr eval`` (score a trained generator) and ``gancr report`` (an HTML page of a run)."""

from __future__ import annotations

import argparse
from typing import Any

from gancr.cli.output import note, notes_enabled
from gancr.storage.files import output_argument

__all__ = ["add_eval", "cmd_eval", "add_report", "cmd_report"]


def add_eval(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="score a trained generator: content retention, style closeness, paired references",
        description="Run the generator on the content images; print a table of every content-retention, "
        "style and (with --reference) paired metric, and which features each used.",
    )
    p.add_argument("--checkpoint", required=True, help="a run directory, generator.safetensors or checkpoint")
    p.add_argument("--content", required=True, nargs="+", metavar="DIR",
                   help="content images: folders, files or builtin:NAME (e.g. builtin:holdout)")
    p.add_argument("--style", required=True, nargs="+", metavar="DIR", help="the style set (e.g. builtin:cartoon)")
    p.add_argument("--reference", nargs="+", metavar="DIR", default=None,
                   help="target images matched to content images by file stem (PSNR, SSIM, edge F1)")
    output_argument(p, "--json", metavar="FILE", default=None,
                   help="write the results as JSON (RUN/eval.json is shown by `gancr report RUN`)")
    p.add_argument("--encoder", default=None, metavar="YAML",
                   help="encoder of the Gram (and fallback perceptual and KID/FID) features, e.g. "
                   "'{name: vgg19, layer: relu3_1, weights: vgg19.pth}' (default: vgg19 relu3_1, random weights)")
    p.add_argument("--max-size", type=int, default=512, metavar="PX",
                   help="fit images so their longer side is at most PX (default: %(default)s; 0: keep the size)")
    p.add_argument("--feature-size", type=int, default=224, metavar="PX",
                   help="side of the square views fed to the encoder (default: %(default)s)")
    p.add_argument("--views", type=int, choices=(1, 5), default=5,
                   help="KID/FID vectors per image: the whole image, or it and its quadrants (default: %(default)s)")
    p.add_argument("--kid-features", choices=("auto", "inception", "encoder"), default="auto",
                   help="KID/FID feature space; auto (default): the FID Inception when its file is on this "
                   "machine, else the encoder (a fallback, labelled)")
    p.add_argument("--inception-weights", default=None, metavar="FILE",
                   help="the FID Inception, pt_inception-2015-12-05-6726825d.pth (default: looked for in "
                   "torch hub's cache; never downloaded)")
    p.add_argument("--perceptual", choices=("auto", "lpips", "encoder"), default="auto",
                   help="content perceptual distance; auto (default): LPIPS when its AlexNet file is on this "
                   "machine, else the unit-normalised distance in the encoder's features (a fallback, labelled)")
    p.add_argument("--lpips-weights", default=None, metavar="FILE",
                   help="LPIPS's backbone, torchvision's alexnet-owt-7be5be79.pth (default: looked for in "
                   "torch hub's cache; never downloaded)")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True,
                   help="use the EMA weights when the run kept them (default: yes)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda (default: %(default)s)")
    p.add_argument("--per-image", action="store_true", help="add each image's values to the JSON")


def cmd_eval(args: argparse.Namespace) -> int:
    from gancr.evaluation import EvalOptions, evaluate, format_table, parse_encoder, write_json

    options = EvalOptions(
        encoder=parse_encoder(args.encoder), max_size=args.max_size or None, feature_size=args.feature_size,
        views=args.views, kid_features=args.kid_features, inception_weights=args.inception_weights,
        perceptual=args.perceptual, lpips_weights=args.lpips_weights, per_image=args.per_image,
    )
    result = evaluate(
        args.checkpoint,
        args.content if len(args.content) > 1 else args.content[0],
        args.style if len(args.style) > 1 else args.style[0],
        None if args.reference is None else (args.reference if len(args.reference) > 1 else args.reference[0]),
        options, ema=args.ema, device=args.device, progress=notes_enabled(args),
    )
    print(format_table(result))
    if args.json:
        write_json(result, args.json)
        note(args, f"wrote {args.json}")
    return 0


def add_report(sub: Any) -> None:
    p = sub.add_parser("report", help="an HTML page of a run: loss curves, balancer weights, samples, eval table",
                       description="Write one HTML page (and PNGs next to it) about a training run.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by gancr train")
    output_argument(p, "--out", default=None, metavar="FILE", help="the HTML file (default: RUN_DIR/report/index.html)")
    p.add_argument("--eval", dest="eval_json", default=None, metavar="FILE",
                   help="an evaluation JSON from gancr eval --json (default: RUN_DIR/eval.json when present)")


def cmd_report(args: argparse.Namespace) -> int:
    from gancr.evaluation.report import write_report

    path = write_report(args.run_dir, args.out, eval_json=args.eval_json)
    print(f"wrote {path}")
    return 0
