import pytest
import timm
import torch
from torch import nn

from medvision.config import StrategyConfig
from medvision.train.strategies import (
    STRATEGIES,
    count_trainable,
    get_strategy,
    layer_groups,
    param_groups,
    train_mode,
)

MODELS = ["test_efficientnet", "test_resnet", "test_convnext", "mobileone_s0", "efficientnetv2_rw_t"]


@pytest.fixture(params=MODELS)
def model(request):
    return timm.create_model(request.param, pretrained=False, num_classes=3)


def _trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def _frozen_bn(model):
    return [m for m in model.modules() if isinstance(m, (nn.modules.batchnorm._BatchNorm,))
            and not any(p.requires_grad for p in m.parameters())]


def test_head_only_trains_exactly_the_classifier(model):
    groups = param_groups(model, StrategyConfig("head_only"))
    head = {f"{n}" for n, _ in model.named_parameters()
            if any(p is q for q in model.get_classifier().parameters() for p in [dict(model.named_parameters())[n]])}
    _, head_names = layer_groups(model)
    assert _trainable(model) == set(head_names) and head <= set(head_names)
    assert [g["lr"] for g in groups] == [1e-3]
    frozen = _frozen_bn(model)
    train_mode(model)
    assert model.get_classifier().training
    assert all(not m.training for m in frozen), "frozen BatchNorm must stay in eval mode"
    if frozen:
        before = frozen[0].running_mean.clone()
        model(torch.randn(2, 3, 64, 64))
        assert torch.equal(before, frozen[0].running_mean)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_last_k_trains_the_last_k_timm_groups(model, k):
    blocks, head = layer_groups(model)
    if k >= len(blocks):
        pytest.skip(f"{type(model).__name__} has {len(blocks)} groups")
    groups = param_groups(model, StrategyConfig("last_k", k=k, lr=1e-2, backbone_lr_scale=0.1))
    expected = {n for g in blocks[-k:] for n in g} | set(head)
    assert _trainable(model) == expected
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 1e-2])
    assert not _trainable(model) & set(blocks[0])  # stem stays frozen


def test_full_trains_everything(model):
    param_groups(model, StrategyConfig("head_only"))
    param_groups(model, StrategyConfig("full"))
    assert _trainable(model) == {n for n, _ in model.named_parameters()}
    train_mode(model)
    assert all(m.training for m in model.modules())


def test_two_phase_switches_after_phase1(model):
    cfg = StrategyConfig("two_phase", phase1_epochs=2, k=1)
    blocks, head = layer_groups(model)
    param_groups(model, cfg, epoch=1)
    assert _trainable(model) == set(head)
    groups = param_groups(model, cfg, epoch=2)
    assert _trainable(model) == set(blocks[-1]) | set(head)
    opt1 = torch.optim.AdamW(groups)
    assert all(g["lr"] == pytest.approx(1e-4) for g in opt1.param_groups)


def test_discriminative_lr_decays_towards_the_stem(model):
    groups = param_groups(model, StrategyConfig("discriminative", lr=1e-3, layer_decay=0.5))
    lrs = sorted({g["lr"] for g in groups})
    assert lrs[-1] == pytest.approx(1e-3) and lrs[0] < 1e-3 * 0.5 ** 2
    assert _trainable(model) == {n for n, _ in model.named_parameters()}


def test_registry_and_counts():
    assert set(STRATEGIES) == {"head_only", "last_k", "full", "two_phase", "discriminative"}
    with pytest.raises(ValueError, match="unknown strategy"):
        get_strategy("partial")
    model = timm.create_model("test_resnet", num_classes=2)
    param_groups(model, StrategyConfig("head_only"))
    assert count_trainable(model) == sum(p.numel() for p in model.get_classifier().parameters())
