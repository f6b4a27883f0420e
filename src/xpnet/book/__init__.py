"""The book's package layout, re-exporting xpnet: port a script by changing its imports.

*Deep Learning from Scratch* keeps its library in ``common/`` and ``dataset/`` beside the
chapter folders, and its scripts import from there.  ``xpnet.book`` has the same modules with the
same public names (and the names a ``from ... import *`` of the book's module brings along, such
as ``np``), all of them xpnet's own objects -- nothing is implemented twice:

================================  =========================================================
book                              xpnet
================================  =========================================================
``common.functions``              :mod:`xpnet.functions` (+ ``sum_squared_error``, ``softmax_loss``)
``common.layers``                 :mod:`xpnet.layers`
``common.gradient``               :mod:`xpnet.gradient`
``common.optimizer``              :mod:`xpnet.optim`
``common.util``                   :func:`xpnet.plotting.smooth_curve`,
                                  :func:`xpnet.datasets.shuffle_dataset`, ``im2col``,
                                  ``col2im``, ``conv_output_size`` of :mod:`xpnet.functions`
``common.multi_layer_net``        :class:`xpnet.MultiLayerNet`, float64 by default, float loss
``common.multi_layer_net_extend`` :class:`xpnet.MultiLayerNetExtend`, likewise
``common.trainer``                :class:`xpnet.Trainer`
``dataset.mnist``                 :func:`xpnet.datasets.load_mnist`
================================  =========================================================

The mechanical rule: ``from common.X`` -> ``from xpnet.book.common.X`` and ``from dataset.mnist``
-> ``from xpnet.book.dataset.mnist``.  The backend comes from the default backend
(``XPNET_BACKEND=torch python script.py``, or :func:`xpnet.set_default_backend`); the networks
compute in float64, as the book does, unless a dtype is chosen (``dtype=``, ``XPNET_DTYPE`` or
the default backend's dtype), draw the book's initial weights from NumPy's global random state,
return losses as Python floats, and let batch normalization train on one row as the book's does.

Examples
--------
>>> from xpnet.book.common.multi_layer_net import MultiLayerNet
>>> net = MultiLayerNet(input_size=4, hidden_size_list=[3], output_size=2, seed=0)
>>> net.dtype == net.xp.float64
True
"""
