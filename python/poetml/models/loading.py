"""Loading a model file without running code stored in it.

A Keras model file can carry Python: a ``Lambda`` layer stores its function as marshalled
bytecode (``.h5``) or source (``.keras``), and Keras runs it while it rebuilds the model.
:func:`load_model` therefore reads the stored architecture first (the ``model_config``
attribute of an ``.h5`` file, ``config.json`` inside a ``.keras`` zip), walks every object
in it and refuses, with :class:`~poetml.exceptions.UntrustedModelError` naming the layer and
the file, anything that is not a known object:

* Keras built-ins: the layers of ``tf.keras.layers`` (except ``Lambda`` and the op layers
  ``TFOpLambda``/``SlicingOpLambda``/``TensorFlowOpLayer``, which call a function named in
  the file), initializers, regularizers, constraints, activations, and the model classes;
* QKeras layers and quantizers; poetml's own objects (the ``MaskedMSE`` loss).

Only then is the file deserialised (a ``.keras`` file in Keras' safe mode as well).
``trust_model=True`` skips the check and safe mode: it runs whatever code the file holds.
A file that cannot be read (missing, truncated, not a model) is a
:class:`~poetml.exceptions.ReadError` naming the path.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..exceptions import PoetmlError, ReadError, UntrustedModelError

__all__ = ["MODEL_SUFFIXES", "check_model_file", "load_model", "read_architecture"]

#: file suffixes :func:`load_model` reads
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")

# layers whose configuration names a Python function (bytecode or source in the file, or
# any TensorFlow op called with arguments stored in the file)
_CODE_LAYERS = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda", "TensorFlowOpLayer"})
# Keras' markers for plain values in a .keras config (tensors, arrays, bytes ...)
_VALUE_CLASSES = frozenset(
    {"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__"}
)
_MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})
# modules a .keras config may name (Keras imports the module it names); tf_keras is the
# Keras 2 package tf.keras is when TF_USE_LEGACY_KERAS=1
_MODULES = re.compile(r"^(keras|tf_keras|qkeras|poetml|builtins)(\.|$)")
# keys whose string value QKeras or Keras turn into a callable by name ("quantized_bits(8,0)")
_CALLABLE_KEY = re.compile(r"(activation|quantizer)$")
_TRUST_HINT = (
    "pass --trust-model (Python: trust_model=True) only if you trust this file: "
    "that runs the code stored in it"
)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def read_architecture(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The stored architecture of a ``.keras`` or ``.h5`` model file, as JSON, read without
    TensorFlow: ``{"config": model config, "compile_config": ... or None}``."""
    p = Path(path)
    if not p.is_file():
        raise ReadError(f"model file {p} does not exist")
    try:
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as z:
                data = json.loads(z.read("config.json"))
            if not isinstance(data, dict):
                raise ValueError("config.json is not a JSON object")
            return {"config": data, "compile_config": data.get("compile_config")}
        import h5py

        with h5py.File(p, "r") as f:
            raw = f.attrs.get("model_config")
            if raw is None:
                raise ValueError("no 'model_config' attribute (not a Keras model file)")
            model = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            raw_t = f.attrs.get("training_config")
            training = (
                json.loads(raw_t.decode() if isinstance(raw_t, bytes) else raw_t)
                if raw_t is not None
                else None
            )
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise ReadError(
            f"cannot read the model file {p} (truncated or not a Keras .keras/.h5 model): "
            f"{_one_line(exc)}"
        ) from exc
    if not isinstance(model, dict):
        raise ReadError(f"cannot read the model file {p}: its model_config is not a JSON object")
    return {"config": model, "compile_config": training}


@functools.cache
def _known() -> tuple[frozenset[str], frozenset[str]]:
    """(class names, function names) a model file may use."""
    from . import _backend, custom_objects

    tf = _backend.tf()
    k = tf.keras
    classes: set[str] = set(_MODEL_CLASSES) | set(_VALUE_CLASSES)
    functions: set[str] = set()
    for mod in (
        k.layers, k.initializers, k.regularizers, k.constraints, k.activations,
        k.losses, k.metrics, k.optimizers, k.mixed_precision,
    ):  # fmt: skip
        for name in dir(mod):
            if name.startswith("_"):
                continue
            obj = getattr(mod, name)
            if isinstance(obj, type):
                classes.add(name)
            elif callable(obj):
                functions.add(name)
    classes -= _CODE_LAYERS
    for name, obj in custom_objects().items():  # QKeras and poetml
        (classes if isinstance(obj, type) else functions).add(name)
        functions.add(name)  # QKeras quantizers are classes named like functions in strings
    return frozenset(classes), frozenset(functions)


def _objects(node: Any, layer: str | None) -> Iterator[tuple[str, str | None, Any]]:
    """(kind, enclosing layer name, node) for every serialised object and every named
    callable string in a Keras config; kind is ``object`` or ``string``."""
    if isinstance(node, dict):
        if isinstance(node.get("class_name"), str):
            cfg = node.get("config")
            if isinstance(cfg, dict) and isinstance(cfg.get("name"), str):
                layer = cfg["name"]
            yield "object", layer, node
        for key, value in node.items():
            if isinstance(value, str) and _CALLABLE_KEY.search(str(key)):
                yield "string", layer, value
            else:
                yield from _objects(value, layer)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value, layer)


