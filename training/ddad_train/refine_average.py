"""Weight averaging of the refinement networks (SWA): the default refinement mode.

A refiner trained with a constant learning rate on random synthetic anomalies wanders: its
test AUC moves between epochs far more than its loss does, so which network the last epoch
leaves is partly luck (issue 18: R_dual 0.881-0.994 over five seeds on the demo). The
uniform average of the weights at the end of every epoch (stochastic weight averaging,
Izmailov et al., UAI 2018) sits in the middle of the region the optimiser wanders through;
its batch-norm statistics are recomputed for the averaged weights, since the running
statistics of the wandering network do not fit them.
"""

from __future__ import annotations

import copy

import torch

from ddad_train.models import RefineNet


class WeightAverage:
    """The uniform running average of a network's parameters, one snapshot per epoch.

    Only parameters are averaged: batch-norm buffers belong to the weights they were
    measured with and are recomputed by ``recalibrate_batch_norm``.

    Example:
        >>> net = RefineNet(1)
        >>> avg = WeightAverage()
        >>> avg.update(net); avg.count
        1
    """

    def __init__(self) -> None:
        self.count = 0
        self.params: dict[str, torch.Tensor] = {}

    def update(self, net: torch.nn.Module) -> None:
        """Adds the network's current parameters to the average."""
        self.count += 1
        with torch.no_grad():
            for name, p in net.named_parameters():
                if name not in self.params:
                    self.params[name] = p.detach().clone()
                else:  # mean_n = mean_{n-1} + (x - mean_{n-1}) / n
                    self.params[name].add_(p.detach() - self.params[name], alpha=1.0 / self.count)

    def averaged(self, net: torch.nn.Module) -> torch.nn.Module:
        """A copy of ``net`` with the averaged parameters (its batch-norm buffers still
        those of ``net``: recalibrate before use)."""
        if not self.count:
            msg = "no snapshot averaged yet"
            raise RuntimeError(msg)
        out = copy.deepcopy(net)
        with torch.no_grad():
            for name, p in out.named_parameters():
                p.copy_(self.params[name])
        return out

    def state_dict(self) -> dict:
        return {"count": self.count, "params": {k: v.clone() for k, v in self.params.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.count = int(state["count"])
        self.params = {k: v.clone() for k, v in state["params"].items()}


def recalibrate_batch_norm(net: torch.nn.Module, batches: list[torch.Tensor]) -> torch.nn.Module:
    """Recomputes every batch-norm layer's running mean and variance as the plain average
    over ``batches`` (momentum None), as torch.optim.swa_utils.update_bn does; returns the
    network in eval mode."""
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    with torch.no_grad():
        for x in batches:
            net(x)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return net.eval()


def averaged_refiner(average: WeightAverage, net: RefineNet, batches: list[torch.Tensor]
                     ) -> RefineNet:
    """The refiner to export in SWA mode: averaged weights, batch norm recalibrated on
    ``batches`` (maps of training normals with synthetic anomalies), eval mode."""
    return recalibrate_batch_norm(average.averaged(net), batches)
