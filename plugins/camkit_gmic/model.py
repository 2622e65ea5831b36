"""GMIC (Shen et al. 2021) as a camkit model: global network + saliency, ROI crops, local network, MIL, fusion.

Module attributes are declared in the released order (``ds_net, left_postprocess_net, dn_resnet, mil_attn_V,
mil_attn_U, mil_attn_w, classifier_linear, fusion_dnn``) so the official preset's ``state_dict()`` has exactly
the released keys in the released order.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from camkit.cams.capture import uncaptured
from camkit.data.sample import mass_targets
from camkit.nn import regions as roi
from camkit.nn.evidence import evidence_alignment
from camkit.nn.traincam import NATIVE, global_features, roi_source_maps, train_method

from .global_net import GlobalNetwork, SaliencyHead, top_t_pool
from .local_net import build_local_resnet, local_features
from .losses import gmic_loss
from .mil import gated_attention
from .presets import GMICConfig

CLASS_SPECIFIC_KEYS = ("left_postprocess_net.gn_conv_last.weight", "classifier_linear.weight",
                       "fusion_dnn.weight", "fusion_dnn.bias")


class GMIC(nn.Module):
    """GMIC with every size taken from a :class:`GMICConfig`; forward returns all outputs as a dict.

    Outputs: ``y_fusion`` (B,C) the prediction, ``y_global`` (B,C), ``y_local`` (B,C), ``saliency`` (B,C,h,w),
    ``patch_locations`` (B,K,2) long upper-left (row, col) in input pixels, ``patch_attention`` (B,K),
    ``h_g`` (B,Cg,h,w) and ``roi_map`` (B,C,h,w) the detached train-cam maps that picked the patches.
    """

    def __init__(self, cfg: GMICConfig, preset: str = "official"):
        super().__init__()
        cfg.validate()
        c, d = cfg.num_classes, cfg.local_widths[-1]
        self.ds_net = GlobalNetwork(cfg.global_widths, cfg.global_blocks, cfg.global_strides)
        self.left_postprocess_net = SaliencyHead(self.ds_net.out_channels, c)
        self.dn_resnet = build_local_resnet(cfg.local_widths, cfg.local_blocks, cfg.local_stem_width,
                                            cfg.local_in_chans)
        self.mil_attn_V = nn.Linear(d, cfg.attn_dim, bias=False)
        self.mil_attn_U = nn.Linear(d, cfg.attn_dim, bias=False)
        self.mil_attn_w = nn.Linear(cfg.attn_dim, 1, bias=False)
        self.classifier_linear = nn.Linear(d, c, bias=False)
        self.fusion_dnn = nn.Linear(self.ds_net.out_channels + d, c)
        self.cfg = cfg
        self.preset = preset
        # the train-cam's method, created once with its options (None: GMIC's own map)
        self.train_method = train_method(cfg.train_cam, cfg.train_cam_options)
        # the camkit model protocol
        self.input_size: tuple[int, int] = tuple(cfg.input_size)  # type: ignore[assignment]
        self.cam_layers: list[str] = ["ds_net"]
        self.score_outputs: tuple[str, ...] = ("y_global", "y_fusion")
        self.cam_output: str = "y_global"
        self.config: dict = {"preset": preset, **cfg.to_dict()}
        self.default_lr: float = cfg.lr
        self.loss_parts_as_floats = True  # False: 0-dim tensors, no host sync per step (for device timing)
        self.reinitialised: list[str] = []  # filled by checkpoint loading into another class count
        self._step = 0

    @property
    def train_cam(self) -> str:
        return self.cfg.train_cam

    @property
    def target_class(self) -> int:
        """Index of the "mass" class in the score outputs (the CAM target)."""
        return self.cfg.mass_index

    def train_state(self) -> dict:
        """Python-side training state saved in camkit checkpoints (the flip-direction counter)."""
        return {"step": self._step}

    def load_train_state(self, state: dict) -> None:
        """Restore :meth:`train_state` on resume, so a resumed run equals an uninterrupted one."""
        self._step = int(state.get("step", 0))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"gmic expects images (B, 1, H, W), got shape {tuple(x.shape)}")
        cfg = self.cfg
        input_hw = (x.shape[-2], x.shape[-1])
        method = self.train_method or NATIVE
        h_g, full_inputs = global_features(self.ds_net, x, method)
        maps = None
        if full_inputs is not None:  # FullGrad reads the graph from the input, which serves its map only
            maps = self._roi_maps(method, h_g, None, x, full_inputs)
            if not torch.is_grad_enabled():
                h_g = h_g.detach()
        saliency = self.left_postprocess_net(h_g)
        y_global = top_t_pool(saliency, cfg.top_t)
        if maps is None:
            maps = self._roi_maps(method, h_g, saliency, x, None)
        corners = roi.retrieve_rois(maps, cfg.num_crops, cfg.crop_size, input_hw)
        crops = roi.extract_crops(x, corners, cfg.crop_size)
        h_crops = local_features(self.dn_resnet, crops, cfg.local_in_chans)
        z, attention = gated_attention(h_crops, self.mil_attn_V, self.mil_attn_U, self.mil_attn_w)
        y_local = torch.sigmoid(self.classifier_linear(z))
        g = h_g.amax((2, 3))
        y_fusion = torch.sigmoid(self.fusion_dnn(torch.cat([g, z.to(g.dtype)], 1)))
        return {"y_fusion": y_fusion, "y_global": y_global, "y_local": y_local, "saliency": saliency,
                "patch_locations": corners, "patch_attention": attention, "h_g": h_g, "roi_map": maps}

    def _roi_maps(self, method: Any, h_g: Tensor, saliency: Tensor | None, x: Tensor,
                  full_inputs: dict | None) -> Tensor:
        return roi_source_maps(method, h_g, self.left_postprocess_net.gn_conv_last.weight, self.cfg.top_t,
                               saliency, inputs=x, ds_net=self.ds_net, full_inputs=full_inputs)

    def global_saliency(self, x: Tensor) -> Tensor:
        """The saliency map alone (global network + head), e.g. for flip consistency."""
        return self.left_postprocess_net(self.ds_net(x))

    def score_from(self, layer: str, activations: Tensor, output: str | None = None) -> Tensor:
        """``y_global`` (N, C) computed from a replaced ``ds_net`` output: only the saliency head and top-t pooling
        run again (what Ablation-CAM needs per ablated channel); NotImplemented for any other layer or output,
        and the CAM engine then re-runs the whole model."""
        if layer != "ds_net" or (output or self.cam_output) != "y_global":
            return NotImplemented
        return top_t_pool(self.left_postprocess_net(activations), self.cfg.top_t)

    def score_images(self, images: Tensor, output: str | None = None) -> Tensor:
        """``y_global`` (N, C) of new images from the global network alone (what Score-CAM's masked copies
        need: y_global does not depend on the crops or the local network); NotImplemented for other outputs."""
        if (output or self.cam_output) != "y_global":
            return NotImplemented
        with uncaptured():  # the train-cam's own reruns, if any, stay out of the explained forward's hooks
            h_g = self.ds_net(images)
        return top_t_pool(self.left_postprocess_net(h_g), self.cfg.top_t)

    def native_cam(self, outputs: dict[str, Tensor]) -> Tensor:
        """GMIC's own CAM: the saliency map (B, C, h, w)."""
        return outputs["saliency"]

    def predict(self, outputs: dict[str, Tensor]) -> Tensor:
        """Probability of "mass": ``y_fusion`` of ``mass_class`` (the last class; "malignant" when C=2)."""
        return outputs["y_fusion"][:, self.cfg.mass_index]

    def targets(self, labels: Tensor, num: int) -> Tensor:
        """(B,) 0/1 labels -> (B, C) multi-label targets on the mass class; (B, C) targets pass through."""
        return mass_targets(labels, num, self.cfg.mass_index)

    def training_loss(self, images: Tensor, labels: Tensor, progress: float) -> tuple[Tensor, dict]:
        """Paper eq. 2 (BCE on y_global, y_local, y_fusion per class + beta * mean |saliency|), plus camkit's
        optional flip-consistency (``flip_weight``) and evidence-alignment (``evidence_weight``) terms, neither
        in the paper. The two extra terms are always in ``parts`` (0 when off) so logs keep their columns."""
        cfg = self.cfg
        step = self._step
        self._step += 1
        flip_w = _ramped(cfg.flip_weight, cfg.flip_ramp, progress)
        # every n-th step at n times the weight: the same pull on average for 1/n of the extra backward
        evidence_w = cfg.evidence_every * _ramped(cfg.evidence_weight, cfg.evidence_ramp, progress)
        if step % cfg.evidence_every:
            evidence_w = 0.0
        if evidence_w > 0:
            images = images.detach().requires_grad_(True)
        out = self(images)
        targets = self.targets(labels, out["y_fusion"].shape[1])
        # horizontal and vertical flips on alternate steps (both at once lets the net read the breast side)
        flip_dim = 3 if step % 2 == 0 else 2
        flipped = self.global_saliency(images.flip(flip_dim)) if flip_w > 0 else None
        loss, parts = gmic_loss(out, targets, cfg.beta, flip_w, flipped, flip_dim)
        evidence = torch.zeros((), device=images.device)
        positive = targets[:, cfg.mass_index] > 0.5
        if evidence_w > 0 and bool(positive.any()):
            # only the input gradient (no parameter gradients): one extra backward through the global network
            (grad,) = torch.autograd.grad(out["y_global"][positive, cfg.mass_index].sum(), images,
                                          retain_graph=True)
            evidence = evidence_alignment(out["saliency"][positive, cfg.mass_index], grad[positive],
                                          cfg.evidence_power, cfg.evidence_space)
            loss = loss + evidence_w * evidence
            parts["loss"] = loss.detach()
        parts["evidence"] = evidence.detach()
        if self.loss_parts_as_floats:
            vals = torch.stack(list(parts.values())).tolist()  # one host sync for all parts
            parts = dict(zip(parts, vals))
        return loss, parts


def _ramped(weight: float, ramp: float, progress: float) -> float:
    """``weight`` scaled linearly from 0 to 1 over the first ``ramp`` fraction of training."""
    return weight * (min(1.0, progress / ramp) if ramp > 0 else 1.0)
