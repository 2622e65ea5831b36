"""GLAM (Liu et al., MIDL 2021) as a camkit model: multi-scale global maps, one patch, a local segmenter.

Module attributes are declared in the released order (``global_network``, ``detection_network``) so the
official preset's ``state_dict()`` has exactly the released keys (``../shared/glam/state_dict_keys.tsv``).
Everything runs batched on the model's device: the patch search and crop are GMIC's, and so is the paste-back
(all in :mod:`camkit.nn.regions`); no host syncs, no per-image loops, no numpy round trips (the release has all
three, docs/models.md).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camkit.data.sample import mass_targets
from camkit.protocols import ModelDefaults
from camkit.nn import regions as roi
from camkit.nn.evidence import evidence_alignment

from .global_net import GlobalNetwork3, top_k_mean
from .local_net import DetectionNetwork
from .presets import GLAMConfig
from .traincam import glam_train_method, patch_source_maps

CLASS_SPECIFIC_KEYS = tuple(f"global_network.postprocess_module.{k}.weight"
                            for k in ("gn_conv_1", "gn_conv_2", "gn_conv_last", "combine")) + (
    "detection_network.gn_conv_last.weight",)


class GLAM(ModelDefaults, nn.Module):
    """GLAM with every size taken from a :class:`GLAMConfig`; forward returns all outputs as a dict.

    Outputs: ``y_global`` (B, C) the prediction (mean of the three scales' top-k means), ``y_local`` (B, C)
    (the patch map's top-k mean: the release computes and drops it; a loss needs it), ``patch_locations``
    (B, K, 2) long upper-left (row, col) in input pixels, ``saliency`` (B, C, H, W) the final
    full-resolution map, ``saliency_global`` (B, C, h, w) the coarse patch map, ``saliency_local`` (B, C, H, W)
    the patch maps pasted into zeros, ``scale_maps`` (B, 3, C, h, w) the finest .. final sigmoid maps,
    ``patch_maps`` (B, K, C, ph/4, pw/4) and ``roi_map`` (B, C, h, w), the detached train-cam map that picked
    the patches.
    """

    def __init__(self, cfg: GLAMConfig, preset: str = "official"):
        super().__init__()
        cfg.validate()
        self.global_network = GlobalNetwork3(cfg.global_widths, cfg.global_blocks, cfg.global_strides,
                                             cfg.map_stages, cfg.num_classes)
        self.detection_network = DetectionNetwork(cfg.local_widths, cfg.local_blocks, cfg.local_in_chans,
                                                  cfg.num_classes)
        self.cfg = cfg
        self.preset = preset
        self.train_method = glam_train_method(cfg.train_cam, cfg.train_cam_options)
        trunk = "global_network.downsampling_branch"
        # the camkit model protocol: CAMs hook the three inputs of the saliency heads
        self.input_size: tuple[int, int] = tuple(cfg.input_size)  # type: ignore[assignment]
        self.cam_layers: list[str] = [f"{trunk}.layer_list.{cfg.map_stages[0]}",
                                      f"{trunk}.layer_list.{cfg.map_stages[1]}", f"{trunk}.final_act"]
        self.score_outputs: tuple[str, ...] = ("y_global",)
        self.cam_output: str = "y_global"
        self.config: dict = {"preset": preset, **cfg.to_dict()}
        self.default_lr: float = cfg.lr
        self.reinitialised: list[str] = []

    @property
    def train_cam(self) -> str:
        return self.cfg.train_cam

    @property
    def target_class(self) -> int:
        """Index of the "mass" class in the score outputs (the CAM target)."""
        return self.cfg.mass_index

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"glam expects images (B, 1, H, W), got shape {tuple(x.shape)}")
        cfg = self.cfg
        b, _, height, width = x.shape
        feats, (x1, x2, x3) = self.global_network(x)
        levels = [top_k_mean(m, cfg.top_k) for m in (x1, x2, x3)]
        y_global = (levels[0] + levels[1] + levels[2]) / 3
        w1, w2, w3 = cfg.patch_weights
        saliency_global = w3 * x3 + w2 * x2 + w1 * x1  # the release's order of terms
        heads = self.global_network.postprocess_module.heads
        maps = patch_source_maps(self.train_method, feats, heads, cfg.top_k, cfg.patch_weights, saliency_global,
                                 inputs=x, trunk=self.global_network.downsampling_branch)
        corners = roi.retrieve_rois(maps, cfg.num_patches, cfg.patch_size, (height, width))
        crops = roi.extract_crops(x, corners, cfg.patch_size)  # (B, K, ph, pw)
        k, (ph, pw) = cfg.num_patches, cfg.patch_size
        local = self.detection_network(crops.reshape(b * k, 1, ph, pw))
        patch_maps = local.view(b, k, *local.shape[1:])
        y_local = top_k_mean(patch_maps.transpose(1, 2), cfg.local_top_k)  # over all K patches and pixels
        saliency_local = roi.paste_patch_maps(patch_maps, corners, cfg.patch_size, (height, width))
        saliency = (saliency_local + F.interpolate(saliency_global, size=(height, width))) / 2
        return {"y_global": y_global, "y_local": y_local, "patch_locations": corners, "saliency": saliency,
                "saliency_global": saliency_global, "saliency_local": saliency_local,
                "scale_maps": torch.stack([x1, x2, x3], 1), "patch_maps": patch_maps, "roi_map": maps}

    def native_cam(self, outputs: dict[str, Tensor]) -> Tensor:
        """GLAM's own map: the full-resolution segmentation ``saliency`` (B, C, H, W)."""
        return outputs["saliency"]

    def predict(self, outputs: dict[str, Tensor]) -> Tensor:
        """Probability of "mass": ``y_global`` of ``mass_class`` (GLAM's prediction; the local network
        changes only the maps)."""
        return outputs["y_global"][:, self.cfg.mass_index]

    def targets(self, labels: Tensor, num: int) -> Tensor:
        """(B,) 0/1 labels -> (B, C) multi-label targets on the mass class; (B, C) targets pass through."""
        return mass_targets(labels, num, self.cfg.mass_index)

    def training_loss(self, images: Tensor, labels: Tensor, progress: float) -> tuple[Tensor, dict]:
        """BCE on ``y_global`` and (times ``local_weight``) on ``y_local``, per class, plus ``beta`` times the
        mean of the three global maps (a sparsity term, as GMIC's), plus ``evidence_weight`` times camkit's
        evidence alignment of the patch map (0 = off). The release has no training code; this is camkit's
        choice (docs/models.md)."""
        cfg = self.cfg
        if cfg.evidence_weight > 0:
            images = images.detach().requires_grad_(True)
        out = self(images)
        targets = self.targets(labels, out["y_global"].shape[1])
        evidence = torch.zeros((), device=images.device)
        positive = targets[:, cfg.mass_index] > 0.5
        if cfg.evidence_weight > 0 and bool(positive.any()):
            # only the input gradient (no parameter gradients): one extra backward through the global network
            (grad,) = torch.autograd.grad(out["y_global"][positive, cfg.mass_index].sum(), images,
                                          retain_graph=True)
            evidence = evidence_alignment(out["saliency_global"][positive, cfg.mass_index], grad[positive],
                                          cfg.evidence_power, cfg.evidence_space)
        with torch.autocast(images.device.type, enabled=False):
            bce_global = F.binary_cross_entropy(out["y_global"].float().clamp(1e-6, 1 - 1e-6), targets,
                                                reduction="none").mean(0).sum()
            bce_local = F.binary_cross_entropy(out["y_local"].float().clamp(1e-6, 1 - 1e-6), targets,
                                               reduction="none").mean(0).sum()
            sparsity = out["scale_maps"].float().mean()
            loss = bce_global + cfg.local_weight * bce_local + cfg.beta * sparsity + cfg.evidence_weight * evidence
        parts = torch.stack([loss, bce_global, bce_local, sparsity, evidence]).detach().tolist()  # one host sync
        return loss, dict(zip(("loss", "bce_global", "bce_local", "sparsity", "evidence"), parts))
