# coding: utf-8
# Backpropagation against numerical gradients for a network with batch normalization, on a
# few digits (the book's batch_norm_gradient_check.py checks every parameter on one digit).
import sys, os
sys.path.append(os.pardir)
import numpy as np
from dataset.mnist import load_mnist
from common.multi_layer_net_extend import MultiLayerNetExtend
from common.gradient import numerical_gradient, numerical_gradient_2d
from common.functions import *

(x_train, t_train), (x_test, t_test) = load_mnist(normalize=True, one_hot_label=True)

network = MultiLayerNetExtend(input_size=784, hidden_size_list=[20, 20], output_size=10,
                              use_batchnorm=True)

x_batch = x_train[:3]
t_batch = t_train[:3]

grad_backprop = network.gradient(x_batch, t_batch)

loss_W = lambda W: network.loss(x_batch, t_batch, train_flg=True)
grad_numerical = {}
for key in ('b1', 'gamma1', 'beta1', 'b2', 'gamma2', 'beta2', 'b3'):
    grad_numerical[key] = numerical_gradient(loss_W, network.params[key])
grad_numerical['W3'] = numerical_gradient_2d(loss_W, network.params['W3'])

for key in grad_numerical.keys():
    diff = np.average( np.abs(grad_backprop[key] - grad_numerical[key]) )
    print(key + ":" + str(diff))

y = softmax(network.predict(x_batch))
print("softmax_loss:" + str(softmax_loss(network.predict(x_batch), t_batch)))
print("cross_entropy_error:" + str(cross_entropy_error(y, t_batch)))
