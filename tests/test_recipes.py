"""AlexNet's recipe and its augmentation: PCA lighting, ten-crop testing, scale jittering, --recipe alexnet."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from PIL import Image

from _tiny import TINY, make_cifar_dataset, make_idx_dataset, make_image_folder, tiny_models  # noqa: F401
from cnnlab.data import ArrayDataset, BatchAugment, FolderDataset, TensorBatches
from cnnlab.data.lighting import PCALighting, rgb_pca
from cnnlab.data.views import five_crop_corners, ten_crop
from cnnlab.errors import ConfigError
from cnnlab.train import evaluate, evaluate_checkpoint, resolve_config, train
from cnnlab.train.config import RECIPE_DATA_SETTINGS, parse_scale_jitter

pytestmark = pytest.mark.usefixtures("tiny_models")

# -- PCA lighting


def _rgb_images(n: int = 12, side: int = 5, seed: int = 0) -> torch.Tensor:
    """Correlated RGB pixels (a shared brightness plus per-channel noise), so the covariance is not diagonal."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 180, (n, 1, side, side), generator=g)
    noise = torch.randint(0, 60, (n, 3, side, side), generator=g) * torch.tensor([1, 2, 3]).view(1, 3, 1, 1) // 3
    return (base + noise).clamp(0, 255).to(torch.uint8)


def test_rgb_pca_equals_numpy_covariance_eigen():
    images = _rgb_images()
    values, vectors = rgb_pca(images.split(5))  # three batches: the sums must not depend on the cut
    pixels = images.numpy().astype(np.float64).transpose(1, 0, 2, 3).reshape(3, -1) / 255.0
    np_values, np_vectors = np.linalg.eigh(np.cov(pixels))  # ascending, eigenvectors in columns
    assert values == pytest.approx(np_values[::-1].tolist(), rel=1e-9)
    for got, expected in zip(vectors, np_vectors[:, ::-1].T):
        sign = np.sign(np.dot(got, expected))  # an eigenvector's sign is arbitrary
        assert np.allclose(np.array(got) * sign, expected, atol=1e-9)
    with pytest.raises(ValueError, match="RGB"):
        rgb_pca([torch.zeros(2, 1, 4, 4, dtype=torch.uint8)])


def test_lighting_shift_is_eigenvectors_times_alpha_times_eigenvalues():
    # A rotation about the blue axis as the eigenvectors: shift = sum_i alpha_i * std * l_i * p_i by hand.
    c, s = math.cos(0.3), math.sin(0.3)
    lighting = PCALighting((0.04, 0.01, 0.002), ((c, s, 0.0), (-s, c, 0.0), (0.0, 0.0, 1.0)), alpha_std=0.1)
    alphas = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    a = [0.1 * 1.0 * 0.04, 0.1 * -2.0 * 0.01, 0.1 * 0.5 * 0.002]
    expected = [a[0] * c - a[1] * s, a[0] * s + a[1] * c, a[2]]
    assert lighting.shifts(alphas)[0].tolist() == pytest.approx(expected, abs=1e-15)


def test_batch_augment_shifts_every_pixel_of_an_image_alike():
    images = _rgb_images(n=4)
    lighting = PCALighting(*rgb_pca([images]), alpha_std=0.1)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    plain = BatchAugment(mean=mean, std=std, num_classes=3)
    lit = BatchAugment(mean=mean, std=std, num_classes=3, lighting=lighting)
    y = torch.zeros(4, dtype=torch.int64)
    x_lit, _ = lit.train(images, y, torch.Generator().manual_seed(5), random.Random(0))
    x_plain, _ = plain.train(images, y, torch.Generator().manual_seed(5), random.Random(0))
    alphas = torch.randn(4, 3, generator=torch.Generator().manual_seed(5))  # the draw the augment makes
    expected = lighting.shifts(alphas) / torch.tensor(std)  # a 0-1 shift, in normalized units
    diff = x_lit - x_plain
    assert torch.allclose(diff, expected[:, :, None, None].expand_as(diff), atol=1e-5)
    assert diff.abs().max() > 0


# -- ten crops


def test_five_crop_corners_by_hand():
    assert five_crop_corners(6, 7, 4) == [(0, 0), (0, 3), (2, 0), (2, 3), (1, 1)]
    assert five_crop_corners(256, 256, 227) == [(0, 0), (0, 29), (29, 0), (29, 29), (14, 14)]
    with pytest.raises(ValueError, match="does not fit"):
        five_crop_corners(4, 8, 5)


def test_ten_crop_views_are_the_crops_and_their_mirrors():
    x = torch.arange(2 * 36).view(2, 1, 6, 6)
    views = list(ten_crop(x, 4))
    assert len(views) == 10
    assert torch.equal(views[1], x[..., 0:4, 2:6]) and torch.equal(views[4], x[..., 1:5, 1:5])
    assert torch.equal(views[7], x[..., 2:6, 0:4].flip(-1))


