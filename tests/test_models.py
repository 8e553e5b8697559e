"""The registry and each architecture: output shape and the reference parameter counts."""

from __future__ import annotations

import pytest
import torch

from mnistbench.config.load import architecture_file
from mnistbench.errors import ConfigError
from mnistbench.models import available_models, build_model, count_parameters

# Counted by hand from the reference architectures (weights + biases).
EXPECTED_PARAMS = {
    "lenet5": 61_706,  # 156 + 2,416 + 48,120 + 10,164 + 850
    "cnn": 1_199_882,  # the 1.2M-parameter PyTorch-example CNN
    "resnet18": 11_175_370,  # torchvision ResNet18, 1-channel stem, 10 classes (~11.2M)
    "alexnet_small": 102_090,  # conv 16/32/64 5x5 + fc 64 + fc 10
    "simple_cnn": 1_007_590,  # conv 10 5x5, conv 20 3x3, fc 500, fc 10
    # conv weights 288 + 9,216 + 25,600 + 18,432 + 36,864 + 102,400 + 131,072 (no conv bias),
    # BatchNorm 2 x (32 * 3 + 64 * 3 + 128), fc 1,290
    "allconv": 325_994,
}


def test_registry_lists_the_reference_models() -> None:
    assert set(EXPECTED_PARAMS) <= set(available_models())


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_shape_and_parameter_count(name: str) -> None:
    net = build_model(name)
    assert count_parameters(net) == EXPECTED_PARAMS[name]
    out = net(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, 10)
    assert architecture_file(name).is_file()  # the file a model's jobs depend on


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="available: .*cnn"):
        build_model("vgg99")


def test_bad_model_kwargs_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="model_kwargs"):
        build_model("cnn", dropout7=0.1)


def test_each_architecture_declares_its_true_macs() -> None:
    """The MACs a model file declares (read from its text by the workflow to order the train
    jobs) are those the evaluate step counts."""
    from mnistbench.config.load import declared_macs, train_cost
    from mnistbench.evaluate.scores import count_macs
    from mnistbench.models import DECLARED_MACS, available_models, build_model

    for name in available_models():
        assert declared_macs(name) == DECLARED_MACS[name] == count_macs(build_model(name)), name
    assert (
        train_cost({"arch": "allconv", "max_epochs": 15})
        > train_cost({"arch": "resnet18", "max_epochs": 5})
        > train_cost({"arch": "cnn", "max_epochs": 6})
        > train_cost({"arch": "lenet5", "max_epochs": 6})
    )
