"""Meta-training end to end on tiny crops: the command, its outputs, resuming an interrupted run to
the same θ0, and the refusal of test sets (codec/meta/reptile.py, client/meta_train.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from client.cli import main
from codec.errors import ConfigError
from codec.meta.corpus import load_corpus
from codec.meta.initfile import read_init
from codec.meta.reptile import MetaConfig, finetune_meta, meta_train


@pytest.fixture
def corpus(tmp_path: Path, photo_crop: np.ndarray, portrait_crop: np.ndarray) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i, img in enumerate([photo_crop, portrait_crop, photo_crop[::-1], portrait_crop[:, ::-1]]):
        Image.fromarray(np.ascontiguousarray(img)).save(folder / f"im{i}.png")
    return folder


def tiny(**kw: object) -> MetaConfig:
    base = dict(width=6, hidden_layers=2, pe_frequencies=2, crop_width=24, crop_height=16, downscale=1,
                meta_steps=5, inner_steps=2, inner_pixels=64, checkpoint_every=2)  # fmt: skip
    return MetaConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_command_writes_theta0_and_curves(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t.spnri"
    code = main(["meta-train", "--dataset", str(corpus), "--out", str(out), "--size", "24x16@12", "--steps", "4",
                 "--inner-steps", "2", "--downscale", "1", "--val-steps", "10", "--quiet"])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    init = read_init(out)
    assert summary["hash"] == init.hash_hex and init.model == "spinr"
    assert init.meta["trained"]["method"] == "reptile" and init.meta["trained"]["meta_steps"] == 4
    curve = json.loads(out.with_suffix(".curve.json").read_text())
    assert curve["steps"] == [0, 10] and len(curve["psnr_meta"]) == len(curve["psnr_random"]) == 2
    assert all(5 < p < 60 for p in curve["psnr_meta"] + curve["psnr_random"])
    assert out.with_suffix(".curve.png").read_bytes()[:4] == b"\x89PNG"
    assert not out.with_name("t.ckpt.spnri").exists()  # a finished run leaves no checkpoint


def test_meta_training_moves_theta0_toward_the_tasks(corpus: Path) -> None:
    train, _ = load_corpus(corpus, 1)
    cfg = tiny(meta_steps=30, inner_steps=5, outer_lr=1.0, outer_lr_end=0.5, inner_pixels=0)
    init = meta_train(cfg, train)
    start = cfg.build()  # the same seed: θ0's random start
    flat0 = np.concatenate([p.detach().numpy().ravel() for p in start.parameters()])
    flat1 = np.concatenate([a.ravel() for u in init.weights.values() for a in u.values()])
    assert flat0.shape == flat1.shape and not np.array_equal(flat0, flat1)


def test_an_interrupted_run_resumes_to_the_same_theta0(corpus: Path, tmp_path: Path) -> None:
    train, _ = load_corpus(corpus, 1)
    whole = meta_train(tiny(), train)

    class Stop(Exception):
        pass

    def stop_after_3(done: int, total: int, seconds: float) -> None:
        if done == 3:
            raise Stop

    ckpt = tmp_path / "c.ckpt.spnri"
    with pytest.raises(Stop):
        meta_train(tiny(), train, ckpt, stop_after_3)
    assert read_init(ckpt).meta["checkpoint"]["step"] == 2
    resumed = meta_train(tiny(), train, ckpt)
    assert resumed.hash == whole.hash
    with pytest.raises(ConfigError, match=r"checkpoint .* is of another meta-training config"):
        meta_train(tiny(seed=3), train, ckpt)


def test_test_sets_are_never_trained_on(tmp_path: Path) -> None:
    kodak = tmp_path / "Kodak"
    kodak.mkdir()
    with pytest.raises(ConfigError, match=r"is a test set"):
        load_corpus(kodak, 4)


def test_batched_reptile_with_the_encoders_schedule_resumes_exactly(corpus: Path, tmp_path: Path) -> None:
    train, _ = load_corpus(corpus, 1)
    cfg = tiny(meta_batch=2, inner_decay=0.1, inner_steps=4)
    whole = meta_train(cfg, train)
    assert whole.meta["finetune"] == {"lr": cfg.inner_lr}  # what an encode from it fine-tunes at
    assert whole.meta["trained"]["meta_batch"] == 2 and whole.meta["trained"]["inner_decay"] == 0.1
    ckpt = tmp_path / "b.ckpt.spnri"

    def stop_after_3(done: int, total: int, seconds: float) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        meta_train(cfg, train, ckpt, stop_after_3)
    assert meta_train(cfg, train, ckpt).hash == whole.hash
    # Two tasks a step move θ0 differently from one (the mean of two fits, not one fit).
    assert meta_train(tiny(meta_batch=1, inner_decay=0.1, inner_steps=4), train).hash != whole.hash


def test_cosine_inner_schedule_ends_at_the_decayed_rate() -> None:
    import torch

    from codec.meta.reptile import adapt

    model = tiny().build()
    image = np.full((16, 24, 3), 128, np.uint8)
    seen: list[float] = []
    opt_lr = torch.optim.Adam.step

    def spy(self: torch.optim.Adam, *a: object, **k: object) -> object:
        seen.append(self.param_groups[0]["lr"])
        return opt_lr(self, *a, **k)

    torch.optim.Adam.step = spy  # type: ignore[method-assign]
    try:
        adapt(model, image, 5, 1e-3, 0, torch.Generator().manual_seed(0), decay=0.1)
    finally:
        torch.optim.Adam.step = opt_lr  # type: ignore[method-assign]
    assert seen[0] == pytest.approx(1e-3) and seen[-1] == pytest.approx(1e-4)
    assert all(a >= b for a, b in zip(seen, seen[1:], strict=False))


def test_the_inner_penalty_keeps_each_fit_near_theta0_and_is_carried_for_the_encoder(corpus: Path) -> None:
    import torch

    from codec.meta.reptile import adapt

    image = load_corpus(corpus, 1)[0][0][:16, :24]
    drift = []
    for penalty in (0.0, 300.0):
        torch.manual_seed(0)
        model = tiny().build()
        start = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()
        adapt(model, image, 30, 1e-2, 0, torch.Generator().manual_seed(0), penalty=penalty)
        drift.append(
            float((torch.cat([p.detach().reshape(-1) for p in model.parameters()]) - start).abs().mean())
        )
    assert drift[1] < 0.7 * drift[0], drift
    train, _ = load_corpus(corpus, 1)
    init = meta_train(tiny(inner_penalty=30.0), train)
    assert init.meta["finetune"] == {"lr": 3e-3, "residual_penalty": 30.0}
    assert init.meta["trained"]["inner_penalty"] == 30.0
    # spinr meta-train --finetune-lr replaces the rate and keeps the penalty.
    assert finetune_meta(tiny(inner_penalty=30.0), 2e-3) == {"lr": 2e-3, "residual_penalty": 30.0}
    assert init.hash != meta_train(tiny(), train).hash  # the penalty changes what θ0 learns


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [("--inner-decay", "0", r"inner_decay 0.0 is out of range"), ("--meta-batch", "0", r"meta_batch 0 must be"),
     ("--finetune-lr", "2", r"--finetune-lr 2.0 is out of range"),
     ("--inner-penalty", "-1", r"inner_penalty -1.0 is out of range: allowed 0..1e6")],
)  # fmt: skip
def test_bad_meta_training_options_are_named(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str
) -> None:
    code = main(["meta-train", "--dataset", str(corpus), "--out", str(tmp_path / "t.spnri"), "--size", "24x16@12",
                 "--steps", "1", "--inner-steps", "1", "--downscale", "1", "--quiet", flag, value])  # fmt: skip
    assert code != 0
    assert re.search(message, capsys.readouterr().err)