def _tensor_data(n: int = 20, side: int = 8) -> ArrayDataset:
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, 1, side, side), generator=g, dtype=torch.uint8)
    return ArrayDataset(images, torch.randint(0, 4, (n,), generator=g), list("abcd"), "generated")


def test_evaluate_ten_crop_averages_softmax_over_padded_crops():
    data = _tensor_data()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    augment = BatchAugment(mean=(0.5,), std=(0.25,), num_classes=4, crop_padding=2)
    result = evaluate(model, TensorBatches(data, 7, "cpu", train=False), augment, ten_crop=True, topk=2)
    padded = torch.nn.functional.pad(data.images, (2, 2, 2, 2))  # (N, 1, 12, 12)
    probs = 0
    with torch.no_grad():
        for top, left in ((0, 0), (0, 4), (4, 0), (4, 4), (2, 2)):
            crop = padded[..., top : top + 8, left : left + 8]
            for view in (crop, crop.flip(-1)):
                probs = probs + model(augment.eval(view)).softmax(1)
    expected = (probs.argmax(1) == data.labels).double().mean().item()
    assert result["accuracy"] == pytest.approx(expected)
    loss = torch.nn.functional.nll_loss((probs / 10).log(), data.labels).item()
    assert result["loss"] == pytest.approx(loss, rel=1e-5)
    centre = list(augment.ten_crop(data.images[:3]))[4]  # the centre of the padded image is the image
    assert torch.equal(centre, augment.eval(data.images[:3]))
    with pytest.raises(ConfigError, match="--crop-padding above 0"):
        next(BatchAugment(mean=(0.5,), std=(0.25,), num_classes=4).ten_crop(data.images))


# -- scale jittering on image folders


def _folder_image(tmp_path, width: int = 40, height: int = 20):
    folder = tmp_path / "one" / "a"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / "0.png")
    return tmp_path / "one", folder / "0.png"


def _windows(img: Image.Image, size: int) -> list[np.ndarray]:
    a = np.asarray(img)
    return [a[t : t + size, c : c + size] for t in range(a.shape[0] - size + 1) for c in range(a.shape[1] - size + 1)]


def test_scale_jittered_crop_is_a_window_of_the_rescaled_image(tmp_path):
    root, path = _folder_image(tmp_path)
    torch.manual_seed(0)
    fixed = FolderDataset(root, 16, scale=(24, 24))
    item = fixed[0][0].permute(1, 2, 0).numpy()
    rescaled = Image.open(path).convert("RGB").resize((48, 24), Image.BILINEAR)  # shorter side 20 -> 24
    assert any(np.array_equal(item, w) for w in _windows(rescaled, 16))
    jittered = FolderDataset(root, 16, scale=(20, 30))
    sides = set()
    for _ in range(12):
        crop = jittered[0][0]
        assert crop.shape == (3, 16, 16)
        sides.add(crop.float().mean().item())
    assert len(sides) > 1  # random scales and positions
    assert jittered.eval_side == 25 and FolderDataset(root, 16).eval_side == round(16 / 0.875)
    canvas = FolderDataset(root, 16, train=False, scale=(20, 30), canvas=True)
    assert canvas[0][0].shape == (3, 25, 25)  # the centre square ten-crop testing cuts from
    with pytest.raises(ValueError, match="at least the crop size"):
        FolderDataset(root, 16, scale=(12, 30))


@pytest.mark.parametrize(("text", "expected"), [("256:512", (256, 512)), ("256", (256, 256)), (" 384 ", (384, 384))])
def test_parse_scale_jitter(text, expected):
    assert parse_scale_jitter(text) == expected


@pytest.mark.parametrize("text", ["512:256", "a:b", "1:2:3", "0", ""])
def test_parse_scale_jitter_refuses(text):
    with pytest.raises(ConfigError, match="scale_jitter is A:B"):
        parse_scale_jitter(text)


# -- the recipe


