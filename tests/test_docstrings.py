"""Every public name of skkgp's API has a numpydoc docstring whose Parameters
section documents each argument, with the shape of every array argument."""

from __future__ import annotations

import importlib
import inspect
import re

import pytest
from numpydoc.docscrape import ClassDoc, FunctionDoc

# Modules whose ``__all__`` is public API (docs/api.rst).
PUBLIC_MODULES = (
    "skkgp.models",
    "skkgp.transforms",
    "skkgp.datasets",
    "skkgp.layout",
    "skkgp.pruning",
    "skkgp.knowledge.evidence",
    "skkgp.knowledge.losses",
    "skkgp.export",
)
TOP_LEVEL = ("EEGClassifier", "KnowledgeGuidedPruner", "save", "load", "export_onnx")
# Methods of the estimators that users call with data.
ESTIMATOR_METHODS = ("fit", "partial_fit", "predict", "predict_proba", "score", "transform",
                     "fit_transform", "inverse_transform")
# Types that mark an argument as an array whose shape must be given.
ARRAY_TYPE = re.compile(r"\b(ndarray|array-like|array_like|array|tensor)\b", re.IGNORECASE)
# A shape, or a pointer to where the same argument is documented with its shape.
SHAPE_WORDS = ("shape", "length", "(n_", "as in ")


def _public_objects():
    import skkgp

    objects = {f"skkgp.{name}": getattr(skkgp, name) for name in TOP_LEVEL}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                objects[f"{module_name}.{name}"] = obj
    return objects


def _callables():
    items = []
    for qualname, obj in _public_objects().items():
        items.append((qualname, obj))
        if inspect.isclass(obj):
            for method in ESTIMATOR_METHODS:
                if method in vars(obj):  # defined here, not inherited from a library
                    items.append((f"{qualname}.{method}", getattr(obj, method)))
    return items


CALLABLES = _callables()


def _signature_params(obj) -> list[str]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    if inspect.isclass(obj) and target is object.__init__:
        return []
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    names = []
    for param in signature.parameters.values():
        if param.name in ("self", "cls"):
            continue
        if param.kind is param.VAR_POSITIONAL:
            names.append(f"*{param.name}")
        elif param.kind is param.VAR_KEYWORD:
            names.append(f"**{param.name}")
        else:
            names.append(param.name)
    return names


def _documented(doc) -> dict[str, tuple[str, str]]:
    """Documented parameter name -> (type, description); ``a, b : int`` documents both."""
    documented = {}
    for param in doc["Parameters"]:
        for name in param.name.split(","):
            documented[name.strip()] = (param.type, " ".join(param.desc))
    return documented


def _is_ignored(type_: str, desc: str) -> bool:
    return "ignored" in type_.lower() or desc.lower().startswith("ignored")


@pytest.mark.parametrize("qualname, obj", CALLABLES, ids=[name for name, _ in CALLABLES])
def test_parameters_section(qualname, obj):
    docstring = inspect.getdoc(obj)
    assert docstring, f"{qualname} has no docstring."
    doc = ClassDoc(obj, config={"show_class_members": False}) if inspect.isclass(obj) \
        else FunctionDoc(obj)
    params = _signature_params(obj)
    if all(p.startswith("*") for p in params):
        return  # no arguments of its own (e.g. torch.nn.Module's ``*args, **kwargs``)
    documented = _documented(doc)
    assert documented, f"{qualname} takes {params} but its docstring has no Parameters section."
    missing = [p for p in params if p not in documented and p.lstrip("*") not in documented]
    assert not missing, f"{qualname}: parameters {missing} are not in its Parameters section."
    unshaped = [
        name for name, (type_, desc) in documented.items()
        if ARRAY_TYPE.search(type_)
        and not _is_ignored(type_, desc)
        and not any(word in (type_ + " " + desc).lower() for word in SHAPE_WORDS)
    ]
    assert not unshaped, f"{qualname}: array parameters {unshaped} give no shape."


def test_public_names_found():
    # The public API, by name: the parametrised test above must cover each.
    names = {name for name, _ in CALLABLES}
    expected = {
        "skkgp.EEGClassifier", "skkgp.KnowledgeGuidedPruner", "skkgp.save", "skkgp.load",
        "skkgp.models.CCNN", "skkgp.models.FBCCNN", "skkgp.models.EEGNet",
        "skkgp.models.TSCeption", "skkgp.transforms.BaselineRemoval",
        "skkgp.transforms.BandDifferentialEntropy", "skkgp.transforms.ToGrid",
        "skkgp.transforms.ChannelStandardizer", "skkgp.datasets.load_deap",
        "skkgp.datasets.make_deap_like", "skkgp.datasets.write_deap_like",
        "skkgp.layout.region_mask", "skkgp.layout.grid_cells", "skkgp.pruning.prune",
        "skkgp.pruning.PruningReport", "skkgp.knowledge.evidence.guided_gradcam",
        "skkgp.knowledge.losses.region_loss", "skkgp.knowledge.losses.sample_weights",
    }
    assert expected <= names, f"public names not checked: {sorted(expected - names)}"
