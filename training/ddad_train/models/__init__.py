"""Networks of DDAD-ASR: the plain per-member modules, their batched training form, and the
ASR refinement network."""

from ddad_train.models.ae import AE, attention_entropy
from ddad_train.models.batched import BatchedAE
from ddad_train.models.refine import RefineNet, focal_loss

__all__ = ["AE", "BatchedAE", "RefineNet", "attention_entropy", "focal_loss"]