def test_alexnet_recipe_is_the_papers():
    cfg = resolve_config({"recipe": "alexnet", "model": "alexnet"})
    # Krizhevsky et al. 2012, Sec. 5: batch 128, momentum 0.9, weight decay 5e-4, lr 0.01 / 10 on plateaus.
    assert (cfg.batch_size, cfg.optimizer, cfg.momentum, cfg.weight_decay) == (128, "sgd", 0.9, 5e-4)
    assert (cfg.lr, cfg.schedule, cfg.gamma) == (0.01, "plateau", 0.1)
    # Sec. 4.1-4.2: dropout 0.5, mirror images, PCA lighting with alpha ~ N(0, 0.1), ten-crop test.
    assert (cfg.drop_rate, cfg.hflip, cfg.pca_lighting, cfg.ten_crop) == (0.5, True, 0.1, True)
    assert cfg.crop_padding == RECIPE_DATA_SETTINGS["alexnet"]["tensor"]["crop_padding"] > 0
    folder = resolve_config({"recipe": "alexnet", "model": "alexnet", "data": "/some/images"})
    assert (folder.image_size, folder.scale_jitter, folder.crop_padding) == (227, "256", 0)
    assert resolve_config({"recipe": "alexnet", "model": "m", "crop_padding": 2}).crop_padding == 2  # flags win


def _run(tmp_path, name: str, **kw) -> dict:
    base = dict(model=TINY, epochs=1, batch_size=16, eval_batch_size=16, threads=1, quiet=True, download=False,
                tensorboard=False, out=str(tmp_path / name), amp="off")
    return train(resolve_config({**base, **kw}))


def test_alexnet_recipe_on_grayscale_skips_lighting_and_tests_ten_crops(tmp_path, capsys):
    data = make_idx_dataset(tmp_path / "fm", n_train=96, n_test=32)
    results = _run(tmp_path, "fm-run", recipe="alexnet", data_dir=str(data), val_split=16, drop_rate=0.0)
    assert "--pca-lighting skipped: fashion-mnist is grayscale" in capsys.readouterr().err
    assert results["test_views"] == 10 and 0 <= results["test_accuracy"] <= results["top5_accuracy"] <= 1
    again = evaluate_checkpoint(tmp_path / "fm-run" / "best.pt", device="cpu", ten_crop=True)
    assert again["accuracy"] == pytest.approx(results["test_accuracy"])
    assert again["top5_accuracy"] == pytest.approx(results["top5_accuracy"])


def test_pca_lighting_on_rgb_tensor_data_trains(tmp_path, capsys):
    make_cifar_dataset(tmp_path / "c", per_batch=16)
    results = _run(tmp_path, "c-run", model=TINY, data="cifar10", data_dir=str(tmp_path / "c"), val_split=16,
                   in_chans=3, pca_lighting=0.1, crop_padding=4, ten_crop=True)
    assert "skipped" not in capsys.readouterr().err and results["test_views"] == 10


def test_alexnet_recipe_on_an_image_folder(tmp_path):
    folder = make_image_folder(tmp_path / "pets", per_class=6, size=24)
    results = _run(tmp_path, "f-run", recipe="alexnet", data=str(folder), image_size=16, scale_jitter="18:22",
                   in_chans=3, val_split=3, batch_size=6, eval_batch_size=6, workers=0, drop_rate=0.0)
    assert results["test_views"] == 10 and results["test_images"] == 18
    stored = json.loads((tmp_path / "f-run" / "config.json").read_text())
    assert stored["scale_jitter"] == "18:22" and stored["pca_lighting"] == 0.1
    again = evaluate_checkpoint(tmp_path / "f-run" / "last.pt", device="cpu", ten_crop=True)
    assert again["accuracy"] == pytest.approx(results["test_accuracy"]) and again["ten_crop"] is True


def test_augmentations_that_do_not_fit_the_data_are_refused(tmp_path):
    data = make_idx_dataset(tmp_path / "fm", n_train=64, n_test=16)
    common = {"data_dir": str(data), "val_split": 16}
    with pytest.raises(ConfigError, match="--scale-jitter resizes image-folder images"):
        _run(tmp_path, "a", scale_jitter="32:40", **common)
    with pytest.raises(ConfigError, match="ten-crop testing on fashion-mnist .* --crop-padding above 0"):
        _run(tmp_path, "b", ten_crop=True, **common)
    folder = make_image_folder(tmp_path / "pets", per_class=2, size=20)
    with pytest.raises(ConfigError, match="smallest scale 12 is below the crop size 16"):
        _run(tmp_path, "c", data=str(folder), image_size=16, scale_jitter="12:20", val_split=0, workers=0,
             batch_size=2)
    with pytest.raises(ConfigError, match=r"the alexnet recipe sets one: add --drop-rate none"):
        _run(tmp_path, "d", model="tiny_nodrop_test_cnn", recipe="alexnet", **common)


def test_ten_crop_refusal_from_eval_names_the_padding(tmp_path):
    data = make_idx_dataset(tmp_path / "fm", n_train=64, n_test=16)
    _run(tmp_path, "r", data_dir=str(data), val_split=16)
    with pytest.raises(ConfigError, match="--crop-padding above 0"):
        evaluate_checkpoint(tmp_path / "r" / "last.pt", device="cpu", ten_crop=True)
