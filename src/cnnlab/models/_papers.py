"""The papers behind the zoo, as data: authors, year, venue, title and the key idea in two lines.

``cnnlab info MODEL`` shows them. Each registered network names its paper in the registry
(``ModelInfo.paper``, "First author et al. YEAR, Title"); :func:`paper_for` finds the entry by the title
in that text, so a new family needs only a row here. Authors, venues and years are those printed on the
papers (and their proceedings); the ideas are paraphrases for students, not quotations.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PAPERS", "Paper", "paper_for"]


@dataclass(frozen=True)
class Paper:
    """One paper: who, when, where, what it is called, and its key idea."""

    title: str
    authors: str
    year: int
    venue: str
    idea: tuple[str, str]  # two lines


PAPERS: tuple[Paper, ...] = (
    Paper(
        "Gradient-based learning applied to document recognition",
        "Y. LeCun, L. Bottou, Y. Bengio, P. Haffner", 1998, "Proceedings of the IEEE 86(11)",
        ("Convolutions with shared weights alternate with subsampling, learning features from raw pixels;",
         "the whole network (C1-S2-C3-S4-C5-F6, 60K parameters) is trained end to end by backpropagation."),
    ),
    Paper(
        "ImageNet Classification with Deep Convolutional Neural Networks",
        "A. Krizhevsky, I. Sutskever, G. E. Hinton", 2012, "NeurIPS (NIPS) 2012",
        ("Five convolutional and three fully connected layers, trained on two GPUs with ReLU, dropout and",
         "data augmentation, won ImageNet 2012 by a wide margin and started the deep-learning era of vision."),
    ),
    Paper(
        "Very Deep Convolutional Networks for Large-Scale Image Recognition",
        "K. Simonyan, A. Zisserman", 2015, "ICLR 2015",
        ("Depth from stacks of small 3x3 convolutions only: two 3x3 layers see as far as one 5x5 with fewer",
         "parameters and one more non-linearity; 11 to 19 weight layers in five stages separated by pooling."),
    ),
    Paper(
        "Network In Network",
        "M. Lin, Q. Chen, S. Yan", 2014, "ICLR 2014",
        ("A small MLP slides over the image after each convolution (1x1 convolutions: mixing channels per pixel),",
         "and global average pooling over class maps replaces the fully connected classifier."),
    ),
    Paper(
        "Going Deeper with Convolutions",
        "C. Szegedy, W. Liu, Y. Jia, P. Sermanet, S. Reed, D. Anguelov, D. Erhan, V. Vanhoucke, A. Rabinovich",
        2015, "CVPR 2015",
        ("Inception modules run 1x1, 3x3, 5x5 convolutions and pooling side by side, with 1x1 reductions to keep",
         "the cost down: 22 layers, 12x fewer parameters than AlexNet; auxiliary classifiers help training."),
    ),
    Paper(
        "Rethinking the Inception Architecture for Computer Vision",
        "C. Szegedy, V. Vanhoucke, S. Ioffe, J. Shlens, Z. Wojna", 2016, "CVPR 2016",
        ("Factorized convolutions (a 5x5 as two 3x3, an nxn as 1xn then nx1) and grid reductions that avoid",
         "representational bottlenecks; label smoothing as a regularizer; 299x299 inputs."),
    ),
    Paper(
        "Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning",
        "C. Szegedy, S. Ioffe, V. Vanhoucke, A. Alemi", 2017, "AAAI 2017",
        ("Inception-v4 makes the Inception blocks uniform; Inception-ResNet adds each block's output to its",
         "input, which trains markedly faster; scaling the residuals down keeps very wide ones stable."),
    ),
    Paper(
        "Deep Residual Learning for Image Recognition",
        "K. He, X. Zhang, S. Ren, J. Sun", 2016, "CVPR 2016",
        ("Each block learns a residual added to its input (y = F(x) + x), so the identity is easy and networks",
         "of 50-152 layers (1202 on CIFAR) train; bottleneck blocks (1x1, 3x3, 1x1) keep deep ones affordable."),
    ),
    Paper(
        "Identity Mappings in Deep Residual Networks",
        "K. He, X. Zhang, S. Ren, J. Sun", 2016, "ECCV 2016",
        ("Batch norm and ReLU move before each convolution (pre-activation), leaving a clean identity path",
         "from any block to any other: signals and gradients pass unchanged, and a 1001-layer network trains."),
    ),
    Paper(
        "Bag of Tricks for Image Classification with Convolutional Neural Networks",
        "T. He, Z. Zhang, H. Zhang, Z. Zhang, J. Xie, M. Li", 2019, "CVPR 2019",
        ("ResNet-B/C/D: the stride moves to the 3x3 convolution, the 7x7 stem becomes three 3x3, and the",
         "shortcut average-pools before its 1x1 projection, so no input pixel is skipped; plus training tricks."),
    ),
    Paper(
        "Aggregated Residual Transformations for Deep Neural Networks",
        "S. Xie, R. Girshick, P. Dollár, Z. Tu, K. He", 2017, "CVPR 2017",
        ("Cardinality: a block is the sum of many parallel paths of the same shape (a grouped convolution),",
         "a dimension beside depth and width that buys more accuracy than either at the same cost."),
    ),
    Paper(
        "Wide Residual Networks",
        "S. Zagoruyko, N. Komodakis", 2016, "BMVC 2016",
        ("Wider, shallower residual networks: multiplying each block's channels by k beats adding layers, and a",
         "16-layer wide network matches a 1000-layer thin one while training several times faster."),
    ),
    Paper(
        "Densely Connected Convolutional Networks",
        "G. Huang, Z. Liu, L. van der Maaten, K. Q. Weinberger", 2017, "CVPR 2017",
        ("Each layer reads the concatenated maps of all earlier layers of its block and adds k new ones (the",
         "growth rate): features are reused, so narrow layers suffice; BC adds 1x1 bottlenecks and compression."),
    ),
    Paper(
        "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size",
        "F. N. Iandola, S. Han, M. W. Moskewicz, K. Ashraf, W. J. Dally, K. Keutzer", 2016, "arXiv:1602.07360",
        ("Fire modules: a 1x1 squeeze layer with few channels feeds parallel 1x1 and 3x3 expand layers, and",
         "pooling comes late; AlexNet's ImageNet accuracy with 1.2M parameters instead of 61M."),
    ),
    Paper(
        "Designing Network Design Spaces",
        "I. Radosavovic, R. P. Kosaraju, R. Girshick, K. He, P. Dollár", 2020, "CVPR 2020",
        ("Design spaces, not single networks: the good ones have stage widths on a quantized linear function of",
         "depth (w_0, w_a, w_m) and a shared group width; RegNetY adds squeeze-and-excitation."),
    ),
    Paper(
        "U-Net: Convolutional Networks for Biomedical Image Segmentation",
        "O. Ronneberger, P. Fischer, T. Brox", 2015, "MICCAI 2015",
        ("A contracting path captures context and a symmetric expanding path localizes; skip connections",
         "concatenate each encoder map into the decoder at its scale, so few training images suffice."),
    ),
    Paper(
        "Visualizing and Understanding Convolutional Networks",
        "M. D. Zeiler, R. Fergus", 2014, "ECCV 2014",
        ("A deconvolutional network projects activations back to pixels; what it showed led to AlexNet with a",
         "7x7 stride-2 first layer and stride-2 second layer (ZFNet), fewer dead filters and better accuracy."),
    ),
    Paper(
        "Batch Normalization: Accelerating Deep Network Training by Reducing Internal Covariate Shift",
        "S. Ioffe, C. Szegedy", 2015, "ICML 2015",
        ("Normalize each channel over the mini-batch, then scale and shift with learned parameters; BN-Inception",
         "trains with 30x higher learning rates, in 14x fewer steps, and drops dropout and the 5x5 branch."),
    ),
    Paper(
        "FractalNet: Ultra-Deep Neural Networks without Residuals",
        "G. Larsson, M. Maire, G. Shakhnarovich", 2017, "ICLR 2017",
        ("A fractal expansion rule joins paths of depth 1, 2, 4, ... by averaging; very deep networks train",
         "without identity shortcuts, and drop-path regularization lets any single column stand alone."),
    ),
    Paper(
        "ConvNet layer patterns",
        "A. Karpathy et al. (CS231n course notes)", 2016,
        "Stanford CS231n: Convolutional Neural Networks for Visual Recognition",
        ("The common architecture INPUT -> [[CONV -> RELU]*N -> POOL?]*M -> [FC -> RELU]*K -> FC: stacks of",
         "small 3x3 convolutions before each pooling see as far as one large filter with fewer parameters."),
    ),
)


def paper_for(citation: str) -> Paper | None:
    """The entry whose title appears in a registry citation such as "He et al. 2016, Deep Residual ..."."""
    text = citation.casefold()
    return next((p for p in PAPERS if p.title.casefold() in text), None)
