"""Getting a data set on a fresh machine: found, else Debian's package (root + apt), else torchvision, else one
clear error; and the `cnnlab data fetch` command that `make demo` and `make test` run."""

from __future__ import annotations

import os
import shutil

import pytest

from _tiny import make_idx_dataset
from cnnlab.cli import main
from cnnlab.data import sources
from cnnlab.data.fetch import fetch_dataset, fetch_plan


@pytest.mark.parametrize("package, root, apt_get, download, plan", [
    (True, True, True, True, ["apt", "download"]),
    (True, False, True, True, ["download"]),  # apt needs root
    (True, True, False, True, ["download"]),  # ... and apt-get
    (False, True, True, True, ["download"]),  # no Debian package for this data set
    (True, True, True, False, ["apt"]),
    (True, False, True, False, []),
])
def test_the_plan(package, root, apt_get, download, plan):
    assert fetch_plan(package, root, apt_get, download) == plan


@pytest.fixture
def empty_machine(monkeypatch, tmp_path):
    """No data anywhere, no $CNNLAB_DATA; root with apt-get unless a test says otherwise."""
    monkeypatch.setattr(sources, "SYSTEM_DATA_DIRS", (tmp_path / "system",))
    monkeypatch.setattr(sources, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    return tmp_path


def test_found_locally_runs_nothing(empty_machine, tmp_path):
    data = make_idx_dataset(tmp_path / "mine", n_train=8, n_test=4)
    result = fetch_dataset("fashion-mnist", data, run=lambda cmd: pytest.fail(f"ran {cmd}"))
    assert result.how == "found" and result.folder == data


def test_apt_installs_into_the_system_folder(empty_machine):
    commands = []

    def apt(cmd):
        commands.append(cmd)
        if cmd[:2] == ["apt-get", "install"] and len(commands) > 1:  # succeeds after an update
            make_idx_dataset(empty_machine / "system" / "fashion-mnist", n_train=8, n_test=4)
            return 0
        return 0 if cmd[1] == "update" else 100

    result = fetch_dataset("fashion-mnist", run=apt)
    assert result.how == "apt" and result.folder == empty_machine / "system" / "fashion-mnist"
    assert [c[1] for c in commands] == ["install", "update", "install"]


def test_without_root_torchvision_downloads_into_the_cache(empty_machine, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(sources, "DOWNLOADER", lambda spec, target: make_idx_dataset(target, n_train=8, n_test=4))
    result = fetch_dataset("fashion-mnist", run=lambda cmd: pytest.fail("apt without root"))
    assert result.how == "download" and result.folder == empty_machine / "cache"
    # the cache is searched afterwards: the next load finds it without downloading
    monkeypatch.setattr(sources, "DOWNLOADER", lambda spec, target: pytest.fail("downloaded twice"))
    assert len(sources.load_arrays("fashion-mnist")["test"]) == 4


def test_nothing_works_gives_one_error_saying_what_was_tried(empty_machine, monkeypatch, capsys):
    def offline(spec, target):
        raise OSError("network unreachable")

    monkeypatch.setattr(sources, "DOWNLOADER", offline)
    monkeypatch.setattr("cnnlab.data.fetch._run_quietly", lambda cmd: 100)
    assert main(["data", "fetch", "fashion-mnist"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "apt-get install dataset-fashion-mnist: failed" in err and "network unreachable" in err
    assert "--data-dir" in err  # and how to get it by hand
    assert main(["data", "fetch", "fashion-mnist", "--optional"]) == 0
    assert "skipped" in capsys.readouterr().err


def test_cli_reports_where_it_found_the_data(empty_machine, tmp_path, capsys):
    data = make_idx_dataset(tmp_path / "mine", n_train=8, n_test=4)
    assert main(["data", "fetch", "fmnist", "--data-dir", str(data)]) == 0
    assert f"found in {data}" in capsys.readouterr().err
    assert main(["data", "fetch", "imagenet"]) == 2
