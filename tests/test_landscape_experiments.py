"""The two experiments of the notes at the "tiny" budget (generated data, shrunk networks): they run end to end
through the job runner, share their trainings, write figure, numbers and verdict, and the verdict is the one
their rule gives on the numbers they report."""

from __future__ import annotations

import json
import shutil

import pytest

from _tiny import make_idx_dataset
from cnnlab.experiments.catalogue import (
    VERDICTS,
    get_experiment,
    list_experiments,
    run_experiment,
    verdict_from_difference,
)
from cnnlab.experiments.notes.degradation import NETWORKS, degradation_verdict, training_settings


@pytest.fixture(scope="module")
def experiments(tmp_path_factory):
    root = tmp_path_factory.mktemp("notes")
    data = {"data": "fashion-mnist", "data_dir": str(make_idx_dataset(root / "data", n_train=96, n_test=32)),
            "download": False, "threads": 1}
    events: list[tuple[str, str]] = []
    degradation = run_experiment("degradation", root / "degradation", budget="tiny", seeds=2, data=data,
                                 on_event=lambda kind, job, result: events.append((kind, job.key)))
    shutil.copytree(root / "degradation" / "runs", root / "skip" / "runs")  # the same jobs: reused, not retrained
    skip = run_experiment("skip-connections", root / "skip", budget="tiny", seeds=2, data=data,
                          on_event=lambda kind, job, result: events.append((kind, job.key)))
    return root, degradation, skip, events


def test_both_are_in_the_catalogue():
    names = [cls.name for cls in list_experiments()]
    assert "degradation" in names and "skip-connections" in names
    for name in ("degradation", "skip-connections"):
        cls = get_experiment(name)
        assert cls.claim and cls.source and set(cls.minutes) == {"quick", "full"}
    assert get_experiment("skip-connections").minutes["quick"] <= 15


def test_one_recipe_for_the_four_networks():
    settings = [training_settings(m, "quick", 0) for m in NETWORKS]
    common = [{k: v for k, v in s.items() if k != "model"} for s in settings]
    assert all(c == common[0] for c in common)
    assert training_settings("plain56", "tiny", 1)["model_args"]["depths"] == (2, 2, 2)


@pytest.mark.slow
def test_the_experiments_run_share_their_trainings_and_follow_their_rules(experiments):
    root, degradation, skip, events = experiments
    assert sum(kind == "start" for kind, _ in events) == 8  # 4 networks x 2 seeds, trained once
    assert sum(kind == "skip" for kind, _ in events) == 8  # ... and reused by the second experiment
    for folder in ("degradation", "skip"):
        for name in ("figure.png", "results.json", "verdict.md"):
            assert (root / folder / name).stat().st_size > 0
    results = json.loads((root / "degradation" / "results.json").read_text())
    errors = results["numbers"]["final_training_error"]
    assert sorted(errors) == sorted(NETWORKS) and all(len(v) == 2 for v in errors.values())
    assert results["verdict"]["status"] == degradation_verdict(errors)[0].status == degradation.verdict.status
    assert degradation.verdict.status in VERDICTS

    numbers = json.loads((root / "skip" / "results.json").read_text())["numbers"]
    fractions = numbers["nonconvex_fraction"]
    assert all(len(v) == 2 and all(0.0 <= f <= 1.0 for f in v) for v in fractions.values())
    again = verdict_from_difference(fractions["resnet56"], fractions["plain56"], claim_a_better=True,
                                    higher_is_better=False, what="fraction of the 2-D loss grid that is locally "
                                    "non-convex", labels=("ResNet-56", "plain-56"))
    assert again.status == skip.verdict.status and again.measured == skip.verdict.measured
    for model in ("resnet56", "plain56"):
        for seed in (0, 1):
            land = root / "skip" / "landscapes" / f"{model}-s{seed}"
            summary = json.loads((land / "summary.json").read_text())
            assert summary["points"] == 25 and summary["directions"]["seed"] == 0  # same directions' seed
            assert summary["nonconvex_fraction"] == fractions[model][seed]
    assert numbers["hessian_ratio_at_centre"]["plain56"][0] >= 0
    assert "degradation" in json.loads((root / "skip" / "results.json").read_text())["notes"][-1]
