"""The experiment catalogue's frame: verdict rules on fixed numbers, and one registered experiment run end to end
(its trainings through the job runner, reused on a rerun; figure, numbers and verdict written)."""

from __future__ import annotations

import json

import pytest

from _tiny import make_idx_dataset
from cnnlab.cli import main
from cnnlab.experiments import catalogue
from cnnlab.experiments.catalogue import Context, Experiment, Outcome, Verdict, verdict_from_difference
from cnnlab.experiments.jobs import Job


@pytest.mark.parametrize("a, b, claim_a_better, status", [
    ([0.90, 0.91, 0.92], [0.80, 0.81, 0.82], True, "holds"),  # 10 points apart, spread 1
    ([0.80, 0.81, 0.82], [0.90, 0.91, 0.92], True, "does not hold"),
    ([0.90, 0.92, 0.94], [0.89, 0.91, 0.93], True, "inconclusive at this budget"),  # 1 point, spread 2
    ([0.90, 0.92, 0.94], [0.89, 0.91, 0.93], False, "holds"),  # "at least as good": within the margin
    ([0.80, 0.81, 0.82], [0.90, 0.91, 0.92], False, "does not hold"),
])
def test_difference_rule_on_fixed_numbers(a, b, claim_a_better, status):
    v = verdict_from_difference(a, b, claim_a_better=claim_a_better, what="accuracy", labels=("A", "B"))
    assert v.status == status
    assert "twice the larger seed spread" in v.rule and f"A {100 * sum(a) / len(a):.2f}%" in v.measured


def test_lower_is_better_and_one_seed():
    v = verdict_from_difference([0.1], [0.3], claim_a_better=True, what="error", labels=("A", "B"),
                                higher_is_better=False)
    assert v.status == "holds" and "one seed" in v.measured
    with pytest.raises(ValueError):
        Verdict("probably", "r", "m")


class _TwoLearningRates(Experiment):
    name = "test-two-rates"
    claim = "a learning rate of 0.05 beats one of 1e-4 after one epoch"
    source = "tests"
    minutes = {"quick": 1, "full": 2}

    def run(self, ctx: Context) -> Outcome:
        base = {"model": "lenet5_relu", "epochs": 1, "batch_size": 16, "val_split": 16, "threads": 1,
                "quiet": True}
        jobs = [Job(f"lr{lr}-s{s}", {**base, "lr": lr, "seed": s}) for lr in (0.05, 1e-4) for s in ctx.seed_list()]
        results = ctx.train(jobs)
        acc = {lr: [results[f"lr{lr}-s{s}"].result["best_val_accuracy"] for s in ctx.seed_list()]
               for lr in (0.05, 1e-4)}
        from matplotlib.figure import Figure

        fig = Figure()
        fig.subplots().bar(["0.05", "1e-4"], [sum(v) / len(v) for v in acc.values()])
        verdict = verdict_from_difference(acc[0.05], acc[1e-4], claim_a_better=True, what="validation accuracy",
                                          labels=("lr 0.05", "lr 1e-4"))
        return Outcome({"val_accuracy": {str(k): v for k, v in acc.items()}}, fig, verdict)


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(catalogue._EXPERIMENTS, _TwoLearningRates.name, _TwoLearningRates)


def test_an_experiment_runs_end_to_end_and_reuses_its_runs(registered, tmp_path, monkeypatch, capsys):
    data = make_idx_dataset(tmp_path / "data", n_train=96, n_test=32)
    argv = ["experiment", "test-two-rates", "--out", str(tmp_path / "exp"), "--seeds", "2",
            "--data-dir", str(data)]
    assert main(argv) == 0
    out = tmp_path / "exp"
    results = json.loads((out / "results.json").read_text())
    assert results["verdict"]["status"] in catalogue.VERDICTS and results["seeds"] == 2
    assert len(results["numbers"]["val_accuracy"]["0.05"]) == 2
    verdict = (out / "verdict.md").read_text()
    assert verdict.startswith(f"# test-two-rates: {results['verdict']['status']}") and "**Rule**" in verdict
    assert (out / "figure.png").stat().st_size > 0
    # The verdict is computed from the numbers produced, by the rule: recompute it here.
    acc = results["numbers"]["val_accuracy"]
    again = verdict_from_difference(acc["0.05"], acc["0.0001"], claim_a_better=True, what="validation accuracy",
                                    labels=("lr 0.05", "lr 1e-4"))
    assert again.status == results["verdict"]["status"]
    capsys.readouterr()
    assert main(argv) == 0
    assert "training" not in capsys.readouterr().err  # every run reused


def test_list_and_errors(registered, capsys):
    assert main(["experiment", "--list"]) == 0
    assert "test-two-rates" in capsys.readouterr().out
    assert main(["experiment", "test-two-ratez", "--out", "x"]) == 2
    assert "did you mean test-two-rates" in capsys.readouterr().err
    assert main(["experiment", "test-two-rates"]) == 2  # no --out
