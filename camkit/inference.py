"""``camkit explain``: one image (DICOM or PNG), one checkpoint, every requested CAM's map and boxes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def explain_image(image: str | Path, checkpoint: str | Path, out: str | Path, *, model_name: str = "gmic",
                  cams: list[str] | None = None, laterality: str | None = None, box_threshold: float = 0.5,
                  model_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Draw ``image``'s maps from every method in ``cams`` (all registered when None) into ``out`` (PNG).

    The model is rebuilt as ``create_model(model_name, **checkpoint["model_config"])`` for camkit
    checkpoints; a plain state dict (e.g. released weights) needs ``model_options``. Returns the probability,
    and per method the boxes (model frame and original image frame) and their scores.
    """
    import torch

    from camkit.registry.api import create_model, list_cams
    from camkit.metrics.boxes import batch_to_original, maps_to_boxes
    from camkit.cams.engine import run_cams
    from camkit.storage.checkpoint import load_checkpoint, read_checkpoint
    from camkit.data.imaging import preprocess, read_image
    from camkit.ui.figures import overlay_grid

    stored = read_checkpoint(checkpoint)
    config = dict(stored.get("model_config") or {}) if stored.get("format") else {}
    config.update(model_options or {})
    config.pop("checkpoint", None)
    if stored.get("format"):
        model = create_model(model_name, **config)
        load_checkpoint(checkpoint, model)
    else:  # a plain state dict (e.g. released weights): the model's own loader knows its quirks
        model = create_model(model_name, checkpoint=str(checkpoint), **config)
    model.eval()
    methods = cams or list_cams()
    pixels = read_image(image)
    x, transform = preprocess(pixels, tuple(model.input_size), laterality=laterality)
    x = x.reshape(1, 1, *x.shape[-2:])
    maps, output = run_cams(model, x, methods, model.cam_layers, int(getattr(model, "target_class", 0)),
                            output=model.cam_output, return_output=True)
    with torch.no_grad():
        prob = float(model.predict(output)[0])
    found = {m: maps_to_boxes(maps[m], box_threshold, np.array([prob])) for m in methods}
    overlay_grid([x[0, 0].numpy()], [np.zeros((0, 4))], {m: [maps[m][0].detach().cpu().numpy()] for m in methods},
                 {m: [found[m][0][0]] for m in methods}, out, titles=[f"{Path(image).name} p={prob:.2f}"])
    map_size = tuple(maps[methods[0]].shape[-2:])
    return {"image": str(image), "probability": prob, "figure": str(out),
            "boxes": {m: {"model_frame": found[m][0][0].tolist(),
                          "original_frame": batch_to_original(found[m], [transform], map_size)[0][0].tolist(),
                          "scores": found[m][0][1].tolist()} for m in methods}}
