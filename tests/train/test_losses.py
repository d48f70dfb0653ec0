import pytest
import torch
import torch.nn.functional as F

from medvision.train.losses import FocalLoss, make_loss


def test_focal_with_gamma_zero_is_cross_entropy():
    logits, y = torch.randn(16, 4), torch.randint(0, 4, (16,))
    assert torch.allclose(FocalLoss(gamma=0)(logits, y), F.cross_entropy(logits, y), atol=1e-6)
    w = torch.tensor([1.0, 2.0, 0.5, 3.0])
    assert torch.allclose(FocalLoss(gamma=0, weight=w)(logits, y), F.cross_entropy(logits, y, weight=w), atol=1e-6)


def test_focal_down_weights_easy_examples():
    easy = torch.tensor([[8.0, 0.0]])
    hard = torch.tensor([[0.0, 0.5]])
    y = torch.tensor([0])
    ratio_focal = FocalLoss(2.0)(easy, y) / FocalLoss(2.0)(hard, y)
    ratio_ce = F.cross_entropy(easy, y) / F.cross_entropy(hard, y)
    assert ratio_focal < ratio_ce / 100


def test_make_loss():
    w = torch.tensor([1.0, 3.0])
    assert make_loss("weighted_ce", w).weight.tolist() == [1.0, 3.0]
    assert make_loss("ce", label_smoothing=0.1).label_smoothing == 0.1
    with pytest.raises(ValueError, match="needs class weights"):
        make_loss("weighted_ce")
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("hinge")
