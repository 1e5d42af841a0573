"""Export of trained modules to a bundle: one ONNX graph with all 2K members, the ASR
refinement graphs, and the manifest."""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

import torch
from ddad_rt import bundle as bundle_io
from ddad_rt.errors import InputError
from torch import nn

from ddad_train.models import BatchedAE, RefineNet

OPSET = 18
#: Graph file and score key of each refiner.
REFINER_GRAPHS = {"dual": ("refine_dual", "r_dual"), "intra": ("refine_intra", "r_intra")}


#: How the 2K members are laid out in the ensemble graph. "parallel": 2K independent
#: branches of plain convolutions and matrix products, which OpenVINO runs about twice as fast
#: at batch 1 as "grouped" (grouped convolutions and batched MatMuls, the training form),
#: and as fast at batch 64. Both compute the same function.
LAYOUTS = ("parallel", "grouped")


class EnsembleGraph(nn.Module):
    """images [N,1,H,W] (network units) -> udm [N,K,H,W], ndm [N,K,H,W] (reconstructions)
    and, for AE-U, ndm_logvar [N,K,H,W] (the NDM members' predicted log-variances)."""

    def __init__(self, udm: BatchedAE, ndm: BatchedAE, layout: str = "parallel") -> None:
        super().__init__()
        if udm.config() != ndm.config() or udm.members != ndm.members:
            msg = f"UDM and NDM must have the same architecture, got {udm.config()} and {ndm.config()}"
            raise InputError(msg)
        if layout not in LAYOUTS:
            msg = f"layout must be one of {LAYOUTS}, got {layout!r}"
            raise InputError(msg)
        self.k = udm.members
        self.layout = layout
        self.uncertainty = udm.out_channels == 2
        members = udm.split_members() + ndm.split_members()
        if layout == "parallel":
            self.members = nn.ModuleList(members)
        else:
            self.model = BatchedAE.from_members(members, **udm.config())
        self.eval()

    def output_names(self) -> list[str]:
        return ["udm", "ndm", "ndm_logvar"] if self.uncertainty else ["udm", "ndm"]

    def forward(self, images: torch.Tensor):
        if self.layout == "parallel":
            out = torch.cat([m(images) for m in self.members], dim=1)
        else:
            out = self.model(images)
        k = self.k
        if not self.uncertainty:
            return out[:, :k], out[:, k:]
        n, _, h, w = out.shape
        out = out.view(n, 2 * k, 2, h, w)
        mean, logvar = out[:, :, 0], out[:, :, 1]
        return mean[:, :k], mean[:, k:], logvar[:, k:]


def _export(module: nn.Module, example: torch.Tensor, path: Path, input_name: str,
            output_names: list[str]) -> None:
    # The exporter logs a warning per torchvision op it cannot register; none is used here.
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)
    try:
        _export_quiet(module, example, path, input_name, output_names)
    finally:
        onnx_log.setLevel(level)


