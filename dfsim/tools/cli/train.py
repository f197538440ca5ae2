"""``dfsim train``: train a built-in model into its weights file (deterministic), or
fine-tune it with its split features coded (compression-augmented training,
``--augment-split ...``)."""

from __future__ import annotations

from pathlib import Path

from dfsim.errors import UserError

TRAINABLE = {
    # --model: (module with its train(), module with its WEIGHTS_FILE)
    "fmnist-resnet": ("dfsim.models.training", "dfsim.models.fmnist_resnet"),
    "fmnist-detector": ("dfsim.models.training_detector", "dfsim.models.fmnist_detector"),
    "fmnist-mirror": ("dfsim.models.fmnist_mirror", "dfsim.models.fmnist_mirror"),
}


def add_parser(sub):
    """The ``train`` subcommand and its options."""
    t = sub.add_parser(
        "train", help="train a built-in model into its committed weights file (deterministic)"
    )
    t.add_argument(
        "--model",
        choices=sorted(TRAINABLE),
        default="fmnist-resnet",
        help="the default classifier, the fmnist-scenes detector, or the reconstruction mirror",
    )
    t.add_argument(
        "--epochs",
        type=int,
        help="default: the model's own (classifier 12, detector 8, mirror at most 8)",
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument(
        "--out", help="weights file (default: the model's committed file in dfsim/models/weights)"
    )
    t.add_argument("--data-dir")
    _add_augment_options(t)
    return t


def _add_augment_options(t) -> None:
    """The ``--augment-*`` options, in their own group of the help."""
    a = t.add_argument_group(
        "compression-augmented training",
        "fine-tune the model from its committed weights with the features at a split point "
        "coded and decoded at a rate drawn per batch (Choi & Bajic), optionally with packet "
        "loss; the weights go to dfsim/models/weights/<model>_cat_<codec>_<split>[_loss].pt "
        "unless --out says otherwise (default --epochs 1)",
    )
    a.add_argument("--augment-split", metavar="SPLIT", help="turns it on: the split point")
    a.add_argument("--augment-codec", metavar="NAME", help="hevc, avif, jpeg-xl, jpeg or raw")
    a.add_argument(
        "--augment-rates",
        metavar="R,...",
        help="the codec's rate knob (hevc: qp, avif/jpeg-xl/jpeg: quality, raw: bits), one "
        "drawn per batch; 'lossless' is the 8-bit quantizer alone (e.g. lossless,22,27,32,37)",
    )
    a.add_argument(
        "--augment-loss-rates",
        metavar="P,...",
        help="also lose i.i.d. row packets at a rate drawn per batch from these (in [0, 1))",
    )
    a.add_argument(
        "--augment-fill", metavar="METHOD", help="lost packets' fill: zeros (default) or linear"
    )
    a.add_argument(
        "--augment-rows-per-packet", type=int, metavar="N", help="rows per lost packet (default 4)"
    )
    a.add_argument(
        "--augment-images",
        type=int,
        metavar="N",
        help="training images (classifier, default 60000) or scenes (detector, default 8000) "
        "per epoch",
    )
    a.add_argument(
        "--augment-lr",
        type=float,
        metavar="LR",
        help="initial learning rate, cosine-decayed to 0 (default: a tenth of training's, "
        "0.005 SGD / 2e-4 AdamW)",
    )
    a.add_argument(
        "--augment-eval-images",
        type=int,
        metavar="N",
        help="first N test images (default 2000) or held-out scenes (default 500) scored "
        "after each epoch and coded at each rate before and after",
    )


def cmd_train(args) -> int:
    import importlib

    import torch

    if args.threads < 1:
        raise UserError(f"--threads: must be >= 1, got {args.threads}")
    if args.augment_split is not None:
        return _train_augmented(args)
    for option, value in _augment_options(args):
        if value is not None:
            raise UserError(f"{option}: only with --augment-split (compression-augmented training)")
    trainer = importlib.import_module(TRAINABLE[args.model][0])
    defaults = importlib.import_module(TRAINABLE[args.model][1])
    torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else defaults.WEIGHTS_FILE
    kw = {"seed": args.seed, "data_dir": args.data_dir}
    if args.epochs is not None:
        kw["epochs"] = args.epochs
    result = trainer.train(out, **kw)
    scores = ", ".join(
        f"{k} {v:.4f}" for k, v in result.items() if k not in ("seconds", "epochs", "seed")
    )
    print(
        f"dfsim: trained {args.model} for {result.get('epochs', '?')} epochs in "
        f"{result['seconds']:.0f} s ({scores}); weights in {out}"
    )
    return 0


def _augment_options(args) -> list[tuple[str, object]]:
    """The ``--augment-*`` options besides ``--augment-split``, with their values."""
    return [
        (f"--{k.replace('_', '-')}", v)
        for k, v in vars(args).items()
        if k.startswith("augment_") and k != "augment_split"
    ]


def _train_augmented(args) -> int:
    """``dfsim train --augment-split ...``: fine-tune from the committed weights with the
    split features coded (dfsim.models.augmented_training)."""
    import torch

    from dfsim.models import augmented_training as at

    if args.model not in at.MODELS:
        raise UserError(
            f"--model: compression-augmented training is for {' and '.join(at.MODELS)}, "
            f"not {args.model}"
        )
    aug = at.parse_augmentation(
        args.augment_split,
        args.augment_codec,
        args.augment_rates,
        args.augment_loss_rates,
        args.augment_fill,
        4 if args.augment_rows_per_packet is None else args.augment_rows_per_packet,
    )
    if args.augment_eval_images is not None and args.augment_eval_images < 1:
        raise UserError(f"--augment-eval-images: must be >= 1, got {args.augment_eval_images}")
    out = Path(args.out) if args.out else at.default_out(args.model, aug)
    torch.set_num_threads(args.threads)
    result = at.finetune(
        args.model,
        out,
        aug,
        epochs=1 if args.epochs is None else args.epochs,
        images=args.augment_images,
        lr=args.augment_lr,
        seed=args.seed,
        data_dir=args.data_dir,
        eval_images=args.augment_eval_images,
    )
    scores = ", ".join(f"{k} {v:.4f}" for k, v in result.items() if k not in ("seconds", "epochs"))
    print(
        f"dfsim: fine-tuned {args.model} with its {args.augment_split} features coded by "
        f"{args.augment_codec} for {result['epochs']} epoch{'s' * (result['epochs'] != 1)} in "
        f"{result['seconds']:.0f} s "
        f"({scores}); weights in {out}"
    )
    return 0
