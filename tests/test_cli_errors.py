"""The command line's error boundary: user mistakes are one line and exit 2, bugs keep their traceback."""

from __future__ import annotations

import pytest

import cnnlab.analysis.summary
from cnnlab import create_model
from cnnlab.cli import main


def _user_error(capsys, argv: list[str]) -> str:
    """Run ``cnnlab ARGV``; assert exit 2 with one error line and no traceback; return that line."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own usage errors
        code = stop.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error: " in line]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["summary", "resnet18:depth=abc"], "resnet18 takes no option 'depth'; did you mean depths?"),
        (["experiment", "no-such-claim"], "unknown experiment 'no-such-claim'"),
        (["demo", "--epochs", "0"], "argument --epochs: must be 1 or more, got 0"),
        (["demo", "--time-budget", "-3"], "argument --time-budget: must be a number above 0"),
        (["explain", "runs/x", "--from-test", "many"], "expected a whole number, got 'many'"),
    ],
)
def test_bad_input_is_one_line(capsys, argv, expected):
    assert expected in _user_error(capsys, argv)


def test_a_model_option_named_like_a_summary_argument_reaches_the_model(capsys):
    def parameters(spec: str) -> str:
        assert main(["summary", spec, "--input", "1x64x64", "--depth", "1"]) == 0
        return next(line for line in capsys.readouterr().out.splitlines() if line.startswith("Parameters:"))

    # U-Net's depth (its levels) is not summary's --depth (rows shown)
    for levels in (3, 4):
        model = create_model("unet", depth=levels, in_chans=1)
        count = sum(p.numel() for p in model.parameters())
        assert parameters(f"unet:depth={levels}").startswith(f"Parameters: {count:,} ")


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("an internal mistake")

    monkeypatch.setattr(cnnlab.analysis.summary, "summary", broken)
    with pytest.raises(ValueError, match="an internal mistake"):
        main(["summary", "lenet5"])


def test_a_missing_path_is_one_line(capsys, tmp_path):
    line = _user_error(capsys, ["eval", str(tmp_path / "nowhere")])
    assert "nowhere" in line and "does not exist" in line
