"""Networks of DDAD-ASR: the plain per-member modules and their batched training form."""

from ddad_train.models.ae import AE
from ddad_train.models.batched import BatchedAE

__all__ = ["AE", "BatchedAE"]
