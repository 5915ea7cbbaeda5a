"""Exporting a trained cell: `python -m benchmark export` writes a TorchScript module (<cell id>.pt, for
deepImageJ, QuPath or torch.jit.load) and an ONNX model (<cell id>.onnx, for onnxruntime), each
computing `output = model(noisy)` in the data's units: the method's own `denoise` (per-image
standardisation, its inference, Laine's posterior included, the standardisation undone) on a
(B, C, *S) float32 batch of any spatial size.

Both are traced on an example whose sizes are not multiples of the backbone's (so the padding to its
multiple is recorded as shape arithmetic, not constants) and not equal (so a blind-spot network records
its per-orientation path, which takes any shape); each is checked against the PyTorch method on a
random input of other sizes and batch before it is kept.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from benchmark.denoise import TrainedCell, add_cell_args, cell_from_args, load_method, network_shape
from benchmark.export_bmz import package
from benchmark.registry import ConfigError

FORMATS = ("torchscript", "onnx", "bioimageio")
DEFAULT_FORMATS = ("torchscript", "onnx")  # bioimageio is optional (benchmark.export_bmz)
ONNX_OPSET = 17
TOLERANCE = 1e-4


class Exported(nn.Module):
    """output = method.denoise(noisy): the whole of a method's inference as one module. The network is
    its registered submodule (its weights are exported); the method itself is held unregistered, since a
    LightningModule cannot be traced as a submodule."""

    def __init__(self, method: Any) -> None:
        super().__init__()
        self.net = method.net
        object.__setattr__(self, "method", method)

    def forward(self, noisy: Tensor) -> Tensor:
        return self.method.denoise(noisy)


def example_input(channels: int, spatial_dims: int, multiple: int, batch: int = 1, seed: int = 0) -> Tensor:
    """A random (batch, C, *S) input whose sizes differ from each other and are not multiples of `multiple`."""
    sizes = [3 * multiple + 1 + 2 * axis for axis in range(spatial_dims)]
    return torch.rand(batch, channels, *sizes, generator=torch.Generator().manual_seed(seed))


def check_input(method: Any, channels: int) -> Tensor:
    """Another random input than the tracing example: batch 2, other sizes (a multiple of the backbone's included)."""
    sizes = [4 * method.size_multiple + 3 * axis for axis in range(method.spatial_dims)]
    return 3 * torch.rand(2, channels, *sizes, generator=torch.Generator().manual_seed(1)) + 1


def to_torchscript(method: Any, example: Tensor, path: Path) -> torch.jit.ScriptModule:
    """Trace the method's inference on `example` and save it to `path`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape arithmetic (intended) and its deprecation notice
        traced = torch.jit.trace(Exported(method).eval(), example, check_trace=False)
    traced.save(str(path))
    return traced


def rot90_symbolic(g: Any, x: Any, k: Any, dims: Any) -> Any:
    """ONNX has no rot90: torch.rot90(x, k, (a, b)) is flip(b) then swap(a, b) for k = 1, flip(a, b) for 2,
    flip(a) then swap(a, b) for 3 (k mod 4; 0 is x), written with ONNX's Slice (flip) and Transpose."""
    from torch.onnx import symbolic_helper, symbolic_opset9, symbolic_opset10  # noqa: PLC0415

    k = symbolic_helper._parse_arg(k, "i") % 4
    a, b = symbolic_helper._parse_arg(dims, "is")
    if k == 0:
        return x
    flipped = symbolic_opset10.flip(g, x, {1: [b], 2: [a, b], 3: [a]}[k])
    return flipped if k == 2 else symbolic_opset9.transpose(g, flipped, a, b)


def movedim_symbolic(g: Any, x: Any, source: Any, destination: Any) -> Any:
    """torch.movedim(x, s, d) as one ONNX Transpose, negative axes counted from the end (the built-in
    conversion writes them into the permutation as they are, which ONNX rejects)."""
    from torch.onnx import symbolic_helper  # noqa: PLC0415

    rank = symbolic_helper._get_tensor_rank(x)
    source, destination = (symbolic_helper._parse_arg(axis, "i") % rank for axis in (source, destination))
    order = [axis for axis in range(rank) if axis != source]
    order.insert(destination, source)
    return g.op("Transpose", x, perm_i=order)


def diag_embed_symbolic(g: Any, x: Any, offset: Any, dim1: Any, dim2: Any) -> Any:
    """torch.diag_embed(x) (offset 0, the last two axes): x[..., None] * I_n, n the size of x's last axis."""
    from torch.onnx import symbolic_helper  # noqa: PLC0415

    n = symbolic_helper._get_tensor_sizes(x)[-1]
    eye = g.op("CastLike", g.op("Constant", value_t=torch.eye(n)), x)
    return g.op("Mul", g.op("Unsqueeze", x, g.op("Constant", value_t=torch.tensor([-1]))), eye)


def to_onnx(method: Any, example: Tensor, path: Path) -> None:
    """Export the method's inference as ONNX (opset 17) with the batch and spatial axes dynamic."""
    torch.onnx.register_custom_op_symbolic("aten::rot90", rot90_symbolic, ONNX_OPSET)
    torch.onnx.register_custom_op_symbolic("aten::movedim", movedim_symbolic, ONNX_OPSET)
    torch.onnx.register_custom_op_symbolic("aten::diag_embed", diag_embed_symbolic, ONNX_OPSET)
    # ONNX has no matrix inverse (Laine's posterior for C > 1 channels); onnxruntime's contrib op is one.
    torch.onnx.register_custom_op_symbolic("aten::linalg_inv", lambda g, x: g.op("com.microsoft::Inverse", x),
                                           ONNX_OPSET)
    axes = {0: "batch", **{2 + i: f"size{i}" for i in range(example.dim() - 2)}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(Exported(method).eval(), (example,), str(path), input_names=["noisy"],
                              output_names=["denoised"], dynamic_axes={"noisy": axes, "denoised": axes},
                              opset_version=ONNX_OPSET, dynamo=False)
        except torch.onnx.errors.OnnxExporterError as error:  # an operation without an ONNX counterpart
            raise ConfigError(f"{type(method).__name__} cannot be exported to ONNX: {str(error).splitlines()[0]}") from None


def run_onnx(path: Path, noisy: Tensor) -> Tensor:
    """The ONNX model's output on `noisy`, through onnxruntime on the CPU."""
    import onnxruntime  # noqa: PLC0415  (optional at import time: only export needs it)

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"noisy": noisy.numpy()})[0])


