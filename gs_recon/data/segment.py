"""Instance masks from a segmentation model when a scene has none (`--data.segmenter`): SAM through
transformers (SamModel + SamProcessor: a hub id such as facebook/sam-vit-base, or a local folder), automatic
masks per photo as SAM's automatic mask generator makes them (a grid of point prompts, the best of the three
masks per point by predicted IoU, thresholds, greedy mask-IoU suppression), written to instance/ with ids
per photo. The photos are then tied together by data/associate.py (--data.masks per_image).

"tiny-random" builds a tiny randomly initialised SAM from a config (tests and CPU plumbing only: its masks
are noise, never objects)."""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np
import torch

from ..errors import SceneError


def tiny_random_sam(seed: int = 0):
    """A ~100k-parameter SAM with random weights and a 64 px processor: (model, processor)."""
    from transformers import SamConfig, SamModel, SamProcessor
    from transformers.models.sam.configuration_sam import (SamMaskDecoderConfig, SamPromptEncoderConfig,
                                                           SamVisionConfig)
    try:
        from transformers import SamImageProcessorPil as ImageProcessor
    except ImportError:  # older transformers
        from transformers import SamImageProcessor as ImageProcessor

    vc = SamVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=64, patch_size=8,
                         output_channels=16, mlp_dim=64, global_attn_indexes=[1], window_size=4, num_pos_feats=8)
    pc = SamPromptEncoderConfig(hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4)
    mc = SamMaskDecoderConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, mlp_dim=32,
                              iou_head_hidden_dim=16)
    torch.manual_seed(seed)
    model = SamModel(SamConfig(vision_config=vc.to_dict(), prompt_encoder_config=pc.to_dict(),
                               mask_decoder_config=mc.to_dict())).eval()
    ip = ImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
                        mask_size={"longest_edge": 16}, mask_pad_size={"height": 16, "width": 16})
    return model, SamProcessor(image_processor=ip)


def load_segmenter(spec: str):
    """(model, processor) for --data.segmenter: 'tiny-random', a local folder, or a hub id (offline cache
    first, one download attempt). Missing weights: a one-line SceneError saying how to get them."""
    if spec == "tiny-random":
        return tiny_random_sam()
    try:
        from transformers import SamModel, SamProcessor
    except ImportError as e:
        raise SceneError(f"--data.segmenter needs transformers ({e.name} missing): pip install -e '.[prior]'") from None
    local = Path(spec).expanduser()
    is_path = local.exists() or spec.startswith((".", "/", "~"))
    src = str(local) if is_path else spec
    for kw in ([{}] if is_path else [{"local_files_only": True}, {}]):
        try:
            return SamModel.from_pretrained(src, **kw).eval(), SamProcessor.from_pretrained(src, **kw)
        except Exception as e:  # noqa: PERF203
            err = e
    raise SceneError(f"segmentation model '{spec}' could not be loaded ({type(err).__name__}); get it once on a "
                     f"machine with internet: `huggingface-cli download {spec}`, or pass --data.segmenter "
                     f"/path/to/a/SAM/folder (saved with save_pretrained)")


@torch.no_grad()
def auto_masks(model, processor, image: np.ndarray, points_per_side: int = 16, iou_thresh: float = 0.86,
               stability_thresh: float = 0.9, nms_iou: float = 0.7, min_area: float = 0.002,
               batch: int = 64) -> np.ndarray:
    """SAM automatic masks of one photo. image [H, W, 3] uint8 -> labels [H, W] int64 (0 = none, 1..k, ids
    valid for this photo only; where masks overlap the smaller one wins, as parts lie on wholes)."""
    H, W = image.shape[:2]
    xs = (np.arange(points_per_side) + 0.5) / points_per_side * W
    ys = (np.arange(points_per_side) + 0.5) / points_per_side * H
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    inp = processor(images=image, return_tensors="pt")
    emb = model.get_image_embeddings(inp["pixel_values"])
    masks, scores = [], []
    for s in range(0, len(grid), batch):
        pts = [[[float(x), float(y)]] for x, y in grid[s:s + batch]]
        pin = processor(images=image, input_points=[pts], return_tensors="pt")
        out = model(image_embeddings=emb, input_points=pin["input_points"], multimask_output=True)
        logits = processor.image_processor.post_process_masks(out.pred_masks, pin["original_sizes"],
                                                              pin["reshaped_input_sizes"], binarize=False)[0]
        iou = out.iou_scores[0]  # [n, 3]
        best = iou.argmax(-1)
        lg = logits[torch.arange(len(best)), best]  # [n, H, W]
        sc = iou[torch.arange(len(best)), best]
        # stability: IoU of the mask thresholded at +1 and -1 (SAM's definition)
        hi, lo = (lg > 1.0).flatten(1).sum(-1).float(), (lg > -1.0).flatten(1).sum(-1).float()
        stab = hi / lo.clamp(min=1)
        m = lg > 0
        ok = (sc >= iou_thresh) & (stab >= stability_thresh) & (m.flatten(1).float().mean(-1) >= min_area)
        masks += list(m[ok])
        scores += sc[ok].tolist()
    keep: List[torch.Tensor] = []
    for i in np.argsort(scores)[::-1]:  # greedy suppression by mask IoU
        mi = masks[i]
        if all(float((mi & k).sum()) / float((mi | k).sum().clamp(min=1)) < nms_iou for k in keep):
            keep.append(mi)
    labels = np.zeros((H, W), np.int64)
    for k, mi in enumerate(sorted(keep, key=lambda t: -int(t.sum()))):  # large first, small painted over
        labels[mi.numpy()] = k + 1
    return labels


def segment_scene(root: Path, image_paths: List[Path], spec: str, progress: bool = True) -> Path:
    """Write root/instance/<stem>.png (per-photo ids) for every photo; returns the folder. Atomic per file."""
    from PIL import Image

    from ..io_utils import atomic_path
    from ..progress import track

    model, processor = load_segmenter(spec)
    out = Path(root) / "instance"
    out.mkdir(exist_ok=True)
    for p in track(image_paths, "segmenting", enabled=progress):
        img = np.asarray(Image.open(p).convert("RGB"))
        lab = auto_masks(model, processor, img)
        if lab.max() > 255:
            lab = np.where(lab > 255, 0, lab)
        with atomic_path(out / f"{Path(p).stem}.png") as tmp:
            Image.fromarray(lab.astype(np.uint8)).save(tmp, format="PNG")
    return out
