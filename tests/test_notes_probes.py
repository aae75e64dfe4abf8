"""The probe networks of the notes' experiments: what each variant sees, how wide it grows, bad options."""

from __future__ import annotations

import pytest
import torch

from cnnlab.analysis.receptive_field import gradient_receptive_field
from cnnlab.models import create_model


@pytest.mark.parametrize("stack, large, expected", [((3, 3), (1, 7), 18), ((2, 3), (1, 5), 14)])
def test_a_stack_of_3x3_convs_sees_as_far_as_one_large_kernel(stack, large, expected):
    """Measured from the input gradient (independent of the traced fields): the stem's 3x3 conv and 2x2 pool
    see 4 pixels with a jump of 2; n convs of size k add n (k - 1) * 2 and the stage's pool adds 2."""
    spans = []
    for convs, kernel in (stack, large):
        model = create_model("probe_vgg", widths=(4,), convs_per_stage=convs, kernel_size=kernel)
        (first, last), _ = gradient_receptive_field(model, (1, 48, 48), layer="stages.0")
        spans.append(last - first + 1)
    assert spans == [expected, expected]


def test_naive_inception_modules_grow_the_width_and_the_cost():
    reduced = create_model("probe_inception", num_classes=3)
    naive = create_model("probe_inception", num_classes=3, reductions=False)
    # Naive: each module's output keeps its input (the pooling branch): 32 -> 88 -> 192 -> 304 channels.
    assert (reduced.num_features, naive.num_features) == (128, 304)
    x = torch.randn(2, 1, 28, 28)
    assert reduced(x).shape == naive(x).shape == (2, 3)


@pytest.mark.parametrize("kwargs", [{"kernel_size": 4}, {"convs_per_stage": 0}, {"widths": ()}])
def test_bad_probe_options_are_refused(kwargs):
    with pytest.raises(ValueError):
        create_model("probe_vgg", **kwargs)
