"""Every experiment of the notes end to end at the tiny budget on generated data: its trainings run through the
job runner, it writes figure.png, results.json and verdict.md, and the verdict is what its rule gives for the
numbers it wrote (recomputed here from results.json). The claims themselves are not tested: a tiny budget
proves the path, not the notes."""

from __future__ import annotations

import json

import pytest

from _tiny import make_idx_dataset
from cnnlab.cli import main
from cnnlab.experiments.catalogue import VERDICTS, list_experiments, read_jsonl, run_experiment
from cnnlab.experiments.notes import (
    augmentation,
    batchnorm_batch_size,
    batchnorm_learning_rate,
    bottlenecks,
    ensembles,
    fine_tuning,
    small_kernels,
)

CATALOGUE = ["batchnorm-learning-rate", "batchnorm-batch-size", "small-kernels", "bottlenecks", "ensembles",
             "fine-tuning", "augmentation"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_idx_dataset(tmp_path_factory.mktemp("data"), n_train=240, n_test=64)


def _run(name: str, tmp_path, data, seeds: int = 2) -> tuple[dict, list[dict]]:
    """Run ``name`` at the tiny budget; check the files every experiment writes; (results.json, run records)."""
    out = tmp_path / name
    outcome = run_experiment(name, out, budget="tiny", seeds=seeds,
                             data={"data": "fashion-mnist", "data_dir": str(data)})
    results = json.loads((out / "results.json").read_text())
    assert results["experiment"] == name and results["budget"] == "tiny" and results["seeds"] == seeds
    assert results["verdict"]["status"] == outcome.verdict.status in VERDICTS
    verdict = (out / "verdict.md").read_text()
    assert verdict.startswith(f"# {name}: {outcome.verdict.status}") and "**Rule**" in verdict
    assert any("Budget `tiny`" in note for note in results["notes"])
    assert (out / "figure.png").read_bytes()[:4] == b"\x89PNG"
    records = read_jsonl(out / "runs" / "results.jsonl")
    assert all(r["status"] == "ok" for r in records), [r["error"] for r in records if r["status"] != "ok"]
    return results, records


def _floats(table: dict) -> dict:
    """{name: {"0.1": [...]}} from JSON back to {name: {0.1: [...]}}."""
    return {k: {float(x): v for x, v in inner.items()} for k, inner in table.items()}


def test_the_catalogue_lists_every_experiment_in_order(capsys):
    assert [cls.name for cls in list_experiments()][: len(CATALOGUE)] == CATALOGUE
    assert main(["experiment", "--list"]) == 0
    out = capsys.readouterr().out
    for cls in list_experiments():
        assert cls.__doc__ and cls.claim and cls.source[:3].isdigit() and set(cls.minutes) == {"quick", "full"}
        assert cls.name in out and cls.source in out


def test_batchnorm_learning_rate(tmp_path, data):
    results, records = _run("batchnorm-learning-rate", tmp_path, data)
    assert len(records) == 2 * 2 * 2  # norms x learning rates x seeds
    n = results["numbers"]
    verdict, best = batchnorm_learning_rate.decide(_floats(n["test_accuracy"]), _floats(n["best_val_accuracy"]),
                                                   _floats(n["first_epoch_val_accuracy"]))
    assert verdict.status == results["verdict"]["status"] and verdict.measured == results["verdict"]["measured"]
    assert best == n["best_lr_by_validation"]


def test_batchnorm_batch_size(tmp_path, data):
    results, records = _run("batchnorm-batch-size", tmp_path, data, seeds=1)
    assert {(r["info"]["norm"], r["info"]["batch_size"]) for r in records} == {
        (n, b) for n in ("batchnorm", "layernorm", "none") for b in (32, 2)}
    n = results["numbers"]
    assert n["learning_rates"] == {"32": 0.025, "2": 0.0015625}  # 0.1 x batch / 128
    verdict, best = batchnorm_batch_size.decide(
        {k: {int(b): v for b, v in t.items()} for k, t in n["test_accuracy"].items()},
        {k: {int(b): v for b, v in t.items()} for k, t in n["best_val_accuracy"].items()})
    assert verdict.status == results["verdict"]["status"] and best == n["best_batch_by_validation"]
    assert "one seed" in results["verdict"]["measured"]


def test_small_kernels(tmp_path, data):
    results, _ = _run("small-kernels", tmp_path, data)
    variants = results["numbers"]["variants"]
    counts = {k: {f: v[f] for f in ("params", "macs", "receptive_fields")} for k, v in variants.items()}
    accuracy = {k: v["test_accuracy"] for k, v in variants.items()}
    assert small_kernels.decide(counts, accuracy).status == results["verdict"]["status"]
    # C = 4 channels, two stages: 3 * 9 * 16 against 49 * 16 conv weights per stage (plus 8 or 24 BN parameters).
    stack, large = variants["three 3x3"], variants["one 7x7"]
    assert large["params"] - stack["params"] == 2 * (49 * 16 - 27 * 16) - 2 * 16
    assert stack["receptive_fields"] == large["receptive_fields"]


def test_bottlenecks(tmp_path, data):
    results, _ = _run("bottlenecks", tmp_path, data, seeds=1)
    variants = results["numbers"]["variants"]
    accuracy = {k: v["test_accuracy"] for k, v in variants.items()}
    assert bottlenecks.decide(variants, accuracy).status == results["verdict"]["status"]
    assert variants["with 1x1 reductions"]["macs"] < variants["naive (no reductions)"]["macs"]


def test_ensembles_and_a_rerun_reuses_every_member(tmp_path, data):
    results, records = _run("ensembles", tmp_path, data)
    assert sorted(r["key"] for r in records) == [f"g{g}-m{m}" for g in range(2) for m in range(3)]
    n = results["numbers"]
    assert ensembles.decide(n["whole_ensemble_test_accuracy"], n["best_member_test_accuracy"]).status == (
        results["verdict"]["status"])
    for group in n["groups"].values():
        members = group["member_test_accuracy"]
        # k = 1 averages over the single members; k = 3 is the whole group.
        assert group["ensemble_test_accuracy"]["1"] == pytest.approx(sum(members) / len(members))
        by_key = {r["key"]: r["result"] for r in records}
        chosen = group["best_member_by_validation"]
        assert by_key[chosen]["best_val_accuracy"] == max(by_key[k]["best_val_accuracy"] for k in group["members"])
        # The members' test accuracies recomputed from their probabilities match what training reported.
        assert members == pytest.approx([by_key[k]["test_accuracy"] for k in group["members"]])
    events = []
    run_experiment("ensembles", tmp_path / "ensembles", budget="tiny", seeds=2,
                   data={"data": "fashion-mnist", "data_dir": str(data)}, on_event=lambda kind, *_: events.append(kind))
    assert "start" not in events and events.count("skip") == 6


def test_fine_tuning(tmp_path, data):
    results, records = _run("fine-tuning", tmp_path, data, seeds=1)
    settings = {r["key"]: r for r in records}
    assert len(records) == 1 + 2 * 3  # the pretraining, then two label fractions x three ways
    n = results["numbers"]
    verdict, chosen = fine_tuning.decide(_floats(n["test_accuracy"]), _floats(n["best_val_accuracy"]))
    assert verdict.status == results["verdict"]["status"] and chosen == n["chosen_on_validation"]
    config = json.loads((tmp_path / "fine-tuning" / "runs" / "frozen-50pct-s0" / "config.json").read_text())
    assert config["classes"] == [5, 6, 7, 8, 9] and config["train_subset"] == 0.5
    assert config["freeze_backbone"] and config["new_head"] and config["init"].endswith("pretrain-s0/best.pt")
    assert "pretrain-s0" in settings and settings["pretrain-s0"]["result"]["num_classes"] == 5


def test_augmentation(tmp_path, data):
    results, _ = _run("augmentation", tmp_path, data, seeds=1)
    n = results["numbers"]
    verdict, gap = augmentation.decide(n["clean_train_accuracy"], n["test_accuracy"])
    assert verdict.status == results["verdict"]["status"]
    assert all(gap[arm] == pytest.approx(n["generalization_gap"][arm]) for arm in ("off", "on"))
    config = json.loads((tmp_path / "augmentation" / "runs" / "aug-on-s0" / "config.json").read_text())
    assert (config["crop_padding"], config["hflip"], config["random_erasing"]) == (2, True, 0.25)
    assert len(n["history"]["on"][0]) == 2  # two epochs followed
