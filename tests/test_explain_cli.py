"""On a trained LeNet-5: the sanity check decorrelates, class images and t-SNE work; `cnnlab explain` end to end.

The fixture trains LeNet-5 (ReLU) for a few seconds on the real Fashion-MNIST when it is on this machine,
else on a generated Fashion-MNIST-shaped set whose classes are learnable (tests/_tiny.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _tiny import TINY, make_idx_dataset, make_image_folder, tiny_models  # noqa: F401  (tiny_models is a fixture)
from cnnlab.cli import main
from cnnlab.explain import (
    ATTRIBUTION_METHODS,
    ModelState,
    class_images,
    knn_purity,
    penultimate_features,
    sanity_check,
    tsne,
)
from cnnlab.explain.report import METHODS
from cnnlab.train import load_trained_model
from cnnlab.train.inputs import augment_from_meta

pytestmark = pytest.mark.slow
FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    """A LeNet-5 (ReLU) run trained for two epochs of 6000 images (not a time budget); (run dir, data folder)."""
    root = tmp_path_factory.mktemp("explain")
    if (FASHION / "t10k-images-idx3-ubyte.gz").is_file():
        data = FASHION
    else:
        data = make_idx_dataset(root / "data", n_train=3000, n_test=600)
    argv = ["train", "lenet5_relu", "--data", "fashion-mnist", "--data-dir", str(data), "--epochs", "2",
            "--train-subset", "6000", "--batch-size", "64", "--val-split", "500", "--threads", "1", "--quiet",
            "--device", "cpu", "--no-download", "--out", str(root / "run")]
    assert main(argv) == 0
    return root / "run", data


def _test_batch(run: Path, count: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, object]:
    from cnnlab.train.inputs import load_eval_source

    model, ckpt = load_trained_model(run)
    meta = ckpt.data
    source = load_eval_source(meta, "test", count, torch.device("cpu"), ckpt.config)
    x_u8, y = next(iter(source.batches(0)))
    return model, augment_from_meta(meta).eval(x_u8), y, meta


@pytest.mark.parametrize("method", ["saliency", "gradcam"])
def test_sanity_check_decorrelates_gradient_maps_on_a_trained_network(lenet_run, method):
    model, x, _, _ = _test_batch(lenet_run[0], 16)
    before = ModelState.capture(model)
    check = sanity_check(model, x, method)
    assert check.rank_correlation[0] == pytest.approx(1.0)
    assert check.rank_correlation[-1] < 0.5, check.rank_correlation  # Adebayo 2018: the map must change
    assert before.changes() == []


def test_class_images_are_classified_as_their_class(lenet_run):
    model, _, _, meta = _test_batch(lenet_run[0], 1)
    mean, std = torch.tensor(meta.mean), torch.tensor(meta.std)
    x = class_images(model, range(10), (1, meta.input_size, meta.input_size), ((0 - mean) / std,
                     (1 - mean) / std))
    with torch.no_grad():
        predicted = model(x).argmax(1)
    assert (predicted == torch.arange(10)).sum() >= 7, predicted


def test_tsne_of_the_penultimate_features_keeps_classes_together(lenet_run):
    pytest.importorskip("openTSNE", reason="openTSNE is an optional dependency (cnnlab[explain])")
    model, x, y, _ = _test_batch(lenet_run[0], 600)
    features = penultimate_features(model, x)
    points = tsne(features, seed=0, threads=1)
    chance = float(((torch.bincount(y) / len(y)) ** 2).sum())
    purity = knn_purity(points, y.numpy(), 10)
    assert purity > max(3 * chance, 0.5), (purity, chance)


def test_cnnlab_explain_all_methods_on_a_run(lenet_run, tmp_path, capsys):
    pytest.importorskip("openTSNE", reason="openTSNE is an optional dependency (cnnlab[explain])")
    out = tmp_path / "explained"
    argv = ["explain", str(lenet_run[0]), "--method", "all", "--from-test", "3", "--out", str(out), "--max-images",
            "400", "--steps", "15", "--samples", "3", "--sanity-steps", "2", "--k", "4", "--threads", "1",
            "--device", "cpu", "--quiet", "--format", "json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == json.loads((out / "summary.json").read_text())
    names = set(summary["files"])
    for method in METHODS:
        if method == "activations":
            assert {"activations-0.png", "activations.npz"} <= names
        else:
            assert {f"{method}.png", f"{method}.npz"} <= names, method
    assert "sanity-maps.png" in names and "inputs.npz" in names
    for name in names:
        assert (out / name).stat().st_size > 0
    with Image.open(out / "gradcam.png") as img:
        assert img.width > 200 and img.height > 200
    saliency = np.load(out / "saliency.npz")
    assert saliency["maps"].shape == (3, 28, 28) and saliency["targets"].shape == (3,)
    inputs = np.load(out / "inputs.npz")
    assert inputs["images"].dtype == np.uint8 and (inputs["targets"] == inputs["probabilities"].argmax(1)).all()
    assert set(np.load(out / "sanity.npz").files) >= {f"{m}/rank_correlation" for m in ("saliency", "gradcam")}


def _error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnlab: error:") and "\n" not in err and "Traceback" not in err
    return err


def test_cnnlab_explain_user_errors_are_one_line(lenet_run, tmp_path, capsys):
    run, out = str(lenet_run[0]), str(tmp_path / "o")
    common = ["--out", out, "--device", "cpu", "--quiet"]
    assert "did you mean saliency" in _error(["explain", run, "--method", "salency", "--from-test", "1", *common],
                                             capsys)
    assert "no layer 'stages.9'" in _error(["explain", run, "--method", "gradcam", "--layer", "stages.9",
                                            "--from-test", "1", *common], capsys)
    assert "out of range" in _error(["explain", run, "--method", "saliency", "--target", "12", "--from-test", "1",
                                     *common], capsys)
    assert "no class 'Shoe'" in _error(["explain", run, "--method", "saliency", "--target", "Shoe", "--from-test",
                                        "1", *common], capsys)
    assert "does not exist" in _error(["explain", run, "--method", "saliency", "--images", str(tmp_path / "no.png"),
                                       *common], capsys)
    assert "--from-test N" in _error(["explain", run, "--method", "saliency", *common], capsys)
    assert "does not exist" in _error(["explain", str(tmp_path / "nothing"), "--method", "filters", *common], capsys)
    assert "attribution methods, not pca" in _error(["explain", run, "--method", "sanity", "--sanity-methods", "pca",
                                                     "--from-test", "1", *common], capsys)
    assert "image files carry no label" in _error(["explain", run, "--method", "saliency", "--target", "label",
                                                   "--images", str(_noise_png(tmp_path)), *common], capsys)


def _noise_png(folder: Path) -> Path:
    path = folder / "query.png"
    Image.fromarray((np.random.default_rng(0).random((40, 30)) * 255).astype(np.uint8)).save(path)
    return path


def test_cnnlab_explain_test_images_against_their_labels(lenet_run, tmp_path):
    out = tmp_path / "labels"
    argv = ["explain", str(lenet_run[0]), "--method", "gradcam", "--from-test", "5", "--target", "label", "--out",
            str(out), "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    inputs = np.load(out / "inputs.npz")
    assert (inputs["targets"] == inputs["labels"]).all() and (inputs["labels"] >= 0).all()


def test_cnnlab_explain_image_files_with_a_class_name_target(lenet_run, tmp_path, capsys):
    image = _noise_png(tmp_path)
    out = tmp_path / "files"
    argv = ["explain", str(lenet_run[0]), "--method", "saliency,occlusion", "--images", str(image), str(image),
            "--target", "trouser", "--out", str(out), "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["targets"] == ["Trouser", "Trouser"] and summary["images"] == ["query.png", "query.png"]
    assert np.load(out / "occlusion.npz")["scores"].shape[0] == 2


@pytest.mark.usefixtures("tiny_models")
def test_cnnlab_explain_on_an_rgb_image_folder_run(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "pets", per_class=8, size=20)
    argv = ["train", TINY, "--data", str(folder), "--epochs", "1", "--batch-size", "8", "--threads", "1",
            "--workers", "0", "--val-split", "0", "--quiet", "--device", "cpu", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    out = tmp_path / "explained"
    image = next((folder / "test" / "dog").glob("*.png"))
    argv = ["explain", str(tmp_path / "run"), "--method", "guided-backprop", "gradcam", "neighbours", "top-patches",
            "filters", "--images", str(image), "--k", "2", "--neighbours", "2", "--out", str(out), "--device", "cpu",
            "--quiet"]
    assert main(argv) == 0
    guided = np.load(out / "guided-backprop.npz")["maps"]
    assert guided.shape[:2] == (1, 3)  # a map per colour channel
    assert np.load(out / "filters.npz")["weights"].shape[1] == 3
    assert np.load(out / "neighbours.npz")["feature_neighbours"].shape == (1, 2)


def test_every_attribution_method_is_a_cli_method():
    assert set(ATTRIBUTION_METHODS) <= set(METHODS)
