"""`cnnlab info MODEL`: the paper, the key idea, the smallest input, size and cost, the torchvision twin."""

from __future__ import annotations

import json

import pytest
import torchvision

from cnnlab.cli import main
from cnnlab.models import get_model_info, list_models
from cnnlab.models._papers import PAPERS, paper_for


def test_every_registered_network_has_its_paper_and_idea():
    for name in list_models():
        paper = paper_for(get_model_info(name).paper)
        assert paper is not None, name
        assert str(paper.year) in get_model_info(name).paper  # the registry's citation and the table agree
        assert len(paper.idea) == 2 and all(20 < len(line) <= 105 for line in paper.idea), name
    assert len({p.title for p in PAPERS}) == len(PAPERS)


def test_info_text_names_paper_idea_input_counts_and_twin(capsys):
    assert main(["info", "resnet50"]) == 0
    text = capsys.readouterr().out
    assert "K. He, X. Zhang, S. Ren, J. Sun (2016). Deep Residual Learning for Image Recognition. CVPR 2016." in text
    assert "key idea:" in text and "y = F(x) + x" in text
    # torchvision publishes 25,557,032 parameters and 4.09 GFLOPS (MACs) for its ResNet-50 weights.
    meta = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta
    assert f"{meta['num_params']:,}" in text and "(4.09G) multiply-accumulates per 3x224x224 image" in text
    assert "torchvision.models.resnet50" in text
    assert main(["info", "lenet5"]) == 0
    assert "none in torchvision" in capsys.readouterr().out


def test_info_takes_builder_options_and_json(capsys):
    assert main(["info", "vgg11_bn", "--format", "json"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert main(["info", "vgg11_bn:width_mult=0.25", "--format", "json"]) == 0
    narrow = json.loads(capsys.readouterr().out)
    assert narrow["options"] == {"width_mult": 0.25} and narrow["macs"] < full["macs"] / 10
    assert full["venue"] == "ICLR 2015" and full["year"] == 2015 and full["min_size"] == 32


def test_info_of_an_unknown_network_is_one_line(capsys):
    assert main(["info", "resnet51"]) == 2
    assert "unknown model 'resnet51'" in capsys.readouterr().err


@pytest.mark.parametrize("citation", ["He et al. 2016, deep residual learning for image recognition"])
def test_paper_lookup_ignores_case(citation):
    assert paper_for(citation).venue == "CVPR 2016"
