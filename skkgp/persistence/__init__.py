"""Pickle-free model files: :func:`save` and :func:`load` for fitted skkgp estimators.

A pickle runs code when it is loaded, so a model file received from someone else is
as dangerous as a program from them. :func:`save` writes a fitted
:class:`~skkgp.EEGClassifier`, :class:`~skkgp.knowledge.recovery.KnowledgeGuidedClassifier` or
:class:`~skkgp.KnowledgeGuidedPruner` as one :func:`torch.save` file that holds only
tensors, strings and numbers, and :func:`load` reads it with
``torch.load(weights_only=True)``, which refuses anything else.

File layout (a dict)::

    format    "skkgp"
    version   1
    kind      class name of the saved estimator
    meta      JSON text: estimator classes and parameters, fitted attributes, and for
              each network its class, constructor arguments, the shape attributes of
              every layer (pruning shrinks them) and its pruning masks
    tensors   {name: tensor}: every network's state dict (and masks)
    checksum  sha256 of meta and every tensor (name, dtype, shape, bytes)

Classes are stored by the path where they are defined (``module:qualname``) and
re-created on loading only when :func:`skkgp.save` writes them
(``skkgp.persistence.decode.allowed_classes()``: the zoo, skkgp's estimators,
transformers and callbacks, torch losses, optimizers and learning-rate policies, a
few skorch helpers), looked up in that table: a path in a file is never imported.
Any other class (your own ``torch.nn.Module``, say) is loaded only when you pass it
in ``trusted_classes``. Networks are built of shapes first and allocated as large as
their stored weights; fitted attributes and numpy dtypes are only those ``save``
writes.

The checksum catches damaged files; it is not a signature (whoever edits a file can
recompute it). Safety against a malicious file comes from the pickle-free format and
these checks.
The optimizer's state (e.g. Adam's moments) is not stored: training a loaded model
further starts a fresh optimizer.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from skkgp._atomic import atomic_file
from skkgp.persistence.decode import Decoder, check_payload, first_line
from skkgp.persistence.encode import FORMAT, VERSION, Encoder, checksum, class_path

__all__ = ["save", "load", "FORMAT", "VERSION"]


def save(estimator: Any, path: str | os.PathLike, *, overwrite: bool = False,
         include_origin: bool = True) -> None:
    """Write ``estimator`` (fitted or not) to ``path`` without pickle.

    The network's architecture (pruned layers included: torch-pruning shrinks them in
    place, magnitude pruning leaves masks), weights, parameters and fitted attributes
    are stored as tensors and JSON text. The file is written to a temporary file of
    the same folder and moved into place, so a crash never leaves half a file.

    Parameters
    ----------
    estimator : EEGClassifier, KnowledgeGuidedClassifier or KnowledgeGuidedPruner
        The estimator to store, or a :class:`sklearn.pipeline.Pipeline` of skkgp
        transformers and estimators.
    path : path-like
        Destination file (by convention ``*.skkgp`` or ``*.pt``); its folder must exist.
    overwrite : bool, default=False
        Replace an existing file. By default an existing ``path`` raises
        :class:`FileExistsError` and is left untouched: a model file is often the
        result of hours of training.
    include_origin : bool, default=True
        Whether the file of a :class:`~skkgp.KnowledgeGuidedPruner` (alone or in a
        pipeline) keeps the unpruned origin network (``origin_estimator_`` and
        ``origin_module_``, and a prefit ``estimator`` with its weights), as it does by
        default. ``False`` writes only what predicting needs: a pruned CCNN then takes
        about a third of the space. The loaded pruner predicts, scores and exports as
        before, but has no ``origin_estimator_`` or ``origin_module_``, and one fitted
        with ``prefit=True`` cannot be refitted (its ``estimator`` is stored unfitted).

    Raises
    ------
    ValueError
        If a parameter cannot be stored safely (a lambda, a local class, an arbitrary
        object). Callbacks that cannot be stored are dropped with a warning: they act
        during training only, so predictions do not change.
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.

    See Also
    --------
    load : Read the file back.

    Examples
    --------
    >>> import skkgp  # doctest: +SKIP
    >>> skkgp.save(fitted_pruner, "pruned.skkgp")  # doctest: +SKIP
    >>> again = skkgp.load("pruned.skkgp")  # doctest: +SKIP
    """
    encoder = Encoder(include_origin=bool(include_origin))
    meta = {"estimator": encoder.estimator(estimator), "modules": encoder.modules()}
    meta_text = json.dumps(meta, sort_keys=True, allow_nan=True, separators=(",", ":"))
    tensors = encoder.tensors
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "kind": type(estimator).__name__,
        "meta": meta_text,
        "tensors": tensors,
        "checksum": checksum(FORMAT, VERSION, type(estimator).__name__, meta_text, tensors),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_file(path, overwrite=overwrite) as stream:
        stream.write(buffer.getbuffer())


def load(
    path: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    trusted_classes: type | Iterable[type] = (),
) -> Any:
    """Read an estimator written by :func:`save`, without unpickling anything.

    The file is read with ``torch.load(weights_only=True)`` (which refuses pickled
    code), its checksum is verified, every class is resolved from the allow-list or
    ``trusted_classes``, each network is rebuilt with its pruned layer shapes and
    masks, and its weights are loaded. The estimator predicts exactly as when it was
    saved, without refitting.

    Parameters
    ----------
    path : path-like
        A file written by :func:`save`.
    device : str, torch.device or None, default=None
        Where the networks go, e.g. ``"cpu"`` or ``"cuda"``; the estimators' ``device``
        parameter is set to it. ``None`` keeps the saved ``device``, falling back to
        ``"cpu"`` (with a warning) when the file was saved on a GPU and none is
        available.
    trusted_classes : type or iterable of type, default=()
        A class, or classes, outside the allow-list (the classes :func:`save` writes:
        skkgp's zoo, estimators, transformers and callbacks, torch losses, optimizers
        and learning-rate policies, a few skorch helpers) that the file may
        instantiate, such as your own ``torch.nn.Module`` subclass. Matched by import
        path; nothing named in the file is imported. A trusted network class is built
        as its stored arguments say, before its weights are compared.

    Returns
    -------
    estimator : object
        The restored estimator.

    Raises
    ------
    ValueError
        If the file is not a skkgp model file, is corrupt or was tampered with
        (checksum mismatch, missing keys), or names a class that is not trusted.
    FileNotFoundError
        If ``path`` does not exist.
    """
    path = Path(path)
    if device is not None:
        try:
            wanted = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device={device!r} is not a torch device (cpu, cuda, ...).") from None
        if wanted.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but torch sees no CUDA device on this machine.")
    if not path.is_file():
        raise FileNotFoundError(f"No skkgp model file at {str(path)!r}.")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{str(path)!r} is not a readable skkgp model file: it is not a torch zip archive "
            "(skkgp.save writes those; a legacy or plain pickle is refused unopened)."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            packed = [entry.filename for entry in archive.infolist()
                      if entry.compress_type != zipfile.ZIP_STORED]
    except Exception as error:  # noqa: BLE001 - any failure to list it is a damaged file
        raise ValueError(
            f"{str(path)!r} is not a readable skkgp model file (truncated or corrupt "
            f"archive): {first_line(error)}"
        ) from None
    if packed:
        # torch.load inflates compressed entries: a small file could unpack to any size.
        raise ValueError(
            f"{str(path)!r} is not a skkgp model file: it holds compressed entries "
            f"({packed[0]}, ...), which skkgp.save never writes; refused unopened."
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{str(path)!r} is not a safe skkgp model file: torch.load(weights_only=True) "
            f"refused it ({first_line(error)}). It may hold pickled code; it was not run."
        ) from None
    except Exception as error:  # noqa: BLE001 - any failure to parse is a damaged file
        raise ValueError(
            f"{str(path)!r} is not a readable skkgp model file (truncated, corrupt or not a "
            f"torch file): {first_line(error)}"
        ) from None
    meta = check_payload(payload, path)
    if isinstance(trusted_classes, type):
        trusted_classes = [trusted_classes]
    try:
        trusted_classes = list(trusted_classes)
    except TypeError:
        raise TypeError(
            f"trusted_classes must be a class or an iterable of classes, got "
            f"{trusted_classes!r}."
        ) from None
    for cls in trusted_classes:
        if not isinstance(cls, type):
            raise TypeError(f"trusted_classes must hold classes, got {cls!r}.")
    trusted = {class_path(cls): cls for cls in trusted_classes}
    decoder = Decoder(payload["tensors"], trusted, device)
    decoder.module_records = meta["modules"]
    try:
        return decoder.estimator(meta["estimator"])
    except RecursionError:
        raise ValueError(f"{str(path)!r} is damaged: its metadata is nested too deeply.") from None
    except (TypeError, KeyError, AttributeError, IndexError) as error:
        raise ValueError(
            f"{str(path)!r} is damaged or inconsistent: rebuilding the estimator failed with "
            f"{type(error).__name__}: {first_line(error)}"
        ) from None