def _refuse(path: Path, layer: str | None, what: str) -> UntrustedModelError:
    where = f"layer {layer!r}" if layer else "the model"
    return UntrustedModelError(f"{path}: {where} {what}; poetml refuses to load it ({_TRUST_HINT})")


def check_model_file(path: str | os.PathLike[str], *, compile: bool = False) -> None:
    """Raise :class:`UntrustedModelError` when the model file ``path`` holds a ``Lambda`` or
    op layer or any object that is not a Keras built-in, QKeras or poetml object (see the
    module docstring); :class:`ReadError` when it cannot be read.  Runs nothing from the file.
    ``compile``: also check the stored training configuration (loss, optimizer, metrics)."""
    p = Path(path)
    arch = read_architecture(p)
    classes, functions = _known()
    roots = [arch["config"]]
    if compile and arch["compile_config"] is not None:
        roots.append(arch["compile_config"])
    elif isinstance(arch["config"].get("compile_config"), dict):
        # a .keras config holds its compile_config next to the model; not deserialised here
        roots = [{k: v for k, v in arch["config"].items() if k != "compile_config"}]
    for root in roots:
        for kind, layer, node in _objects(root, None):
            if kind == "string":
                name = node.split("(", 1)[0].strip()
                if name and name not in functions and name not in classes:
                    raise _refuse(p, layer, f"names an unknown function or quantizer {node!r}")
                continue
            cls = node["class_name"]
            if cls == "Lambda" or cls == "__lambda__":
                raise _refuse(p, layer, "is a Lambda layer, which runs Python code stored in the "
                              "model file")  # fmt: skip
            if cls in _CODE_LAYERS:
                raise _refuse(p, layer, f"is a {cls} layer, which calls a function named in the "
                              "model file with arguments stored there")  # fmt: skip
            module = node.get("module")
            if module is not None and not (isinstance(module, str) and _MODULES.match(module)):
                raise _refuse(p, layer, f"names class {cls!r} from module {module!r}, "
                              "which is not Keras, QKeras or poetml")  # fmt: skip
            registered = node.get("registered_name")
            if cls == "function":
                name = node.get("config")
                ok = isinstance(name, str) and name in functions
                if not ok:
                    raise _refuse(p, layer, f"names an unknown function {name!r}")
                continue
            for n in (cls, registered):
                if n is not None and n not in classes:
                    raise _refuse(
                        p, layer, f"is of class {n!r}, which is not a Keras, QKeras or poetml "
                        "object (an unknown custom object may run code from the file)"
                    )  # fmt: skip


def load_model(
    path: str | os.PathLike[str], compile: bool = False, *, trust_model: bool = False
) -> Any:
    """Load a Keras/QKeras model file (``.keras`` or legacy ``.h5``) without running code
    stored in it: :func:`check_model_file` first, then Keras' loader (safe mode for
    ``.keras``) with the QKeras and poetml custom objects.

    ``trust_model=True`` skips the check and safe mode and so runs any code the file holds
    (a ``Lambda`` layer's function); use it only for files you trust.
    """
    from . import _backend, custom_objects

    p = Path(path)
    if not p.is_file():
        raise ReadError(f"model file {p} does not exist")
    if not trust_model:
        check_model_file(p, compile=compile)
    tf = _backend.tf()
    objects = custom_objects()  # imports QKeras (and with it tf_keras: see _keras_symbols)
    kwargs: dict[str, Any] = {}
    keras_format = zipfile.is_zipfile(p)
    if keras_format:
        kwargs["safe_mode"] = not trust_model
    try:
        with _keras_symbols(tf, read_architecture(p)["config"] if keras_format else {}):
            return tf.keras.models.load_model(
                str(p), custom_objects=objects, compile=compile, **kwargs
            )
    except PoetmlError:
        raise
    except Exception as exc:  # Keras raises many types for a bad file
        raise ReadError(f"cannot load the model file {p}: {_one_line(exc)}") from exc


@contextlib.contextmanager
def _keras_symbols(tf: Any, config: Mapping[str, Any]) -> Iterator[None]:
    """Resolve the Keras API names of a ``.keras`` config (``keras.layers.Dense``) to the
    classes of ``tf.keras`` (Keras 2.15) while it loads.

    Keras' ``.keras`` loader finds a built-in class through TensorFlow's export registry,
    where ``tf_keras`` (imported by tensorflow-model-optimization, which QKeras imports)
    registers its own classes under the same names; a model rebuilt from those mixes the two
    packages and the Functional reconstruction never finishes.
    """
    from tensorflow.python.util import tf_export

    registry = tf_export._NAME_TO_SYMBOL_MAPPING
    saved: dict[str, Any] = {}
    for kind, _, node in _objects(config, None):
        module = node.get("module") if kind == "object" else None
        if (
            not isinstance(module, str)
            or not module.startswith("keras.")
            or (module.startswith("keras.src"))
        ):
            continue
        name = f"{module}.{node['class_name']}"
        obj: Any = tf.keras
        for part in (*module.split(".")[1:], node["class_name"]):
            obj = getattr(obj, part, None)
        if obj is not None and name not in saved and registry.get(name) is not obj:
            saved[name] = registry.get(name)
            registry[name] = obj
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                registry.pop(name, None)
            else:
                registry[name] = old
