"""The notes' claims as experiments: a catalogue, a shared runner, and verdicts decided by written rules.

An experiment is a class registered with :func:`register_experiment`. It names the claim, the note it
comes from and its expected minutes on 2 CPU cores per budget, and implements ``run(ctx)``: it trains
what it needs through ``ctx.train(jobs)`` (the job runner of :mod:`cnnlab.experiments.jobs`: resumable,
a local process pool or Ray), measures, and returns an :class:`Outcome` — every number behind its
figure, the figure, and a :class:`Verdict` that its own code decided from those numbers by a rule
written before the run (e.g. "a difference larger than twice the spread over seeds"). Never a
hard-coded verdict.

:func:`run_experiment` writes ``DIR/figure.png``, ``DIR/results.json`` and ``DIR/verdict.md``; the runs
live under ``DIR/runs/`` so a rerun reuses every finished training.
"""

from __future__ import annotations

import difflib
import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from cnnlab.errors import ConfigError, UnknownNameError
from cnnlab.experiments.jobs import Job, JobResult, refuse_busy, run_jobs
from cnnlab.files import save_figure_atomic, write_json_atomic, write_text_atomic

__all__ = [
    "BUDGETS",
    "VERDICTS",
    "Context",
    "Experiment",
    "Outcome",
    "Verdict",
    "combine_verdicts",
    "get_experiment",
    "list_experiments",
    "mean_and_spread",
    "read_jsonl",
    "register_experiment",
    "run_experiment",
    "verdict_from_difference",
]

# "quick": about 10 minutes on 2 CPU cores; "full": about an hour. "tiny" is for tests: a few seconds
# on generated data, proving the path and the verdict rule, not the claim.
BUDGETS = ("quick", "full", "tiny")
VERDICTS = ("holds", "does not hold", "inconclusive at this budget")


@dataclass(frozen=True)
class Verdict:
    """What was measured, by which rule, and the result: one of ``VERDICTS``."""

    status: str
    rule: str  # the decision rule, written in the experiment's code before any run
    measured: str  # the numbers the rule was applied to, with their spread over seeds

    def __post_init__(self) -> None:
        if self.status not in VERDICTS:
            raise ValueError(f"a verdict is one of {VERDICTS}, got {self.status!r}")


@dataclass
class Outcome:
    """An experiment's result: every number behind the figure, the figure, and the verdict."""

    numbers: dict[str, Any]
    figure: Any  # a matplotlib Figure from cnnlab.plots
    verdict: Verdict
    notes: list[str] = field(default_factory=list)  # what the budget implies, caveats, what was left out


@dataclass
class Context:
    """What an experiment runs with: its folder, budget, seeds, data settings and the job runner."""

    out: Path
    budget: str
    seeds: int
    data: Mapping[str, Any]  # TrainConfig fields naming the data (data, data_dir, download, ...)
    executor: str = "local"
    workers: int = 1
    address: str | None = None
    on_event: Callable[[str, Job, JobResult | None], None] | None = None

    def train(self, jobs: Sequence[Job], group: str = "runs") -> dict[str, JobResult]:
        """Train ``jobs`` (data settings added) under ``out/group``; their results by key, reusing finished ones."""
        jobs = [Job(j.key, {**self.data, **j.settings}, j.info) for j in jobs]
        results = run_jobs(jobs, self.out / group, executor=self.executor, workers=self.workers,
                           address=self.address, on_event=self.on_event)
        refuse_busy(results)
        return {r.key: r for r in results}

    def seed_list(self) -> list[int]:
        return list(range(self.seeds))

    def run_dir(self, key: str, group: str = "runs") -> Path:
        """The folder ``train`` trained job ``key`` of ``group`` into."""
        return self.out / group / key

    def history(self, key: str, group: str = "runs") -> list[dict[str, Any]]:
        """The per-epoch metrics rows (train and validation loss and accuracy) of a trained job."""
        return read_jsonl(self.run_dir(key, group) / "metrics.jsonl")

    def curve(self, key: str, group: str = "runs") -> list[dict[str, Any]]:
        """The training loss and accuracy of a trained job every ``log_every`` steps."""
        return read_jsonl(self.run_dir(key, group) / "curve.jsonl")


class Experiment:
    """Base of the catalogue: subclasses set the class attributes and implement ``run``."""

    name: ClassVar[str]
    claim: ClassVar[str]  # the claim as the notes make it, one sentence
    source: ClassVar[str]  # where in the notes, e.g. "002: Batch Normalization"
    minutes: ClassVar[dict[str, float]]  # expected minutes on 2 CPU cores for "quick" and "full"

    def run(self, ctx: Context) -> Outcome:
        raise NotImplementedError


_EXPERIMENTS: dict[str, type[Experiment]] = {}


def register_experiment(cls: type[Experiment]) -> type[Experiment]:
    """Add an experiment class to the catalogue under its ``name``."""
    if cls.name in _EXPERIMENTS:
        raise ValueError(f"experiment {cls.name!r} is already registered")
    _EXPERIMENTS[cls.name] = cls
    return cls


def _load_catalogue() -> None:
    import cnnlab.experiments.notes  # noqa: F401  (importing registers every experiment of the notes)


def list_experiments() -> list[type[Experiment]]:
    """The catalogue, in the order of registration."""
    _load_catalogue()
    return list(_EXPERIMENTS.values())


