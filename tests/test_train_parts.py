"""Training building blocks: schedules, optimizer groups, EMA, checkpoints, mixed precision, fine-tuning."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torch import nn

import cnnlab
from _tiny import TINY, TINY_NODROP, tiny_models  # noqa: F401  (fixture)
from cnnlab.errors import CheckpointError
from cnnlab.files import save_torch_atomic as save_atomic
from cnnlab.train import TrainConfig, load_checkpoint, load_run_checkpoint, runtime
from cnnlab.train.build import build_model, freeze_backbone, load_initial_weights, split_outputs
from cnnlab.train.checkpoint import capture_rng, restore_rng
from cnnlab.train.optim import ModelEma, build_optimizer, param_groups
from cnnlab.train.schedules import Plateau, cosine, lr_at, multistep, onecycle, step_decay, warmup

# -- schedules -----------------------------------------------------------------------------------------


def test_warmup_and_decays():
    assert [warmup(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert [step_decay(s, 10, 0.1) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.1, pytest.approx(0.01)]
    assert [multistep(s, [5, 8], 0.5) for s in (4, 5, 7, 8)] == [1.0, 0.5, 0.5, 0.25]
    values = [cosine(s, 100) for s in range(100)]
    assert values[0] == 1.0 and all(a >= b for a, b in zip(values, values[1:])) and values[-1] < 1e-3
    assert cosine(50, 100) == pytest.approx(0.5)
    assert cosine(100, 100, floor=0.1) == pytest.approx(0.1)


def test_onecycle_rises_then_falls():
    values = [onecycle(s, 100, peak=0.3) for s in range(100)]
    top = max(range(100), key=values.__getitem__)
    assert top == 30 and values[top] == pytest.approx(1.0)
    assert values[0] == pytest.approx(1 / 25) and values[-1] < 1e-2


def test_lr_at_converts_epochs_to_steps_and_warms_up():
    kw = {"base_lr": 0.1, "total": 100, "steps_per_epoch": 10}
    assert lr_at(0, name="step", step_epochs=3, warmup_steps=5, **kw) == pytest.approx(0.02)
    assert lr_at(29, name="step", step_epochs=3, **kw) == pytest.approx(0.1)
    assert lr_at(30, name="step", step_epochs=3, **kw) == pytest.approx(0.01)
    assert lr_at(45, name="multistep", milestones=[4], gamma=0.5, **kw) == pytest.approx(0.05)
    assert lr_at(70, name="plateau", plateau_reductions=2, **kw) == pytest.approx(0.001)
    cos = [lr_at(s, name="cosine", warmup_steps=10, **kw) for s in range(100)]
    assert max(cos) == pytest.approx(0.1) and cos.index(max(cos)) == 9
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_at(0, name="linear", **kw)


def test_plateau_reduces_after_patience():
    plateau = Plateau(patience=2, threshold=0.01)
    history = [0.5, 0.6, 0.605, 0.6, 0.59, 0.7, 0.69, 0.69, 0.69]
    reduced = [plateau.observe(a) for a in history]
    assert reduced == [False, False, False, False, True, False, False, False, True]
    assert plateau.reductions == 2
    clone = Plateau()
    clone.load_state_dict(plateau.state_dict())
    assert clone == plateau


# -- optimizers and EMA --------------------------------------------------------------------------------


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def test_no_decay_group_holds_norms_and_biases():
    net = _net()
    groups = param_groups(net, 5e-4, norm_bias_decay=False)
    decay, no_decay = groups
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(net[0].weight), id(net[3].weight)}
    assert len(no_decay["params"]) == 4  # conv bias, BN weight and bias, linear bias
    assert len(param_groups(net, 5e-4)) == 1
    sgd = build_optimizer(net, "sgd", 0.1, 1e-4, momentum=0.9, nesterov=True)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"]
    adamw = build_optimizer(net, "adamw", 1e-3, 0.05, betas=(0.8, 0.9))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["betas"] == (0.8, 0.9)
    with pytest.raises(ValueError, match="no trainable parameters"):
        param_groups(net.requires_grad_(False), 0.0)


def _net_without_bias_before_norm() -> nn.Module:
    # A conv bias followed by batch norm has a gradient of rounding error only, which Adam scales up to
    # whole steps of either sign: the two kernels round differently, so such a parameter cannot be compared.
    return nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def test_adamw_takes_the_fused_kernel_on_the_cpu_and_steps_as_the_foreach_one():
    net = _net_without_bias_before_norm()
    fused = build_optimizer(net, "adamw", 1e-2, 0.05)
    assert fused.defaults["fused"] and not fused.defaults["foreach"]
    reference = _net_without_bias_before_norm()
    reference.load_state_dict(net.state_dict())
    start = net[0].weight.detach().clone()
    foreach = torch.optim.AdamW(reference.parameters(), lr=1e-2, weight_decay=0.05, foreach=True)
    x = torch.randn(8, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    for model, opt in ((net, fused), (reference, foreach)):
        for _ in range(3):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for p, q in zip(net.parameters(), reference.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert (net[0].weight - start).abs().max() > 1e-3  # it did step


def test_ema_follows_the_weights():
    net = _net()
    ema = ModelEma(net, decay=0.5)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net)  # first update: decay min(0.5, 2/11)
    d = 2 / 11
    for name, p in net.named_parameters():
        assert torch.allclose(ema.module.state_dict()[name], d * before[name] + (1 - d) * p)
    assert not any(p.requires_grad for p in ema.module.parameters())


# -- checkpoints and random states ---------------------------------------------------------------------


def test_save_atomic_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "last.pt"
    save_atomic({"step": torch.tensor(1)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        save_atomic({"bad": Unpicklable()}, path)
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_load_checkpoint_is_weights_only(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"obj": random.Random(0)}, path)
    with pytest.raises(ValueError, match="cannot load checkpoint") as err:
        load_checkpoint(path)
    assert isinstance(err.value, CheckpointError) and "random.Random" in str(err.value)
    assert "weights_only" not in str(err.value) and "\n" not in str(err.value)  # no advice to load unsafely


@pytest.mark.parametrize(
    "content", [b"", b"garbage, not a checkpoint\n" * 8, b"PK\x03\x04" + bytes(100)], ids=["empty", "text", "zip-like"]
)
def test_damaged_checkpoint_is_one_clear_line(tmp_path, content):
    path = tmp_path / "last.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="is not a cnnlab checkpoint or is damaged") as err:
        load_checkpoint(path)
    message = str(err.value)
    assert "\n" not in message and "weights_only" not in message and str(path) in message


def test_a_truncated_checkpoint_is_damaged(tmp_path):
    path = tmp_path / "last.pt"
    save_atomic({"w": torch.zeros(100)}, path)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(CheckpointError, match="is damaged"):
        load_checkpoint(path)


def test_a_state_dict_is_not_a_run_checkpoint(tmp_path):
    save_atomic({"w": torch.zeros(1)}, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="not a cnnlab training checkpoint"):
        load_run_checkpoint(tmp_path / "weights.pt")


def test_missing_best_checkpoint_points_at_last(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist$") as err:
        load_checkpoint(tmp_path / "best.pt")
    assert isinstance(err.value, CheckpointError)
    save_atomic({"w": torch.zeros(1)}, tmp_path / "last.pt")
    with pytest.raises(FileNotFoundError, match=r"validation split .*last\.pt"):
        load_checkpoint(tmp_path / "best.pt")
    assert torch.equal(load_checkpoint(tmp_path)["w"], torch.zeros(1))  # a run directory means its last.pt


def test_rng_states_round_trip(tmp_path):
    gen, mix = torch.Generator().manual_seed(3), random.Random(4)
    state = capture_rng(gen, mix)
    save_atomic(state, tmp_path / "rng.pt")

    def draws():
        return (
            random.random(),
            np.random.rand(),
            torch.rand(2).tolist(),
            torch.rand(2, generator=gen).tolist(),
            mix.random(),
        )

    first = draws()
    restore_rng(load_checkpoint(tmp_path / "rng.pt"), gen, mix)
    assert draws() == first


# -- mixed precision -------------------------------------------------------------------------------------


def test_amp_on_cpu_depends_on_fast_bf16(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: False)
    assert runtime.resolve_amp("auto", cpu) == (None, None)  # not asked for: fp32 without a note
    dtype, note = runtime.resolve_amp("bf16", cpu)
    assert dtype is None and "no fast bf16" in note and "\n" not in note
    assert runtime.resolve_amp("auto", torch.device("mps")) == (None, None)
    assert "mixed precision off" in runtime.resolve_amp("bf16", torch.device("mps"))[1]
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)
    assert runtime.resolve_amp("auto", cpu) == (torch.bfloat16, None)
    assert runtime.resolve_amp("off", cpu) == (None, None)
    with pytest.raises(ValueError, match="fp16 autocast is for CUDA"):
        runtime.resolve_amp("fp16", cpu)


def _proc_stat(tmp_path, name: str, per_cpu_busy_idle: list[tuple[int, int]]) -> str:
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    for i, (busy, idle) in enumerate(per_cpu_busy_idle):
        lines.append(f"cpu{i} {busy} 0 0 {idle} 0 0 0 0 0 0")
    path = tmp_path / name
    path.write_text("\n".join(lines + ["intr 1 2 3", "ctxt 5"]) + "\n")
    return str(path)


def test_read_cpu_times_parses_proc_stat(tmp_path):
    path = _proc_stat(tmp_path, "stat", [(30, 70), (5, 95)])
    assert runtime.read_cpu_times(path) == {0: (30, 100), 1: (5, 100)}
    assert runtime.read_cpu_times(str(tmp_path / "missing")) is None


@pytest.mark.parametrize(("second_busy", "expected_free"), [(0, 2), (20, 1), (10, 2)])
def test_free_cores_counts_what_others_use_now(tmp_path, monkeypatch, second_busy, expected_free):
    # CPU 1 goes from 0 to second_busy busy jiffies out of 20 during the sample; CPU 0 stays idle.
    first = _proc_stat(tmp_path, "a", [(0, 0), (0, 0)])
    second = _proc_stat(tmp_path, "b", [(0, 20), (second_busy, 20 - second_busy)])
    readings = iter([runtime.read_cpu_times(first), runtime.read_cpu_times(second)])
    monkeypatch.setattr(runtime, "read_cpu_times", lambda path="/proc/stat": next(readings))
    monkeypatch.setattr(runtime, "_allowed_cpus", lambda: [0, 1])
    monkeypatch.setattr(runtime.time, "sleep", lambda seconds: None)
    # A long-lagging load average must not matter: only the sampled window counts.
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (2.0, 2.0, 2.0), raising=False)
    assert runtime.free_cores() == expected_free


# -- building, fine-tuning, freezing -----------------------------------------------------------------


@pytest.mark.usefixtures("tiny_models")
def test_drop_rate_reaches_models_that_take_it():
    model = build_model(TrainConfig(model=TINY, drop_rate=0.3), 10, 1)
    assert model.head.drop.p == 0.3
    with pytest.raises(ValueError, match="has no dropout rate to set"):
        build_model(TrainConfig(model=TINY_NODROP, drop_rate=0.3), 10, 1)


def _ours(tmp_path, model: nn.Module) -> str:
    path = tmp_path / "ours.pt"
    cfg = TrainConfig(model=TINY)
    save_atomic(
        {
            "format": "cnnlab-checkpoint-v1",
            "config": cfg.to_dict(),
            "model": model.state_dict(),
            "ema": None,
            "data": {},
        },
        path,
    )
    return str(path)


@pytest.mark.usefixtures("tiny_models")
def test_init_keeps_the_backbone_and_replaces_the_head(tmp_path):
    source = cnnlab.create_model(TINY, num_classes=10)
    path = _ours(tmp_path, source)
    target = cnnlab.create_model(TINY, num_classes=3)
    fresh = load_initial_weights(target, path, TINY)
    assert sorted(fresh) == ["head.fc.bias", "head.fc.weight"]
    assert torch.equal(target.stem[0].weight, source.stem[0].weight)
    assert target.head.fc.weight.shape == (3, 16)
    wrong = cnnlab.create_model(TINY, num_classes=10, in_chans=3)
    with pytest.raises(ValueError, match="--in-chans 3"):
        load_initial_weights(
            cnnlab.create_model(TINY, num_classes=10, in_chans=1), _ours(tmp_path, wrong), TINY
        )


@pytest.mark.usefixtures("tiny_models")
def test_freeze_backbone_leaves_only_the_classifier():
    model = cnnlab.create_model(TINY, num_classes=4)
    assert freeze_backbone(model) == 16 * 4 + 4
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["head.fc.weight", "head.fc.bias"]


def test_torchvision_state_dict_converts_for_fine_tuning(tmp_path):
    import torchvision  # a dependency of cnnlab

    tv = torchvision.models.resnet18(num_classes=1000)
    path = tmp_path / "resnet18-tv.pth"
    torch.save(tv.state_dict(), path)
    model = cnnlab.create_model("resnet18", num_classes=7)
    fresh = load_initial_weights(model, str(path), "resnet18")
    assert len(fresh) == 2 and all(tuple(model.state_dict()[k].shape)[0] == 7 for k in fresh)
    converted = cnnlab.convert_torchvision("resnet18", tv.state_dict())
    kept = [k for k in converted if k not in fresh]
    assert kept and all(torch.equal(model.state_dict()[k], converted[k]) for k in kept)


def test_split_outputs():
    logits, aux = torch.zeros(2, 3), torch.ones(2, 3)
    assert split_outputs(logits)[1] == ()
    main, rest = split_outputs((logits, aux, None))
    assert main is logits and len(rest) == 1 and rest[0] is aux
    assert math.isclose(float(main.sum()), 0.0)
