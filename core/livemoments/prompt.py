"""Empty-prompt embeddings, computed once from SD3's text encoders.

LiveMoments was fine-tuned with SD3's genuine embeddings of the empty prompt (CLIP-L, CLIP-G and
T5 parts are all non-zero), so zeros are wrong with real weights. Loading the three text
encoders takes ≈32 GB of RAM, hence this is a one-off command (`lmd model embed-prompt`) whose
result is stored in the checkpoint directory; the daemon never loads a text encoder.
"""

from __future__ import annotations

from pathlib import Path

import torch

from core.livemoments.layout import CheckpointError


def encode_empty_prompt(
    sd3_dir: Path | str, max_sequence_length: int = 256, use_t5: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """[1, 77 + max_sequence_length, 4096] and [1, 2048] for "" from a local SD3 diffusers dir.

    With `use_t5=False` the T5 part is zeros (what diffusers does without `text_encoder_3`):
    smaller and faster, but further from what the model was trained with.
    """
    root = Path(sd3_dir).expanduser()
    needed = ["text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"]
    if use_t5:
        needed += ["text_encoder_3", "tokenizer_3"]
    missing = [name for name in needed if not (root / name).is_dir()]
    if missing:
        raise CheckpointError(
            f"{root}: not a Stable Diffusion 3 diffusers directory with text encoders "
            f"(missing {', '.join(missing)})"
        )
    from diffusers import StableDiffusion3Pipeline

    extra = {} if use_t5 else {"text_encoder_3": None, "tokenizer_3": None}
    pipe = StableDiffusion3Pipeline.from_pretrained(
        str(root), transformer=None, vae=None, torch_dtype=torch.float32, **extra
    )
    with torch.inference_mode():
        prompt, _neg, pooled, _neg_pooled = pipe.encode_prompt(
            prompt="",
            prompt_2="",
            prompt_3="",
            device=torch.device("cpu"),
            do_classifier_free_guidance=False,
            max_sequence_length=max_sequence_length,
        )
    return prompt.float().cpu(), pooled.float().cpu()