def get_experiment(name: str) -> type[Experiment]:
    """The experiment called ``name``; an unknown name lists the close ones."""
    _load_catalogue()
    if name not in _EXPERIMENTS:
        close = difflib.get_close_matches(name, list(_EXPERIMENTS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `cnnlab experiment --list` shows them"
        raise UnknownNameError(f"unknown experiment {name!r}{hint}")
    return _EXPERIMENTS[name]


def run_experiment(name: str, out_dir: str | Path, *, budget: str = "quick", seeds: int = 3,
                   data: Mapping[str, Any] | None = None, executor: str = "local", workers: int = 1,
                   address: str | None = None,
                   on_event: Callable[[str, Job, JobResult | None], None] | None = None) -> Outcome:
    """Run (or resume) one experiment and write its figure, numbers and verdict into ``out_dir``."""
    cls = get_experiment(name)
    if budget not in BUDGETS:
        raise ConfigError(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    if seeds < 1:
        raise ConfigError(f"seeds must be 1 or more, got {seeds}")
    out = Path(out_dir)
    ctx = Context(out, budget, seeds, dict(data or {"data": "fashion-mnist"}), executor, workers, address,
                  on_event)
    outcome = cls().run(ctx)
    out.mkdir(parents=True, exist_ok=True)
    save_figure_atomic(outcome.figure, out / "figure.png")
    write_json_atomic(out / "results.json", {
        "experiment": cls.name, "claim": cls.claim, "source": cls.source, "budget": budget, "seeds": seeds,
        "data": dict(ctx.data), "verdict": outcome.verdict.__dict__, "notes": outcome.notes,
        "numbers": outcome.numbers,
    })
    write_text_atomic(out / "verdict.md", verdict_markdown(cls, outcome, budget, seeds))
    return outcome


def verdict_markdown(cls: type[Experiment], outcome: Outcome, budget: str, seeds: int) -> str:
    """verdict.md: the claim and its source, what was measured, the rule, and the verdict."""
    v = outcome.verdict
    lines = [
        f"# {cls.name}: {v.status}",
        "",
        f"**Claim** ({cls.source}): {cls.claim}",
        "",
        f"**Measured** (budget `{budget}`, {seeds} seed{'s' if seeds != 1 else ''}): {v.measured}",
        "",
        f"**Rule** (fixed before the run): {v.rule}",
        "",
        f"**Verdict**: {v.status}.",
    ]
    if outcome.notes:
        lines += ["", *[f"- {note}" for note in outcome.notes]]
    return "\n".join(lines) + "\n"


def mean_and_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds (spread 0 for a single seed)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def verdict_from_difference(a: Sequence[float], b: Sequence[float], *, claim_a_better: bool, what: str,
                            labels: tuple[str, str], higher_is_better: bool = True,
                            fmt: Callable[[float], str] = lambda v: f"{100 * v:.2f}%") -> Verdict:
    """The common rule: the claim holds when ``a`` beats ``b`` (or, with ``claim_a_better=False``, does not
    lose to it) by more than twice the larger seed spread; the opposite difference beyond that margin means
    it does not hold; anything within the margin is inconclusive at this budget. With one seed the
    margin is 0 and the verdict says the spread is unknown."""
    (ma, sa), (mb, sb) = mean_and_spread(a), mean_and_spread(b)
    margin = 2 * max(sa, sb)
    diff = (ma - mb) if higher_is_better else (mb - ma)  # > 0: a is better
    measured = (f"{what}: {labels[0]} {fmt(ma)} ± {fmt(sa)}, {labels[1]} {fmt(mb)} ± {fmt(sb)} "
                f"(mean ± standard deviation over {len(a)} and {len(b)} seeds)")
    if claim_a_better:
        rule = (f"holds if {labels[0]} is better than {labels[1]} by more than twice the larger seed spread; "
                f"does not hold if it is worse by more than that; otherwise inconclusive")
        status = "holds" if diff > margin else "does not hold" if diff < -margin else "inconclusive at this budget"
    else:
        rule = (f"holds if {labels[0]} is not worse than {labels[1]} by more than twice the larger seed spread; "
                f"does not hold if it is worse by more than that")
        status = "does not hold" if diff < -margin else "holds"
    if len(a) < 2 or len(b) < 2:
        measured += "; one seed: the spread is unknown, so the margin is 0"
    return Verdict(status, rule, measured)


def combine_verdicts(parts: Sequence[tuple[str, Verdict]]) -> Verdict:
    """A claim of several parts: it holds when every part holds, does not hold when any part does not,
    and is inconclusive otherwise; the rule and the measurements of each part are kept, labelled."""
    if not parts:
        raise ValueError("no parts to combine")
    statuses = [v.status for _, v in parts]
    status = ("does not hold" if "does not hold" in statuses
              else "holds" if all(s == "holds" for s in statuses) else "inconclusive at this budget")
    # One Markdown list item per part, so verdict.md shows the parts one under the other.
    rule = "".join(f"\n- ({name}) {v.rule}" for name, v in parts)
    rule += "\n- The claim holds when every part holds, does not hold when any part does not; otherwise inconclusive"
    measured = "".join(f"\n- ({name}) {v.measured}: {v.status}" for name, v in parts)
    return Verdict(status, rule, measured)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file written by a run (none when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
