"""Training LiveMoments: the paper's bridge-matching objective, pairs, the fit loop, evaluation.

The published LiveMoments code is inference only; this package adds what the paper describes
(Sec. 3.1, 4.1, Appendix B) so that lmd can fine-tune the model, also on an owner's own photos:

* `objective`: the forward process z_t = α(t)·z_H + β(t)·z_L + σ(t)·ε and its velocity target;
* `pairs` and `dataset`: training pairs from arrays (video frames, Live Photos) and on disk;
* `forward`, `trainable`, `trainer`, `state`, `fit`: the fit loop, full or LoRA fine-tuning,
  exact resumption;
* `publish`: the trained model as a checkpoint in the published layout;
* `evaluate`: validation during fit, and PSNR-Y/SSIM-Y of any restorer on pair sets.

Modules import torch only where they need it: building and reading pairs does not.
"""
