import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from medvision.config import StrategyConfig
from medvision.data import TensorLoader  # noqa: E402
from medvision.models.backbones import create_model  # noqa: E402
from medvision.plots import plot_lr_find  # noqa: E402
from medvision.train.lr_finder import lr_find  # noqa: E402


def test_lr_find_sweeps_suggests_and_leaves_the_model_alone(shared_data):
    from medvision.data import build_tensor_cache, load_medmnist

    cache = build_tensor_cache(load_medmnist("breastmnist", root=shared_data), 28, progress=False)
    x, y = cache.split("train")
    loader = TensorLoader(x, y, (0.5,) * 3, (0.5,) * 3, batch_size=32, shuffle=True)
    torch.manual_seed(0)
    model = create_model("test_resnet", 2, pretrained="none")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = lr_find(model, loader, StrategyConfig("full"), start_lr=1e-5, end_lr=1.0, num_steps=30)
    assert 1e-5 <= result.suggestion <= 1.0 and len(result.lrs) == len(result.losses) >= 3
    assert all((result.lrs[1:] / result.lrs[:-1]) > 1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    fig, ax = plot_lr_find(result)
    assert ax.get_xscale() == "log" and len(ax.lines) == 2
