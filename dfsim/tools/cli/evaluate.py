"""``dfsim evaluate``: the full model without loss: a classifier's top-1 on the
Fashion-MNIST test set, a detector's COCO mAP on fmnist-scenes test scenes, or the
reconstruction mirror's PSNR/SSIM."""

from __future__ import annotations

import json
import time

from dfsim.errors import UserError


def add_parser(sub):
    """The ``evaluate`` subcommand and its options."""
    e = sub.add_parser(
        "evaluate",
        help="the full model without loss: top-1 on the Fashion-MNIST test set, a "
        "detector's COCO mAP on fmnist-scenes test scenes, or the reconstruction mirror's "
        "PSNR/SSIM on the Fashion-MNIST test set",
    )
    e.add_argument(
        "--model",
        default="fmnist-resnet",
        help="a registered model, or fmnist-mirror (default: fmnist-resnet)",
    )
    e.add_argument("--scenes", type=int, default=1000, help="detector: test scenes")
    e.add_argument("--weights")
    e.add_argument("--data-dir")
    return e


def cmd_evaluate(args) -> int:
    from dfsim.models import load_model
    from dfsim.models.inference import prepare_for_inference, run_batched

    if args.scenes < 1:
        raise UserError(f"--scenes: must be >= 1, got {args.scenes}")
    if args.model == "fmnist-mirror":
        return _evaluate_mirror(args)
    model = load_model(args.model, weights=args.weights)
    t0 = time.perf_counter()
    full = prepare_for_inference(model.full())
    if getattr(model, "postprocess", None) is not None:  # a detector: its fmnist-scenes test set
        from dfsim.data.scenes import FashionScenes
        from dfsim.tasks.detection import Detection

        test = FashionScenes(scenes=args.scenes, dir=args.data_dir).load(model.input_shape)
        task = Detection()
        task.bind(model, model.default_split)
        pred = task.predict(run_batched(full, model.normalise(test.images), 250))
        scores = {
            k: v for k, v in task.evaluate(pred, pred, test.boxes).items() if k != "agreement"
        }
    else:
        from dfsim.data.datasets import load_fashion_mnist

        test = load_fashion_mnist("test", args.data_dir)
        pred = run_batched(full, model.normalise(test.images), 1000).argmax(axis=1)
        scores = {"top1": float((pred == test.labels).mean())}
    print(
        json.dumps(
            {
                "model": model.name,
                "images": len(test),
                **scores,
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )
    )
    return 0


def _evaluate_mirror(args) -> int:
    """The reconstruction mirror without loss: mean PSNR and SSIM of its images of the
    Fashion-MNIST test set's 8-bit quantized ``add_1`` features."""
    import torch

    from dfsim.data.datasets import load_fashion_mnist
    from dfsim.models import fmnist_mirror as mirror
    from dfsim.models import load_model

    # the features come from the installed fmnist-resnet's edge
    classifier = load_model("fmnist-resnet").weights_id
    net = mirror.load_mirror(args.weights, key="--weights", classifier_id=classifier)
    t0 = time.perf_counter()
    test = load_fashion_mnist("test", args.data_dir)
    recon = mirror.reconstruct(net, mirror.quantized_features(test.images))
    psnr, ssim = mirror.psnr_ssim(recon, torch.from_numpy(test.images).float() / 255.0)
    scores = {"psnr": psnr, "ssim": ssim, "seconds": round(time.perf_counter() - t0, 2)}
    print(json.dumps({"model": "fmnist-mirror", "images": len(test.images), **scores}))
    return 0
