"""A restricted unpickler for EG3D network pickles: data in, no pickled code ever runs.

See :mod:`engine.triplane.eg3d_import` for what is admitted and why; this module only turns a
pickle stream into inert records (:class:`PersistentRecord`, :class:`ObjectRecord`,
:class:`EasyDict`) and tensors, refusing every global outside the allow-list with
:class:`EG3DImportError`.
"""

from __future__ import annotations

import collections
import hashlib
import io
import math
import os
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor


class EG3DImportError(Exception):
    """The pickle is hostile or malformed, or holds a network we cannot map exactly."""


# --------------------------------------------------------------------------------------------
# Inert records the restricted unpickler builds instead of EG3D's classes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PersistentRecord:
    """A persistent EG3D object as data: ``_reconstruct_persistent_obj(meta)`` without the exec."""

    class_name: str
    version: Any
    module_src_sha256: str
    """sha256 of the module source the pickle carried (never compiled)."""
    state: dict[str, Any]


class ObjectRecord:
    """An instance of an allow-listed by-reference class, e.g. ``training.triplane.OSGDecoder``.

    The unpickler makes one subclass per class name (``qualname`` set) and creates instances
    with ``__new__`` only; ``BUILD`` stores the state dict here.
    """

    qualname: ClassVar[str] = ""
    state: dict[str, Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> ObjectRecord:
        if args or kwargs:
            raise EG3DImportError(f"refused arguments when creating {cls.qualname}")
        obj = super().__new__(cls)
        obj.state = {}
        return obj

    def eg3d_setstate(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:
            state, slots = state
            if slots:
                raise EG3DImportError(f"{self.qualname}: unexpected slot state")
        if state is None:
            state = {}
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise EG3DImportError(f"{self.qualname}: state must be a dict with str keys")
        self.state = dict(state)


class EasyDict(dict[str, Any]):
    """``dnnlib.EasyDict`` as a plain dict (no attribute access, no code)."""

    def eg3d_setstate(self, state: Any) -> None:
        if state:
            raise EG3DImportError("dnnlib.EasyDict: unexpected instance state")


@dataclass
class _NumpyDType:
    code: str
    byteorder: str = "="

    def eg3d_setstate(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise EG3DImportError(f"numpy dtype {self.code}: unexpected state {state!r}")
        self.byteorder = str(state[1])


_NUMPY_CODES = frozenset({"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"})


def _numpy_dtype(code: Any, align: Any = False, copy: Any = True) -> _NumpyDType:
    if not isinstance(code, str) or code not in _NUMPY_CODES:
        raise EG3DImportError(f"refused numpy dtype {code!r} (only plain numeric scalars are read)")
    return _NumpyDType(code)


def _numpy_scalar(dtype: Any, data: Any = None) -> float | int | bool:
    if not isinstance(dtype, _NumpyDType) or not isinstance(data, bytes):
        raise EG3DImportError("refused numpy scalar that is not a plain numeric value")
    order: Literal["<", ">", "="] = "<" if dtype.byteorder == "<" else ">" if dtype.byteorder == ">" else "="
    dt = np.dtype(dtype.code).newbyteorder(order)
    if len(data) != dt.itemsize:
        raise EG3DImportError(f"numpy scalar {dtype.code}: {len(data)} bytes, expected {dt.itemsize}")
    value: float | int | bool = np.frombuffer(data, dtype=dt)[0].item()
    return value


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise EG3DImportError("refused _codecs.encode other than latin-1 bytes")
    return text.encode("latin-1")


def _torch_size(dims: Any = ()) -> tuple[int, ...]:
    if not isinstance(dims, tuple | list) or not all(type(d) is int for d in dims):
        raise EG3DImportError(f"torch.Size: expected integers, got {dims!r}")
    return tuple(dims)


def _load_storage(data: Any) -> torch.storage.TypedStorage:
    """``torch.storage._load_from_bytes``: the bytes are a legacy ``torch.save`` of one storage."""
    if not isinstance(data, bytes | bytearray):
        raise EG3DImportError("tensor storage: expected bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(io.BytesIO(bytes(data)), weights_only=True, map_location="cpu")
    except Exception as e:  # torch raises UnpicklingError/RuntimeError for refused or bad data
        raise EG3DImportError(f"a tensor storage was refused by torch's restricted loader: {e}") from e
    if not isinstance(obj, torch.storage.TypedStorage):
        raise EG3DImportError(f"tensor storage: expected a storage, got {type(obj).__name__}")
    return obj


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or not all(type(v) is int and 0 <= v < 2**40 for v in value):
        raise EG3DImportError(f"tensor {what}: expected non-negative integers, got {value!r}")
    return tuple(value)


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> Tensor:
    if not isinstance(storage, torch.storage.TypedStorage):
        raise EG3DImportError("tensor: expected a storage from torch.storage._load_from_bytes")
    shape, strides = _ints(size, "size"), _ints(stride, "stride")
    if type(storage_offset) is not int or storage_offset < 0 or len(shape) != len(strides):
        raise EG3DImportError("tensor: bad storage offset or size/stride lengths")
    untyped = storage._untyped_storage
    dtype = storage.dtype
    available = untyped.nbytes() // dtype.itemsize
    numel = math.prod(shape)
    if numel:
        last = storage_offset + sum((n - 1) * s for n, s in zip(shape, strides, strict=True))
        if numel > available or last >= available:
            raise EG3DImportError(
                f"tensor of size {shape} (stride {strides}, offset {storage_offset}) does not fit its "
                f"storage of {available} elements"
            )
    t = torch.empty(0, dtype=dtype).set_(untyped, storage_offset, shape, strides)
    return t.contiguous()


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> Tensor:
    if backward_hooks or metadata:
        raise EG3DImportError("refused tensor with backward hooks or extra metadata")
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> Tensor:
    if not isinstance(data, Tensor) or backward_hooks:
        raise EG3DImportError("refused parameter that is not a plain tensor without hooks")
    return data


def _rebuild_parameter_with_state(
    data: Any, requires_grad: Any = False, backward_hooks: Any = None, state: Any = None
) -> Tensor:
    if state:
        raise EG3DImportError("refused parameter with extra Python state")
    return _rebuild_parameter(data, requires_grad, backward_hooks)


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    """Stand-in for ``torch_utils.persistence._reconstruct_persistent_obj``: data only, no exec."""
    if not isinstance(meta, dict):
        raise EG3DImportError("persistent object: meta must be a dict")
    if meta.get("type") != "class":
        raise EG3DImportError(f"persistent object: unsupported type {meta.get('type')!r}")
    name, src, state = meta.get("class_name"), meta.get("module_src"), meta.get("state")
    if not isinstance(name, str) or not name.isidentifier():
        raise EG3DImportError(f"persistent object: bad class name {name!r}")
    if not isinstance(src, str):
        raise EG3DImportError(f"persistent object {name}: module_src must be text")
    if state is None:
        state = {}
    if not isinstance(state, dict):
        raise EG3DImportError(f"persistent object {name}: state must be a dict")
    # module_src is hashed for provenance and otherwise ignored: it is never compiled or run.
    digest = hashlib.sha256(src.encode("utf-8", "surrogatepass")).hexdigest()
    return PersistentRecord(
        class_name=name, version=meta.get("version"), module_src_sha256=digest, state=state
    )


_TORCH_DTYPES = (
    "float16",
    "float32",
    "float64",
    "bfloat16",
    "uint8",
    "int8",
    "int16",
    "int32",
    "int64",
    "bool",
)

_CALLABLES: dict[str, Callable[..., Any]] = {
    "collections.OrderedDict": collections.OrderedDict,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "_codecs.encode": _codecs_encode,
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter_with_state,
    "torch.storage._load_from_bytes": _load_storage,
    "torch.Size": _torch_size,
    "numpy.dtype": _numpy_dtype,
    "numpy.core.multiarray.scalar": _numpy_scalar,
    "numpy._core.multiarray.scalar": _numpy_scalar,
    "torch_utils.persistence._reconstruct_persistent_obj": _reconstruct_persistent_obj,
}
"""Globals REDUCE may call (by full name); all of them are ours or plain containers."""

_CONSTANTS: dict[str, Any] = {f"torch.{name}": getattr(torch, name) for name in _TORCH_DTYPES}

BY_REFERENCE_CLASSES = frozenset(
    {
        "training.triplane.OSGDecoder",
        "training.volumetric_rendering.renderer.ImportanceRenderer",
        "training.volumetric_rendering.ray_marcher.MipRayMarcher2",
        "training.volumetric_rendering.ray_sampler.RaySampler",
        "torch.nn.modules.container.Sequential",
        "torch.nn.modules.container.ModuleList",
        "torch.nn.modules.container.ModuleDict",
        "torch.nn.modules.activation.Softplus",
        "torch.nn.modules.activation.ReLU",
        "torch.nn.modules.activation.LeakyReLU",
        "torch.nn.modules.activation.Sigmoid",
        "torch.nn.modules.activation.Tanh",
        "torch.nn.modules.linear.Identity",
    }
)
"""Classes pickled by reference (no persistence decorator); instantiated as inert records."""

_EASYDICT_NAMES = frozenset({"dnnlib.util.EasyDict", "dnnlib.EasyDict"})
_MODULE_ALIASES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


def allowed_globals() -> list[str]:
    """Every ``module.name`` the restricted unpickler admits (for docs and error messages)."""
    return sorted({*_CALLABLES, *_CONSTANTS, *BY_REFERENCE_CLASSES, *_EASYDICT_NAMES})


# --------------------------------------------------------------------------------------------
# The restricted unpickler
# --------------------------------------------------------------------------------------------


def _op_reduce(u: Any) -> None:
    args = u.stack.pop()
    func = u.stack[-1]
    if not any(func is f for f in _CALLABLES.values()):
        raise EG3DImportError(f"refused call of {func!r}: only allow-listed functions may be called")
    if not isinstance(args, tuple):
        raise EG3DImportError("REDUCE arguments must be a tuple")
    u.stack[-1] = func(*args)


def _new_record(cls: Any, args: Any, kwargs: Any = None) -> ObjectRecord | EasyDict:
    """NEWOBJ / NEWOBJ_EX: only our inert record types, without constructor arguments."""
    if not isinstance(cls, type) or not issubclass(cls, ObjectRecord | EasyDict):
        raise EG3DImportError(f"refused to instantiate {cls!r}: only inert record types may be created")
    if args or kwargs:
        raise EG3DImportError(f"refused constructor arguments for {cls.__name__}")
    if issubclass(cls, EasyDict):
        return EasyDict()
    return cls.__new__(cls)


def _op_newobj(u: Any) -> None:
    args = u.stack.pop()
    cls = u.stack.pop()
    u.stack.append(_new_record(cls, args))


def _op_newobj_ex(u: Any) -> None:
    kwargs = u.stack.pop()
    args = u.stack.pop()
    cls = u.stack.pop()
    u.stack.append(_new_record(cls, args, kwargs))


def _op_build(u: Any) -> None:
    state = u.stack.pop()
    inst = u.stack[-1]
    if not isinstance(inst, ObjectRecord | EasyDict | _NumpyDType):
        raise EG3DImportError(f"refused to set the state of a {type(inst).__name__}")
    inst.eg3d_setstate(state)


def _op_refuse(u: Any) -> None:
    raise EG3DImportError(
        "refused pickle opcode (INST/OBJ/extension codes are not used by EG3D pickles and can call classes)"
    )


class _RestrictedUnpickler(pickle._Unpickler):
    """Pure-Python unpickler with the global look-up and object-building opcodes gated."""

    stack: list[Any]
    dispatch = {
        **pickle._Unpickler.dispatch,
        pickle.REDUCE[0]: _op_reduce,
        pickle.NEWOBJ[0]: _op_newobj,
        pickle.NEWOBJ_EX[0]: _op_newobj_ex,
        pickle.BUILD[0]: _op_build,
        pickle.INST[0]: _op_refuse,
        pickle.OBJ[0]: _op_refuse,
        pickle.EXT1[0]: _op_refuse,
        pickle.EXT2[0]: _op_refuse,
        pickle.EXT4[0]: _op_refuse,
    }

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file)
        self._record_types: dict[str, type[ObjectRecord]] = {}

    def find_class(self, module: str, name: str) -> Any:
        qual = f"{_MODULE_ALIASES.get(module, module)}.{name}"
        if qual in _CALLABLES:
            return _CALLABLES[qual]
        if qual in _CONSTANTS:
            return _CONSTANTS[qual]
        if qual in _EASYDICT_NAMES:
            return EasyDict
        if qual in BY_REFERENCE_CLASSES:
            record_type = self._record_types.get(qual)
            if record_type is None:
                record_type = type(name, (ObjectRecord,), {"qualname": qual, "__module__": __name__})
                self._record_types[qual] = record_type
            return record_type
        raise EG3DImportError(
            f"refused global {qual!r}: not on the EG3D import allow-list (this pickle references code "
            "beyond tensors and network records; it is not loaded)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise EG3DImportError(f"refused persistent id {pid!r}: EG3D pickles do not use persistent ids")


def load_eg3d_pickle(source: str | os.PathLike[str] | BinaryIO) -> Any:
    """Unpickle ``source`` with the restricted unpickler (see the module docstring).

    Raises:
        EG3DImportError: a refused global or opcode, or a stream that is not a valid pickle.
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise EG3DImportError(f"{path}: no such file")
        with path.open("rb") as f:
            return load_eg3d_pickle(f)
    try:
        return _RestrictedUnpickler(source).load()
    except EG3DImportError:
        raise
    except Exception as e:  # truncated/garbled streams raise many different types
        raise EG3DImportError(f"not a readable pickle: {type(e).__name__}: {e}") from e
