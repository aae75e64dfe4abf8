"""What a trained network learned: filters, activations, attributions, class images, feature space, sanity checks.

Every method takes a model (any ``nn.Module`` classifier; zoo networks need no per-model code) and a batch
of model input, returns tensors or arrays, and leaves the model exactly as it found it
(:func:`cnnlab.explain.guard.preserved`). :func:`cnnlab.explain.report.explain_checkpoint` runs them on a
trained checkpoint and writes figures and arrays; ``cnnlab explain`` is its command line.
"""

from cnnlab.explain.activations import TopPatches, activations, conv_filters, crop_patches, top_patches
from cnnlab.explain.attribution import ATTRIBUTION_METHODS, attribution_map
from cnnlab.explain.class_model import AscentSettings, class_images, gaussian_blur, unit_images
from cnnlab.explain.embedding import knn_purity, nearest_neighbours, pca, penultimate_features, tsne
from cnnlab.explain.gradcam import grad_cam, guided_grad_cam, layer_grad_cam
from cnnlab.explain.gradients import (
    ReLURule,
    deconvnet,
    guided_backprop,
    input_gradient,
    relu_rule,
    saliency,
    smooth_gradient,
)
from cnnlab.explain.guard import ModelState, preserved
from cnnlab.explain.occlusion import OcclusionMap, occlusion
from cnnlab.explain.sanity import SanityCheck, cascade_layers, rank_correlation, sanity_check, ssim

__all__ = [
    "ATTRIBUTION_METHODS",
    "AscentSettings",
    "ModelState",
    "OcclusionMap",
    "ReLURule",
    "SanityCheck",
    "TopPatches",
    "activations",
    "attribution_map",
    "cascade_layers",
    "class_images",
    "conv_filters",
    "crop_patches",
    "deconvnet",
    "gaussian_blur",
    "grad_cam",
    "guided_backprop",
    "guided_grad_cam",
    "input_gradient",
    "knn_purity",
    "layer_grad_cam",
    "nearest_neighbours",
    "occlusion",
    "pca",
    "penultimate_features",
    "preserved",
    "rank_correlation",
    "relu_rule",
    "saliency",
    "sanity_check",
    "smooth_gradient",
    "ssim",
    "top_patches",
    "tsne",
    "unit_images",
]
