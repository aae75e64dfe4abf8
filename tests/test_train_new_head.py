"""--new-head: fine-tuning on other classes of as many starts the classifier afresh; the rest comes from --init."""

from __future__ import annotations

import pytest
import torch

from _tiny import TINY, tiny_models  # noqa: F401  (tiny_models is a fixture)
from cnnlab.errors import ConfigError
from cnnlab.models import create_model
from cnnlab.train.build import prepare_model
from cnnlab.train.config import TrainConfig

pytestmark = pytest.mark.usefixtures("tiny_models")


def _start(tmp_path, new_head: bool) -> tuple[dict, dict]:
    source = create_model(TINY, num_classes=5, in_chans=1)
    torch.nn.init.constant_(source.head.fc.weight, 0.5)  # a classifier no fresh init would produce
    path = tmp_path / "source.pt"
    torch.save(source.state_dict(), path)
    cfg = TrainConfig(model=TINY, init=str(path), new_head=new_head).validate()
    model = prepare_model(cfg, 5, 1, torch.device("cpu"), False, False, lambda message: None)
    return source.state_dict(), model.state_dict()


def test_new_head_resets_only_the_classifier(tmp_path):
    saved, got = _start(tmp_path, new_head=True)
    assert not torch.equal(got["head.fc.weight"], saved["head.fc.weight"])
    assert got["head.fc.weight"].shape == saved["head.fc.weight"].shape
    for key in saved:
        if not key.startswith("head.fc."):
            assert torch.equal(got[key], saved[key]), key


def test_without_new_head_a_matching_classifier_is_kept(tmp_path):
    saved, got = _start(tmp_path, new_head=False)
    assert torch.equal(got["head.fc.weight"], saved["head.fc.weight"])


def test_new_head_needs_init():
    with pytest.raises(ConfigError, match="new_head needs --init"):
        TrainConfig(model=TINY, new_head=True).validate()
