"""BatchNorm folding for evaluation: same outputs, original untouched, refused where child order misleads."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
from torch import nn

from medvision.models.fusion import fold_batchnorm, folded_for_inference


@pytest.mark.parametrize("arch", ["test_efficientnet", "test_resnet", "tf_efficientnet_lite0"])
def test_folded_copy_matches_and_leaves_the_model_alone(arch):
    torch.manual_seed(0)
    model = timm.create_model(arch, num_classes=3)
    model.train()
    with torch.no_grad():  # non-trivial running statistics, as after training
        for _ in range(3):
            model(torch.randn(8, 3, 48, 48))
    before = copy.deepcopy(model.state_dict())
    x = torch.randn(4, 3, 48, 48).contiguous(memory_format=torch.channels_last)
    net = folded_for_inference(model, x[:2])
    assert net is not model
    assert fold_batchnorm(model)[1] > 0
    norms = [sum(isinstance(m, nn.BatchNorm2d) for m in n.modules()) for n in (model, net)]
    assert norms[1] == norms[0] - fold_batchnorm(model)[1]
    with torch.inference_mode():
        torch.testing.assert_close(net(x), model.eval()(x), rtol=1e-4, atol=1e-4)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


class CalledInAnotherOrder(nn.Module):
    """A BatchNorm registered after a convolution but applied before it: folding would be wrong."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.conv(self.bn(x)).mean((2, 3))


def test_a_copy_that_differs_is_not_used():
    torch.manual_seed(0)
    model = CalledInAnotherOrder()
    model.bn.running_mean.fill_(0.5)
    model.bn.running_var.fill_(4.0)
    assert fold_batchnorm(model)[1] == 1  # structurally a pair ...
    assert folded_for_inference(model, torch.randn(2, 3, 8, 8)) is model  # ... but its outputs differ


def test_the_folded_copy_is_reused_until_the_weights_change():
    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", num_classes=2)
    x = torch.randn(2, 3, 32, 32)
    first = folded_for_inference(model, x)
    assert folded_for_inference(model, x) is first  # unchanged weights: folded once
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model.train()
    model(torch.randn(4, 3, 32, 32)).sum().backward()
    optimizer.step()  # in-place update of every parameter
    second = folded_for_inference(model, x)
    assert second is not first
    with torch.inference_mode():
        torch.testing.assert_close(second(x), model.eval()(x), rtol=1e-4, atol=1e-4)
    model.load_state_dict({k: v.clone() for k, v in model.state_dict().items()})
    assert folded_for_inference(model, x) is not second


def test_writes_that_bypass_version_counters_and_inference_tensors_are_not_missed():
    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", num_classes=2)
    x = torch.randn(2, 3, 32, 32)
    first = folded_for_inference(model, x)
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    bn.running_mean.data.add_(0.5)  # no version bump: the sums still see it
    second = folded_for_inference(model, x)
    assert second is not first
    with torch.inference_mode():
        torch.testing.assert_close(second(x), model.eval()(x), rtol=1e-4, atol=1e-4)
        fresh = timm.create_model("test_efficientnet", num_classes=2)  # inference tensors: folded, never cached
    assert folded_for_inference(fresh, x) is not folded_for_inference(fresh, x)
