"""A BioImage Model Zoo package (model format 0.5) of an exported cell: its TorchScript (and ONNX)
weights, a test input with the method's output on it, and a README, zipped by bioimageio.spec and then
checked by bioimageio.core's own `test_model` (it runs every weight format on the test input).

Optional: bioimageio.spec 0.5.12 / bioimageio.core 0.11 are not among the suite's requirements, since
that spec fails to serialise a model under pydantic 2.14 (the suite's) and works under pydantic < 2.12.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from benchmark.registry import ConfigError

INSTALL = "pip install bioimageio.core 'pydantic<2.12'"


def package(name: str, description: str, torchscript: Path, onnx: Path | None, noisy: Tensor, denoised: Tensor,
            target: Path) -> Path:
    """Write the package to `target` (.zip) and return it; a ConfigError if bioimageio.core's test fails."""
    try:
        from bioimageio.core import test_model  # noqa: PLC0415
        from bioimageio.spec import ValidationContext, save_bioimageio_package  # noqa: PLC0415
        from bioimageio.spec.model import v0_5  # noqa: PLC0415
    except ImportError as error:
        raise ConfigError(f"the bioimageio format needs bioimageio.core ({error}); {INSTALL}") from None
    folder = target.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "test_input.npy", noisy.numpy())
    np.save(folder / "test_output.npy", denoised.numpy())
    (folder / "README.md").write_text(f"# {name}\n\n{description}\n\nInput: float32 (batch, channel, space) in the "
                                      "data's own units; output: the denoised image, same shape and units.\n")
    names = [v0_5.Identifier(f"c{c}") for c in range(noisy.shape[1])]
    space = "zyx"[3 - (noisy.dim() - 2):]
    inputs = [v0_5.BatchAxis(), v0_5.ChannelAxis(channel_names=names),
              *[v0_5.SpaceInputAxis(id=v0_5.AxisId(a), size=v0_5.ParameterizedSize(min=8, step=1)) for a in space]]
    outputs = [v0_5.BatchAxis(), v0_5.ChannelAxis(channel_names=names),
               *[v0_5.SpaceOutputAxis(id=v0_5.AxisId(a), size=v0_5.SizeReference(
                   tensor_id=v0_5.TensorId("noisy"), axis_id=v0_5.AxisId(a))) for a in space]]
    torch_version = v0_5.Version(torch.__version__.split("+")[0])
    weights = {"torchscript": v0_5.TorchscriptWeightsDescr(source=torchscript, pytorch_version=torch_version)}
    if onnx is not None:
        weights["onnx"] = v0_5.OnnxWeightsDescr(source=onnx, opset_version=17, parent="torchscript")
    with ValidationContext(perform_io_checks=True):
        model = v0_5.ModelDescr(
            name=name, description=description, authors=[v0_5.Author(name="noise2same-bench")],
            cite=[v0_5.CiteEntry(text="Xie, Wang, Ji: Noise2Same, NeurIPS 2020", url="https://arxiv.org/abs/2010.11971")],
            license="MIT", documentation=v0_5.FileDescr(source=folder / "README.md"),
            inputs=[v0_5.InputTensorDescr(id=v0_5.TensorId("noisy"), axes=inputs,
                                          test_tensor=v0_5.FileDescr(source=folder / "test_input.npy"))],
            outputs=[v0_5.OutputTensorDescr(id=v0_5.TensorId("denoised"), axes=outputs,
                                            test_tensor=v0_5.FileDescr(source=folder / "test_output.npy"))],
            weights=v0_5.WeightsDescr(**weights))
    save_bioimageio_package(model, output_path=target)
    summary = test_model(target)
    if summary.status != "passed":
        problems = [f"{d.name}: {e.msg}" for d in summary.details for e in d.errors]
        raise ConfigError(f"bioimageio.core's test of {target} {summary.status}: {'; '.join(problems)[:400]}")
    return target
