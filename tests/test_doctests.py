"""The examples in the core modules' docstrings run and print what they say."""

import doctest
import importlib

import pytest

MODULES = ["xpnet.backend", "xpnet.backend._base", "xpnet.functions", "xpnet.init", "xpnet.nets",
           "xpnet.optim", "xpnet.params", "xpnet.io", "xpnet.progress", "xpnet.devicelog",
           "xpnet.plotting", "xpnet.trainer", "xpnet.datasets.mnist", "xpnet.preprocessing",
           "xpnet.gradcheck", "xpnet.ensemble", "xpnet.layers.activations", "xpnet.layers.conv",
           "xpnet.layers.normalization", "xpnet.checkpoint", "xpnet.network", "xpnet.errors",
           "xpnet.layers.dropout", "xpnet.convnet", "xpnet.gradient", "xpnet.datasets.shuffle",
           "xpnet.book", "xpnet.book.common.functions", "xpnet.book.common.multi_layer_net",
           "xpnet.book.common.multi_layer_net_extend", "xpnet.search", "xpnet.search.spaces",
           "xpnet.search.halving", "xpnet.search.driver", "xpnet.search.objective",
           "xpnet.search.report"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    if name != "xpnet.params":
        assert result.attempted > 0
