"""From-scratch reference layers checked against PyTorch: FFT convolution, batch norm and layer norm.

Each is a drop-in for its PyTorch counterpart, so any zoo model can be built with them
(``create_model("resnet18", norm_layer=cnnlab.nn.BatchNorm2d)``) or converted after the fact
(``cnnlab.nn.convert_convs(model, min_kernel=7)``).
"""

from cnnlab.nn.fft_conv import FFTConv2d, convert_convs, fft_conv2d
from cnnlab.nn.norm import BatchNorm2d, LayerNorm

__all__ = ["BatchNorm2d", "FFTConv2d", "LayerNorm", "convert_convs", "fft_conv2d"]
