"""Sweeps on disk: sampling into a folder, the training subset, resumable runs (in process, pool, Ray), the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

import cnnlab.train
from _tiny import make_idx_dataset
from cnnlab.cli import main
from cnnlab.errors import ConfigError, OutputPathError
from cnnlab.experiments.designspace import TrainPlan, create_sweep, load_sweep, run_sweep
from cnnlab.experiments.designspace.sweep import load_samples, sweep_jobs
from cnnlab.experiments.jobs import read_record
from cnnlab.train import TrainingDivergedError

N = 4
TINY_MACS = (150_000, 400_000)  # tiny networks at 28x28, trained in a fraction of a second each


@pytest.fixture(scope="module")
def fashion_dir(tmp_path_factory):
    return make_idx_dataset(tmp_path_factory.mktemp("fashion"), n_train=160, n_test=32)


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweeps") / "e"
    create_sweep(folder, "anynetx_e", N, TINY_MACS, seed=0)
    return folder


def _plan(data_dir, **kw) -> TrainPlan:
    return TrainPlan(**{"epochs": 1, "data_dir": str(data_dir), "val": 32, "batch_size": 32, "device": "cpu",
                        "download": False, "settings": {"threads": 1}, **kw})


def _copy_sweep(sampled, tmp_path):
    import shutil

    return shutil.copytree(sampled, tmp_path / "sweep")


def test_create_sweep_writes_samples_and_reuses_or_refuses_an_existing_one(sampled):
    meta, samples = load_samples(sampled)
    assert meta["space"] == "anynetx_e" and meta["n"] == N and len(samples) == N
    assert all(TINY_MACS[0] <= s.macs <= TINY_MACS[1] for s in samples)
    again = create_sweep(sampled, "anynetx_e", N, TINY_MACS, seed=0)
    assert [s.to_dict() for s in again] == [s.to_dict() for s in samples]
    with pytest.raises(OutputPathError, match="another sweep"):
        create_sweep(sampled, "anynetx_e", N, TINY_MACS, seed=1)


def test_jobs_build_anynet_from_the_samples_with_one_recipe(sampled, fashion_dir):
    jobs = sweep_jobs(sampled, _plan(fashion_dir, lr=0.05))
    _, samples = load_samples(sampled)
    assert [j.key for j in jobs] == [s.key for s in samples]
    for job, s in zip(jobs, samples):
        assert job.settings["model"] == "anynet" and job.settings["model_args"]["depths"] == list(s.config.depths)
        assert job.settings["val_split"] == 32 and job.settings["lr"] == 0.05 and job.info["macs"] == s.macs
    assert len({json.dumps({k: v for k, v in j.settings.items() if k != "model_args"}) for j in jobs}) == 1
    with pytest.raises(ConfigError, match="unknown setting"):
        sweep_jobs(sampled, _plan(fashion_dir, settings={"no_such_setting": 1}))


def test_a_subset_is_the_trainers_share_of_every_class_with_the_sweeps_seed(sampled, fashion_dir, tmp_path):
    from cnnlab.experiments.designspace.sweep import _data_settings, _scale

    sweep = _copy_sweep(sampled, tmp_path)
    data = _data_settings(sweep, _plan(fashion_dir, subset=48), _scale(load_samples(sweep)[0]))
    assert data["train_subset"] == 48 + 32 and data["split_seed"] == 0 and data["data_dir"] == str(fashion_dir)
    job = sweep_jobs(sweep, _plan(fashion_dir, subset=48), data=data)[0]
    assert job.settings["train_subset"] == 80 and job.settings["val_split"] == 32
    with pytest.raises(ConfigError, match="does not fit"):
        _data_settings(sweep, _plan(fashion_dir, subset=500), _scale(load_samples(sweep)[0]))


def test_a_killed_sweep_restarts_with_exactly_n_results(sampled, fashion_dir, tmp_path, monkeypatch):
    sweep = _copy_sweep(sampled, tmp_path)
    real_train = cnnlab.train.train
    calls = []

    def killed_at_the_third(cfg):
        calls.append(cfg.out)
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed during its third trial
        return real_train(cfg)

    monkeypatch.setattr(cnnlab.train, "train", killed_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, _plan(fashion_dir))
    record = sweep / "runs-e1" / "results.jsonl"
    assert len(read_record(record)) == 2
    monkeypatch.setattr(cnnlab.train, "train", real_train)
    results = run_sweep(sweep, _plan(fashion_dir))
    keys = [r.key for r in read_record(record)]
    assert len(results) == N and len(keys) == N and len(set(keys)) == N
    meta, trials = load_sweep(sweep)
    assert meta["label"] == "e1" and all(t.status == "ok" and 0 <= t.error <= 1 for t in trials)
    # The error is the validation error, not the test error.
    first = json.loads((sweep / "runs-e1" / trials[0].sample.key / "results.json").read_text())
    assert trials[0].error == pytest.approx(1 - first["best_val_accuracy"])


def test_a_diverging_network_is_recorded_as_failed(sampled, fashion_dir, tmp_path, monkeypatch):
    sweep = _copy_sweep(sampled, tmp_path)
    real_train = cnnlab.train.train

    def second_diverges(cfg):
        if cfg.out.endswith("0001"):
            raise TrainingDivergedError("the training loss became NaN in epoch 1")
        return real_train(cfg)

    monkeypatch.setattr(cnnlab.train, "train", second_diverges)
    run_sweep(sweep, _plan(fashion_dir))
    _, trials = load_sweep(sweep)
    assert [t.status for t in trials] == ["ok", "failed", "ok", "ok"] and trials[1].error is None


def test_a_training_with_other_settings_needs_its_own_label(sampled, fashion_dir, tmp_path, monkeypatch):
    sweep = _copy_sweep(sampled, tmp_path)
    monkeypatch.setattr(cnnlab.train, "train", lambda cfg: {"best_val_accuracy": 0.5, "test_accuracy": 0.5})
    (sweep / "runs-e1").mkdir()
    (sweep / "runs-e1" / "phase.json").write_text(json.dumps({"epochs": 1, "lr": 9.0}))
    with pytest.raises(ConfigError, match="--label"):
        run_sweep(sweep, _plan(fashion_dir))


def _kill_after(k: int):
    done = []

    def on_event(kind, job, result):
        if kind == "done":
            done.append(job.key)
            if len(done) == k:
                raise KeyboardInterrupt  # the driver is killed after k recorded trials

    return on_event


@pytest.mark.slow
def test_a_killed_pool_sweep_restarts_with_exactly_n_results_and_no_duplicates(sampled, fashion_dir, tmp_path):
    sweep = _copy_sweep(sampled, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, _plan(fashion_dir, settings={}), workers=2, on_event=_kill_after(1))
    assert len(read_record(sweep / "runs-e1" / "results.jsonl")) == 1
    run_sweep(sweep, _plan(fashion_dir, settings={}), workers=2)
    keys = [r.key for r in read_record(sweep / "runs-e1" / "results.jsonl")]
    assert sorted(keys) == sorted(s.key for s in load_samples(sweep)[1])


@pytest.mark.slow
def test_a_killed_ray_sweep_restarts_with_exactly_n_results_and_no_duplicates(sampled, fashion_dir, tmp_path):
    ray = pytest.importorskip("ray")
    sweep = _copy_sweep(sampled, tmp_path)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sweep(sweep, _plan(fashion_dir), executor="ray", on_event=_kill_after(1))
        assert len(read_record(sweep / "runs-e1" / "results.jsonl")) == 1
        results = run_sweep(sweep, _plan(fashion_dir), executor="ray")
    finally:
        ray.shutdown()
    keys = [r.key for r in read_record(sweep / "runs-e1" / "results.jsonl")]
    assert len(keys) == N and sorted(keys) == sorted(r.key for r in results)
    assert all(r.status == "ok" for r in results), [r.error for r in results]


def test_the_cli_samples_runs_plots_and_analyzes(fashion_dir, tmp_path, capsys, monkeypatch):
    # Fixed errors instead of trainings: the CLI's wiring is under test here, training is above.
    errors = iter(np.linspace(0.2, 0.5, 8))

    def fake_train(cfg):
        from pathlib import Path

        accuracy = 1 - float(next(errors))
        result = {"best_val_accuracy": accuracy, "test_accuracy": accuracy}
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        (Path(cfg.out) / "results.json").write_text(json.dumps(result))
        return result

    monkeypatch.setattr(cnnlab.train, "train", fake_train)
    for space in ("anynetx_a", "anynetx_e"):
        assert main(["designspace", "sample", "--space", space, "--n", "4", "--macs", "150K:400K",
                     "--out", str(tmp_path / space)]) == 0
        assert main(["designspace", "run", str(tmp_path / space), "--epochs", "1", "--data-dir", str(fashion_dir),
                     "--val", "32", "--no-download", "--device", "cpu"]) == 0
    out = capsys.readouterr()
    assert "4 of 4 networks trained" in out.out and "[4/4]" in out.err
    assert main(["designspace", "plot", str(tmp_path / "anynetx_a"), str(tmp_path / "anynetx_e"),
                 "--out", str(tmp_path / "edf.png"), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [s["title"] for s in report["spaces"]] == ["AnyNetX_A", "AnyNetX_E"]
    assert (tmp_path / "edf.png").stat().st_size > 0
    assert report["spaces"][0]["min"] == pytest.approx(20.0)
    assert main(["designspace", "analyze", str(tmp_path / "anynetx_a"), "--out", str(tmp_path / "an")]) == 0
    assert "non-decreasing widths" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "an").iterdir()} == {"parameters.png", "widths.png", "analysis.json"}
    assert main(["designspace", "plot", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.png")]) == 2
    assert "not a design-space sweep" in capsys.readouterr().err


def _fake_trainer(errors_by_epochs):
    """A stand-in for cnnlab.train.train: writes results.json with the error the table gives per
    (epochs, model depth), so rankings are known in advance."""
    from pathlib import Path

    def train(cfg):
        error = errors_by_epochs(cfg.epochs, sum(cfg.model_args["depths"]), Path(cfg.out).name)
        result = {"best_val_accuracy": 1 - error, "test_accuracy": 1 - error, "epochs": cfg.epochs,
                  "val_split": cfg.val_split, "data_dir": cfg.data_dir, "train_subset": cfg.train_subset}
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        (Path(cfg.out) / "results.json").write_text(json.dumps(result))
        return result

    return train


def test_the_rank_check_trains_some_networks_longer_alike_and_compares_rankings(sampled, fashion_dir, tmp_path,
                                                                                 monkeypatch):
    from cnnlab.experiments.designspace import rank_check

    sweep = _copy_sweep(sampled, tmp_path)
    # The error falls with the sample's index in both trainings: the same ranking.
    monkeypatch.setattr(cnnlab.train, "train",
                        _fake_trainer(lambda epochs, depth, key: 0.5 / epochs - 0.01 * int(key[-4:])))
    run_sweep(sweep, _plan(fashion_dir, subset=64))
    check = rank_check(sweep, epochs=3, models=3, out=tmp_path / "ranks.png")
    assert check["n"] == 3 and check["rho"] == pytest.approx(1.0) and check["long_training"] == "e3-n64-rank"
    long_dir = sweep / "runs-e3-n64-rank"
    results = [json.loads((long_dir / k / "results.json").read_text()) for k in check["keys"]]
    short = json.loads(next((sweep / "runs-e1-n64").glob("*/results.json")).read_text())
    # Longer, and otherwise as the short training: the same subset and validation images.
    assert all(r["epochs"] == 3 and r["train_subset"] == short["train_subset"] == 96 and r["val_split"] == 32
               for r in results)
    assert len(read_record(long_dir / "results.jsonl")) == 3 and (tmp_path / "ranks.png").is_file()
    assert load_sweep(sweep)[0]["label"] == "e1-n64"  # the short training stays the default
    with pytest.raises(ConfigError, match="more --epochs"):
        rank_check(sweep, epochs=1, models=3)


def test_data_of_another_shape_than_the_samples_is_refused(tmp_path):
    from _tiny import make_cifar_dataset

    make_cifar_dataset(tmp_path / "cifar", per_batch=20)
    create_sweep(tmp_path / "s", "anynetx_e", 1, TINY_MACS, seed=0)
    with pytest.raises(ConfigError, match="--image-size 32 --in-chans 3"):
        run_sweep(tmp_path / "s", _plan(tmp_path / "cifar", data="cifar10"))