def export(trained: TrainedCell, output: Path, formats: tuple[str, ...] = DEFAULT_FORMATS,
           sigma: float | None = None) -> dict[str, Any]:
    """Write the cell's exports into `output` and a <cell id>.json describing them; each export is
    checked against the PyTorch method on a random input (max |difference| <= 1e-4, else an error)."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ConfigError(f"unknown export format(s) {', '.join(unknown)}; valid formats: {', '.join(FORMATS)}")
    method = load_method(trained, "cpu", sigma)
    channels = network_shape(method.state_dict())[0]
    example = example_input(channels, method.spatial_dims, method.size_multiple)
    probe = check_input(method, channels)
    expected = method.denoise(probe)
    output.mkdir(parents=True, exist_ok=True)
    stem = output / trained.cell.id
    written: dict[str, Any] = {}
    if "bioimageio" in formats and "torchscript" not in formats:
        raise ConfigError("the bioimageio package holds the TorchScript weights: add torchscript to --formats")
    for fmt in (f for f in FORMATS[:2] if f in formats):
        path = stem.with_suffix(".pt" if fmt == "torchscript" else ".onnx")
        if fmt == "torchscript":
            with torch.no_grad():
                got = to_torchscript(method, example, path)(probe)
        else:
            to_onnx(method, example, path)
            got = run_onnx(path, probe)
        difference = float((got - expected).abs().max())
        if not difference <= TOLERANCE:
            raise ConfigError(f"the {fmt} export of {trained.cell.id} differs from the method by {difference:.3g} "
                              f"(tolerance {TOLERANCE}); it was not kept")
        written[fmt] = {"file": path.name, "max_abs_difference": difference}
    if "bioimageio" in formats:
        name = f"{trained.cell.method} on {trained.cell.dataset} ({trained.cell.id})"
        description = f"{trained.cell.method} trained by noise2same-bench, cell {trained.cell.id}"
        onnx = stem.with_suffix(".onnx") if "onnx" in formats else None
        package(name, description, stem.with_suffix(".pt"), onnx, probe[:1], expected[:1], stem.with_suffix(".zip"))
        written["bioimageio"] = {"file": stem.with_suffix(".zip").name, "test_model": "passed"}
    info = {"cell": trained.cell.id, "method": trained.cell.method, "dataset": trained.cell.dataset,
            "input": {"name": "noisy", "axes": "BC" + "ZYX"[3 - method.spatial_dims:], "channels": channels,
                      "dtype": "float32", "units": "the data's own (no normalisation needed)"},
            "output": "denoised, same shape and units", "config": trained.cell.config, "exports": written,
            "check": {"input_shape": list(probe.shape), "tolerance": TOLERANCE}}
    stem.with_suffix(".json").write_text(json.dumps(info, indent=1, default=str))
    return info


def add_parser(commands: Any) -> None:
    """The `export` command's options."""
    parser = commands.add_parser("export", help="write a trained cell as TorchScript and ONNX (output = model(noisy))")
    add_cell_args(parser)
    parser.add_argument("--output", type=Path, default=Path("exports"), help="folder for the files (default: exports)")
    parser.add_argument("--formats", default=",".join(DEFAULT_FORMATS),
                        help=f"comma-separated subset of {', '.join(FORMATS)} (default: {', '.join(DEFAULT_FORMATS)}; "
                             "bioimageio needs bioimageio.core installed)")
    parser.add_argument("--sigma", type=float, help="Gaussian noise std in the data's units, built into methods that "
                        "need it (laine_bayes; default: the cell's dataset's)")


def command(args: argparse.Namespace) -> int:
    """Run `export`: print each file written and its check against the method."""
    info = export(cell_from_args(args), args.output,
                  tuple(name.strip() for name in args.formats.split(",") if name.strip()), args.sigma)
    for fmt, written in info["exports"].items():
        check = ("bioimageio.core's test_model passed" if fmt == "bioimageio" else
                 f"max |difference| to the method on a random {'x'.join(map(str, info['check']['input_shape']))} "
                 f"input: {written['max_abs_difference']:.2g}")
        print(f"wrote {args.output / written['file']} ({fmt}; {check})")
    print(f"wrote {args.output / (info['cell'] + '.json')}")
    return 0
