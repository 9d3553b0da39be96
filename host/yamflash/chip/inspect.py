"""What a .tflite is and whether TFLite Micro can run it: tensors, ops, parameters, MACs, arena."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..model.tflite_fb import FlatModel

# Every builtin op TFLite Micro's MicroMutableOpResolver can register, as BuiltinOperator name -> AddXxx
# method: generated from tensorflow/lite/micro/micro_mutable_op_resolver.h (tensorflow/tflite-micro
# 90b983c2, 2026-08-20; identical in espressif/esp-tflite-micro v1.3.7 and 1.4.0). `yamflash gen` emits
# these names into the firmware's op resolver, so an entry here must be a real method.
TFLM_OPS: dict[str, str] = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax", "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable", "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul", "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs", "BROADCAST_TO": "AddBroadcastTo", "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast", "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D",
    "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEPTH_TO_SPACE": "AddDepthToSpace", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice", "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup", "EQUAL": "AddEqual", "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill", "FLOOR": "AddFloor", "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod", "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd", "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish", "IF": "AddIf", "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D", "LEAKY_RELU": "AddLeakyRelu", "LESS": "AddLess",
    "LESS_EQUAL": "AddLessEqual", "LOG": "AddLog", "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot", "LOGICAL_OR": "AddLogicalOr", "LOGISTIC": "AddLogistic",
    "LOG_SOFTMAX": "AddLogSoftmax", "MAXIMUM": "AddMaximum", "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean", "MINIMUM": "AddMinimum", "MIRROR_PAD": "AddMirrorPad", "MUL": "AddMul",
    "NEG": "AddNeg", "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2",
    "PRELU": "AddPrelu", "QUANTIZE": "AddQuantize", "READ_VARIABLE": "AddReadVariable",
    "REDUCE_ALL": "AddReduceAll", "REDUCE_MAX": "AddReduceMax", "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu", "RELU6": "AddRelu6", "RESHAPE": "AddReshape", "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound", "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape",
    "SIN": "AddSin", "SLICE": "AddSlice", "SOFTMAX": "AddSoftmax", "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPACE_TO_DEPTH": "AddSpaceToDepth", "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQRT": "AddSqrt",
    "SQUARE": "AddSquare", "SQUARED_DIFFERENCE": "AddSquaredDifference", "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf",
    "TANH": "AddTanh", "TRANSPOSE": "AddTranspose", "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM", "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle", "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}


def layer_macs(fm: FlatModel) -> list[dict[str, Any]]:
    """Multiply-accumulates per weighted op, from the tensor shapes in the flatbuffer."""
    rows = []
    for op in fm.ops:
        if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL"):
            continue
        out = fm.tensor_shape(op.outputs[0])
        w = fm.tensor_shape(op.inputs[1])
        if op.name == "CONV_2D":
            macs = int(np.prod(out[:-1])) * out[-1] * w[1] * w[2] * w[3]
        elif op.name == "DEPTHWISE_CONV_2D":
            macs = int(np.prod(out[:-1])) * out[-1] * w[1] * w[2]
        elif op.name == "FULLY_CONNECTED":  # weights [units, depth]; the input may be [1, 96, 64], flattened
            macs = int(np.prod(out)) * w[-1]
        else:
            macs = int(np.prod(out)) * fm.tensor_shape(op.inputs[0])[-1]
        rows.append({"op": op.name, "index": op.index, "output": out, "weights": w, "macs": macs})
    return rows


def parameter_count(fm: FlatModel) -> int:
    consts = {i for op in fm.ops for i in op.inputs[1:] if i >= 0 and fm.tensor_bytes(i) is not None}
    return int(sum(int(np.prod(fm.tensor_shape(i) or [1])) for i in consts))


def tensor_info(fm: FlatModel, i: int) -> dict[str, Any]:
    q = fm.quantization(i)
    info: dict[str, Any] = {"name": fm.tensor_name(i), "shape": fm.tensor_shape(i), "dtype": fm.tensor_type(i).lower()}
    if q is not None and len(q[0]) == 1:
        info.update(scale=float(q[0][0]), zero_point=int(q[1][0]))
    return info


def inspect(path: str | Path, measure_arena: bool = True) -> dict[str, Any]:
    data = Path(path).read_bytes() if Path(path).is_file() else None
    fm = FlatModel.load(path)
    assert data is not None
    ops = fm.op_names()
    counts: dict[str, int] = {}
    for name in ops:
        counts[name] = counts.get(name, 0) + 1
    missing = sorted({n for n in ops if n not in TFLM_OPS})
    ins, outs = fm.io()
    macs = layer_macs(fm)
    weighted = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
    types = {fm.tensor_type(op.inputs[0]) for op in fm.ops if op.name in weighted}
    report: dict[str, Any] = {
        "path": str(path),
        "bytes": len(data),
        "inputs": [tensor_info(fm, i) for i in ins],
        "outputs": [tensor_info(fm, i) for i in outs],
        "op_counts": counts,
        "parameters": parameter_count(fm),
        "macs": int(sum(r["macs"] for r in macs)),
        "layers": macs,
        "compute_types": sorted(t.lower() for t in types),
        "tflm_missing_ops": missing,
    }
    verdict, reasons = "runs", []
    if missing:
        reasons.append(f"TFLite Micro has no kernel for: {', '.join(missing)}")
    if "FLOAT32" in types:
        reasons.append("convolutions compute in float32 (ESP-NN accelerates int8 only)")
    if any(i["dtype"] != "int8" for i in report["inputs"]):
        reasons.append(f"input is {report['inputs'][0]['dtype']}, not an int8 log-mel patch")
    if reasons:
        verdict = "cannot run" if missing else "runs, but not as an int8 ESP-NN model"
    report["tflm_verdict"] = verdict
    report["tflm_reasons"] = reasons
    if not missing and measure_arena:
        from ..model.tflm import arena_bytes

        report["arena_bytes"] = arena_bytes(data)
    if not missing:  # what ESP-NN's kernels add on the chip (espnn_scratch.py; no compiler needed)
        from .scratch import largest

        report["espnn_largest_scratch"] = largest(data)
    if reasons:
        report["advice"] = f"make an int8 log-mel model from its weights: yamflash convert --weights {path}"
    return report
