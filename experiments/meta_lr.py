"""The learning rate an encode from a θ0 fine-tunes at, chosen by measurement on held-out sun80 crops
(Meta-SGD's learned rate, one per network, found by search rather than by gradient): every candidate
rate fine-tunes θ0 with the real encoder for ``--steps`` steps and the fit is quantized to every rate
of ``--bpp-list`` (experiments.meta_residual); the candidate with the best mean PSNR over images and
rates wins and, with ``--write``, is stored in the θ0 file (``meta["finetune"]["lr"]``; the content
hash, which names θ0 in streams, does not change). Only a training corpus may be tuned on.

    python -m experiments.meta_lr --theta0 codec/meta/data/spinr-192x128-0.5bpp.spnri \\
        --dataset ../shared/datasets/sun80 --images 2 --lrs 1e-3,2e-3,3e-3,5e-3 --write
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import numpy as np


def score(per_image: list[dict[str, Any]], bpps: list[float]) -> float:
    """Mean PSNR over images and rates; -inf when a rate was not reached (the rate is not usable)."""
    values = [r["psnr"] for p in per_image for r in p["rows"] if "psnr" in r]
    if len(values) != len(per_image) * len(bpps):
        return -math.inf
    return float(np.mean(values))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--theta0", required=True, help="the .spnri file to tune (and, with --write, update)")
    ap.add_argument("--dataset", required=True, help="the training corpus (sun80); its held-out images")
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--lrs", default="1e-3,2e-3,3e-3,5e-3")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--bpp-list", default="0.3,0.4,0.5")
    ap.add_argument("--write", action="store_true", help="store the winner in the θ0 file")
    ap.add_argument("--out", help="write every candidate's rows here (JSON)")
    ap.add_argument("--net", default="16x3:10", help="WIDTHxHIDDEN:L, θ0's network (default 16x3:10)")
    a = ap.parse_args(argv)
    import torch

    from codec.meta.corpus import center, load_corpus
    from codec.meta.initfile import read_init, write_init
    from experiments.meta_residual import parse_net, run_recipe

    torch.set_num_threads(1)
    _, val = load_corpus(a.dataset, 4)
    imgs = [center(v, 192, 128) for v in val[: a.images]]
    bpps = [float(b) for b in a.bpp_list.split(",") if b]
    tried: list[dict[str, Any]] = []
    for lr in [float(x) for x in a.lrs.split(",") if x]:
        recipe = {"init": "meta", "steps": a.steps, "lr": lr, "pen": 0.0, "norm": "l1", "t0": a.theta0}
        per = [run_recipe(img, recipe, bpps, parse_net(a.net)) for img in imgs]
        entry = {"lr": lr, "score": round(score(per, bpps), 3), "per_image": per}
        tried.append(entry)
        print(json.dumps({"lr": lr, "score": entry["score"],
                          "float": [p["float_psnr"] for p in per]}), flush=True)  # fmt: skip
    if a.out:
        with open(a.out, "w") as f:
            json.dump(tried, f, indent=1)
    best = max(tried, key=lambda e: e["score"])
    print(json.dumps({"best_lr": best["lr"], "score": best["score"]}))
    if a.write and math.isfinite(best["score"]):
        init = read_init(a.theta0)
        init.meta["finetune"] = {
            "lr": best["lr"],
            "tuned": {"steps": a.steps, "bpp": bpps, "images": len(imgs),
                      "scores": {str(e["lr"]): e["score"] for e in tried}},
        }  # fmt: skip
        write_init(a.theta0, init)
    return 0


if __name__ == "__main__":
    sys.exit(main())