def _export_quiet(module: nn.Module, example: torch.Tensor, path: Path, input_name: str,
                  output_names: list[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = torch.export.Dim("batch", min=1, max=4096)
        program = torch.onnx.export(
            module, (example,), input_names=[input_name], output_names=output_names,
            dynamic_shapes={input_name: {0: batch}}, opset_version=OPSET, dynamo=True,
            verbose=False, external_data=False)
        program.save(str(path))


def export_onnx(graph: EnsembleGraph, path: str | Path, image_size: int) -> None:
    """Writes the ensemble graph to ONNX with a dynamic batch dimension."""
    _export(graph, torch.zeros(2, 1, image_size, image_size), Path(path), "images",
            graph.output_names())


def export_refiner(net: RefineNet, path: str | Path, image_size: int) -> None:
    """Writes a refinement network (eval mode): maps [N,C,H,W] -> logits [N,2,H,W]."""
    net = net.eval()
    _export(net, torch.zeros(2, net.in_channels, image_size, image_size), Path(path), "maps",
            ["logits"])


def export_bundle(udm: BatchedAE, ndm: BatchedAE, out_dir: str | Path, *, config: dict,
                  training: dict, layout: str = "parallel", image_hashes=None,
                  force: bool = False) -> Path:
    """Writes a bundle of the trained modules (ensemble graph + manifest, no refiners) and
    returns its path. Refiners are added by ``add_refiners`` (see ddad_train.refine).

    ``image_hashes`` (ddad_rt.bundle.image_hash of every training image, NDM's and UDM's)
    go to the bundle's training_images.sha256, which ``ddad-rt calibrate`` checks so that
    operating points are never set on images the model was trained on.

    The bundle is assembled in a sibling temporary directory and renamed into place, so an
    interrupted export never leaves a half-written bundle under ``out_dir``. An existing
    bundle there is replaced only with ``force``.
    """
    out_dir = Path(out_dir)
    check_out_dir(out_dir, force=force)
    tmp = _fresh_tmp(out_dir)
    graph = EnsembleGraph(udm, ndm, layout)
    image_size = udm.image_size
    export_onnx(graph, tmp / "ensemble.onnx", image_size)
    if image_hashes is not None:
        training = {**training, "images_hashed": bundle_io.write_training_hashes(
            tmp / bundle_io.TRAINING_HASHES, image_hashes)}
    model = {"latent_size": udm.latent_size, "mp": udm.mp,
             "members_order": "udm[0..K-1], ndm[0..K-1]", "ensemble_layout": layout,
             "ensemble_outputs": graph.output_names()}
    if udm.mem_slots:
        model["mem_slots"] = udm.mem_slots
    manifest = {
        "backbone": config.get("backbone", "ae"),
        # The DICOM Modality the model was trained for ("" = not stated): screening refuses
        # DICOM files of another modality.
        "modality": config.get("modality", ""),
        "k": graph.k,
        "image_size": [image_size, image_size],
        "channels": 1,
        "normalization": {"mean": 0.5, "std": 0.5,
                          "input": "uint8 / 255, uint16 / 65535 or float in [0, 1]"},
        "scores": ["rec", "intra", "inter"],
        "default_score": "inter",
        "graphs": {"ensemble": "ensemble.onnx"},
        "model": model,
        "training": {"config": config, **training},
    }
    bundle_io.write_manifest(tmp, manifest)
    return _move_into_place(tmp, out_dir)


def add_refiners(src: str | Path, out_dir: str | Path, refiners: dict[str, RefineNet], *,
                 config: dict, training: dict, image_hashes=None, force: bool = False) -> Path:
    """Writes a bundle = the bundle ``src`` (its ensemble graph byte for byte) plus the
    refinement graphs, with the scores and default score they bring.

    Args:
        src: a bundle holding the ensemble the refiners were trained on.
        out_dir: the bundle to write (may equal ``src``: it is replaced atomically); an
            existing bundle there is replaced only with ``force``.
        refiners: trained refinement networks by name ("dual", "intra").
        config: the run's TrainConfig as a dict (replaces the manifest's).
        training: merged into the manifest's training record (e.g. refinement losses).
        image_hashes: hashes of the images the refiners trained on, added to those ``src``
            records (they differ when ``ddad-rt refine`` is given other data).
    """
    src, out_dir = Path(src), Path(out_dir)
    manifest = bundle_io.read_manifest(src, verify=True)
    check_out_dir(out_dir, force=force)
    tmp = _fresh_tmp(out_dir)
    image_size = manifest["image_size"][0]
    graphs = {"ensemble": "ensemble.onnx"}
    shutil.copyfile(src / manifest["graphs"]["ensemble"], tmp / "ensemble.onnx")
    known = bundle_io.read_training_hashes(src)
    if known is not None or image_hashes is not None:
        merged = (known or set()) | set(image_hashes or ())
        training = {**training, "images_hashed": bundle_io.write_training_hashes(
            tmp / bundle_io.TRAINING_HASHES, merged)}
    scores = ["rec", "intra", "inter"]
    for name in ("intra", "dual"):  # key order of DESIGN.md section 3
        if name in refiners:
            role, key = REFINER_GRAPHS[name]
            export_refiner(refiners[name], tmp / f"{role}.onnx", image_size)
            graphs[role] = f"{role}.onnx"
            scores.append(key)
    manifest = {k: v for k, v in manifest.items() if k not in bundle_io.GENERATED_FIELDS}
    manifest["graphs"] = graphs
    manifest["scores"] = scores
    manifest["modality"] = config.get("modality", manifest.get("modality", ""))
    manifest.pop("operating_points", None)  # new scores: thresholds must be recalibrated
    manifest["default_score"] = ("r_dual" if "r_dual" in scores else
                                 "r_intra" if "r_intra" in scores else "inter")
    manifest["model"] = {**manifest.get("model", {}),
                         "refiner_inputs": {"refine_dual": ["inter", "intra"],
                                            "refine_intra": ["intra"]}}
    old = manifest.get("training", {})
    manifest["training"] = {**old, **training, "config": config,
                            "losses": {**old.get("losses", {}), **training.get("losses", {})},
                            "seconds": {**old.get("seconds", {}), **training.get("seconds", {})}}
    bundle_io.write_manifest(tmp, manifest)
    return _move_into_place(tmp, out_dir)


def _fresh_tmp(out_dir: Path) -> Path:
    tmp = out_dir.with_name(out_dir.name + ".tmp-export")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def _move_into_place(tmp: Path, out_dir: Path) -> Path:
    if out_dir.exists():
        old = out_dir.with_name(out_dir.name + ".old-export")
        if old.exists():
            shutil.rmtree(old)
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old)
    else:
        tmp.rename(out_dir)
    return out_dir


def check_out_dir(out_dir: str | Path, force: bool = False) -> None:
    """Refuses an output directory that exists and holds something other than a bundle, and
    one that holds a bundle unless ``force``: replacing a bundle loses its calibration and
    precision checks, and its users would score with a new model without knowing."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or (
            any(out_dir.iterdir()) and not (out_dir / bundle_io.MANIFEST).is_file())):
        msg = f"{out_dir} exists and is not a bundle: choose a new or empty directory"
        raise FileExistsError(msg)
    if (out_dir / bundle_io.MANIFEST).is_file() and not force:
        m = bundle_io.read_manifest(out_dir, verify=False)
        what = ", ".join(k for k, present in (("calibrated", m.get("operating_points")),
                                              ("precision-checked", m.get("precision_checks")))
                         if present)
        msg = (f"{out_dir} already holds a bundle{f' ({what})' if what else ''}: pass --force "
               "(force=True) to replace it, or choose another --out")
        raise FileExistsError(msg)
