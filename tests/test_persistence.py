"""Tests of skkgp.persistence: pickle-free model files for plain and pruned networks.

Every zoo model round-trips plain, structurally pruned (lfp) and masked (umwp); the
knowledge-guided pruner round-trips with lfp, umwp and nsfp (FBCCNN). A file that was
changed after saving, that is not a skkgp file, or that carries pickled code fails
with a ValueError and runs nothing.
"""

import copy
import json
import os
import pickle
import re
import warnings
import zipfile

import joblib
import numpy as np
import pytest
import sklearn
import torch
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import EarlyStopping, EpochScoring
from skorch.dataset import ValidSplit
from torch import nn

import skkgp
from skkgp import EEGClassifier, KnowledgeGuidedPruner
from skkgp.persistence.encode import checksum
from skkgp.layout import DEAP_CHANNELS
from skkgp.pruning import prune
from skkgp.transforms import BaselineRemoval, ChannelStandardizer, ToGrid

pytestmark = pytest.mark.filterwarnings("ignore::skkgp.pruner.ConstantPredictorWarning")

CH_NAMES = list(DEAP_CHANNELS[:8])  # Fp1 ... T7: includes prefrontal electrodes
SHAPES = {"ccnn": (4, 9, 9), "fbccnn": (4, 9, 9), "eegnet": (8, 32), "tsception": (8, 32)}


def _data(shape, n=16, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, *shape)).astype("float32")
    y = np.array(["neg", "pos"] * (n // 2))
    return X, y


def _net(module, **kwargs):
    params = dict(max_epochs=1, batch_size=8, random_state=0)
    params.update(kwargs)
    return EEGClassifier(module, **params)


@pytest.fixture(scope="module")
def fitted():
    """One tiny fitted EEGClassifier per zoo model."""
    nets = {}
    for name, shape in SHAPES.items():
        X, y = _data(shape)
        nets[name] = (_net(name).fit(X, y), X)
    return nets


def _pruned(net, X, method):
    net = copy.deepcopy(net)
    if method is not None:
        prune(net.module_, method, 0.5, torch.as_tensor(X[:2]))
    return net


def _assert_same_network(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0, msg=key)
    for (name, la), (_, lb) in zip(a.named_modules(), b.named_modules(), strict=True):
        assert type(la) is type(lb), name
        for attr in ("in_channels", "out_channels", "groups", "num_features",
                     "in_features", "out_features"):
            assert getattr(la, attr, None) == getattr(lb, attr, None), (name, attr)


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("method", [None, "lfp", "umwp"])
@pytest.mark.parametrize("model", list(SHAPES))
def test_zoo_round_trip_plain_and_pruned(fitted, tmp_path, model, method):
    net, X = fitted[model]
    net = _pruned(net, X, method)
    path = tmp_path / "model.skkgp"
    skkgp.save(net, path)
    loaded = skkgp.load(path)
    assert type(loaded) is EEGClassifier
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    np.testing.assert_array_equal(loaded.classes_, net.classes_)
    assert loaded.input_shape_ == net.input_shape_
    assert loaded.get_params()["module"] == model
    _assert_same_network(loaded.module_, net.module_)
    assert loaded.history_[-1, "train_loss"] == net.history_[-1, "train_loss"]
    if method == "umwp":
        masked = [m for m in loaded.module_.modules() if hasattr(m, "weight_mask")]
        assert masked, "the umwp masks were not re-applied"
        assert all(hasattr(m, "weight_orig") for m in masked)
    if method == "lfp":
        n_before = sum(p.numel() for p in fitted[model][0].module_.parameters())
        assert sum(p.numel() for p in loaded.module_.parameters()) < n_before


def test_masks_stay_applied_when_training_the_loaded_net(fitted, tmp_path):
    net, X = fitted["eegnet"]
    net = _pruned(net, X, "umwp")
    skkgp.save(net, tmp_path / "m.skkgp")
    loaded = skkgp.load(tmp_path / "m.skkgp")
    zeros = {name: m.weight_mask == 0 for name, m in loaded.module_.named_modules()
             if hasattr(m, "weight_mask")}
    loaded.partial_fit(X, _data(SHAPES["eegnet"])[1])
    for name, zero in zeros.items():
        weight = loaded.module_.get_submodule(name).weight
        assert torch.all(weight[zero] == 0), name


@pytest.fixture
def eegnet_file(fitted, tmp_path):
    """The fitted EEGNet, its inputs and the file it was just saved to."""
    net, X = fitted["eegnet"]
    path = tmp_path / "m.skkgp"
    skkgp.save(net, path)
    return net, X, path


@pytest.fixture(scope="module")
def pruners():
    """Fitted KnowledgeGuidedPruners: lfp and umwp on EEGNet, nsfp on FBCCNN."""
    out = {}
    Xr, yr = _data(SHAPES["eegnet"])
    for method in ("lfp", "umwp"):
        kgp = KnowledgeGuidedPruner(_net("eegnet"), method=method, ch_names=CH_NAMES,
                                    random_state=0)
        out[method] = (kgp.fit(Xr, yr), Xr)
    Xg, yg = _data(SHAPES["fbccnn"])
    kgp = KnowledgeGuidedPruner(_net("fbccnn"), method="nsfp", random_state=0)
    out["nsfp"] = (kgp.fit(Xg, yg), Xg)
    return out


@pytest.mark.parametrize("method", ["lfp", "umwp", "nsfp"])
def test_pruner_round_trip(pruners, tmp_path, method):
    kgp, X = pruners[method]
    path = tmp_path / f"{method}.skkgp"
    skkgp.save(kgp, path)
    loaded = skkgp.load(path)
    assert type(loaded) is KnowledgeGuidedPruner
    np.testing.assert_array_equal(loaded.predict_proba(X), kgp.predict_proba(X))
    np.testing.assert_array_equal(loaded.origin_estimator_.predict_proba(X),
                                  kgp.origin_estimator_.predict_proba(X))
    assert loaded.origin_module_ is loaded.origin_estimator_.module_
    assert loaded.pruning_report_.to_dict() == kgp.pruning_report_.to_dict()
    assert loaded.get_params(deep=False).keys() == kgp.get_params(deep=False).keys()
    assert loaded.method == method and loaded.prune_ratio == kgp.prune_ratio
    assert loaded.electrodes_ == kgp.electrodes_
    np.testing.assert_array_equal(loaded.region_mask_, kgp.region_mask_)
    _assert_same_network(loaded.estimator_.module_, kgp.estimator_.module_)
    assert loaded.score(X, kgp.predict(X)) == 1.0


def test_pipeline_round_trip(tmp_path):
    X, y = _data(SHAPES["eegnet"])
    pipe = make_pipeline(
        ChannelStandardizer(),
        KnowledgeGuidedPruner(_net("eegnet"), method="umwp", ch_names=CH_NAMES, random_state=0),
    ).fit(X, y)
    skkgp.save(pipe, tmp_path / "pipe.skkgp")
    loaded = skkgp.load(tmp_path / "pipe.skkgp")
    assert [type(step) for _, step in loaded.steps] == [type(step) for _, step in pipe.steps]
    np.testing.assert_array_equal(loaded[0].mean_, pipe[0].mean_)
    np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))


def test_metadata_requests_and_output_config_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 32, 4)).astype("float32")
    base = rng.standard_normal((16, 32, 4)).astype("float32")
    y = np.array(["neg", "pos"] * 8)
    with sklearn.config_context(enable_metadata_routing=True):
        removal = BaselineRemoval().set_fit_request(baseline=True).set_transform_request(
            baseline=True)
        pipe = make_pipeline(removal, ToGrid(), _net("ccnn")).fit(X, y, baseline=base)
        skkgp.save(pipe, tmp_path / "routed.skkgp")
        loaded = skkgp.load(tmp_path / "routed.skkgp")
        assert loaded[0].get_metadata_routing().transform.requests == {"baseline": True}
        np.testing.assert_array_equal(loaded.predict_proba(X, baseline=base),
                                      pipe.predict_proba(X, baseline=base))
        assert not np.array_equal(loaded.predict_proba(X, baseline=0 * base),
                                  pipe.predict_proba(X, baseline=base))
    # An aliased request and a set_output choice are kept too.
    scaler = StandardScaler().set_output(transform="pandas").fit(X[:, :, 0])
    skkgp.save(scaler, tmp_path / "scaler.skkgp")
    again = skkgp.load(tmp_path / "scaler.skkgp", trusted_classes=[StandardScaler])
    assert again._sklearn_output_config == {"transform": "pandas"}
    assert again.transform(X[:, :, 0]).shape == (16, 32)
    assert type(again.transform(X[:, :, 0])).__name__ == "DataFrame"
    with sklearn.config_context(enable_metadata_routing=True):
        aliased = BaselineRemoval().set_transform_request(baseline="rest")
        skkgp.save(aliased, tmp_path / "aliased.skkgp")
        again = skkgp.load(tmp_path / "aliased.skkgp")
        assert again.get_metadata_routing().transform.requests == {"baseline": "rest"}
    # An estimator without explicit requests stores none.
    skkgp.save(BaselineRemoval(), tmp_path / "plain.skkgp")
    assert "_metadata_request" not in vars(skkgp.load(tmp_path / "plain.skkgp"))


def test_big_endian_arrays_round_trip(tmp_path):
    # Arrays read from files written on other machines (MATLAB, HDF5) may be big-endian.
    X = np.random.default_rng(0).standard_normal((6, 3, 16))
    scaler = ChannelStandardizer().fit(X)
    scaler.mean_ = scaler.mean_.astype(">f8")
    scaler.n_features_in_ = np.int32(3)
    scaler.codes_ = np.arange(4, dtype=">i2")
    skkgp.save(scaler, tmp_path / "big.skkgp")
    loaded = skkgp.load(tmp_path / "big.skkgp")
    for name in ("mean_", "codes_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(scaler, name))
        assert getattr(loaded, name).dtype == getattr(scaler, name).dtype
    np.testing.assert_array_equal(loaded.transform(X), scaler.transform(X))


def test_unfitted_estimators_round_trip(tmp_path):
    kgp = KnowledgeGuidedPruner(_net("eegnet", lr=0.01, module__F1=4), method="umwp",
                                prune_ratio=0.3, region=["Fp1", "F3"])
    skkgp.save(kgp, tmp_path / "u.skkgp")
    loaded = skkgp.load(tmp_path / "u.skkgp")
    outer = {k: v for k, v in kgp.get_params(deep=False).items() if k != "estimator"}
    assert {k: v for k, v in loaded.get_params(deep=False).items() if k != "estimator"} == outer
    assert type(loaded.estimator) is EEGClassifier
    assert loaded.estimator.get_params(deep=False) == kgp.estimator.get_params(deep=False)


def test_skorch_objects_and_optimizer_params_round_trip(tmp_path):
    X, y = _data(SHAPES["eegnet"], n=20)
    net = _net("eegnet", max_epochs=2, train_split=ValidSplit(4),
               callbacks=[("stop", EarlyStopping(monitor="train_loss", patience=3))],
               optimizer=torch.optim.SGD, optimizer__momentum=0.9).fit(X, y)
    skkgp.save(net, tmp_path / "m.skkgp")
    loaded = skkgp.load(tmp_path / "m.skkgp")
    assert loaded.train_split.cv == 4
    (name, stop), = loaded.callbacks
    assert name == "stop" and isinstance(stop, EarlyStopping) and stop.patience == 3
    assert isinstance(loaded.optimizer_, torch.optim.SGD)
    assert loaded.optimizer_.param_groups[0]["momentum"] == 0.9
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    loaded.partial_fit(X, y)  # training goes on (with a fresh optimizer state)
    assert len(loaded.history_) == 4


@pytest.mark.parametrize("optimizer", [torch.optim.SGD, torch.optim.AdamW, torch.optim.RMSprop])
def test_optimizers_and_skorch_callbacks_are_on_the_allow_list(tmp_path, optimizer):
    from skorch.callbacks import GradientNormClipping, LRScheduler

    X, y = _data(SHAPES["eegnet"])
    net = _net("eegnet", max_epochs=2, optimizer=optimizer, criterion=nn.CrossEntropyLoss,
               callbacks=[EpochScoring("accuracy", on_train=True, name="train_acc"),
                          LRScheduler(policy=torch.optim.lr_scheduler.ReduceLROnPlateau),
                          GradientNormClipping(1.0)]).fit(X, y)
    skkgp.save(net, tmp_path / "m.skkgp")
    loaded = skkgp.load(tmp_path / "m.skkgp")
    assert type(loaded.optimizer_) is optimizer
    assert [type(cb) for cb in loaded.callbacks] == [type(cb) for cb in net.callbacks]
    assert loaded.callbacks[1].policy is torch.optim.lr_scheduler.ReduceLROnPlateau
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    loaded.partial_fit(X, y)


def test_loaded_estimator_clones_and_refits(fitted, tmp_path):
    net, X = fitted["eegnet"]
    skkgp.save(net, tmp_path / "m.skkgp")
    loaded = skkgp.load(tmp_path / "m.skkgp")
    fresh = clone(loaded)
    assert fresh.get_params().keys() == net.get_params().keys()
    y = _data(SHAPES["eegnet"])[1]
    np.testing.assert_array_equal(fresh.fit(X, y).predict_proba(X),
                                  clone(net).fit(X, y).predict_proba(X))


# ----------------------------------------------------------------------------- safety
def test_load_needs_no_pickle(fitted, tmp_path, monkeypatch):
    net, X = fitted["eegnet"]
    skkgp.save(net, tmp_path / "m.skkgp")
    # The raw file holds only tensors, text and numbers: weights_only accepts it.
    payload = torch.load(tmp_path / "m.skkgp", weights_only=True)
    assert payload["format"] == "skkgp" and isinstance(payload["meta"], str)
    json.loads(payload["meta"])

    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    loaded = skkgp.load(tmp_path / "m.skkgp")
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_never_runs(tmp_path):
    marker = tmp_path / "owned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "skkgp", "payload": _Payload(marker)}, path)
    with pytest.raises(ValueError, match="not a safe skkgp model file.*not run"):
        skkgp.load(path)
    assert not marker.exists()
    # The same payload in a plain pickle file.
    path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ValueError, match="skkgp model file"):
        skkgp.load(path)
    assert not marker.exists()


def _rewrite(path, change):
    """Load the raw payload, change it, write it back (checksum left as it was)."""
    payload = torch.load(path, weights_only=True)
    change(payload)
    torch.save(payload, path)


def _reseal(payload):
    payload["checksum"] = checksum(
        payload["format"], payload["version"], payload["kind"], payload["meta"],
        payload["tensors"])


def _change_weight(payload):
    key = max(payload["tensors"], key=lambda k: payload["tensors"][k].numel())
    payload["tensors"][key].view(-1)[0] += 1.0


def _change_meta(payload):
    payload["meta"] = payload["meta"].replace('"max_epochs":1', '"max_epochs":2')


def _drop_tensor(payload):
    payload["tensors"].pop(next(iter(payload["tensors"])))


def _foreign_class(payload):
    # A valid checksum, but the network class is something the allow-list refuses.
    meta = json.loads(payload["meta"])
    meta["modules"][0]["class"] = "subprocess:Popen"
    payload["meta"] = json.dumps(meta)
    _reseal(payload)


def _missing_module_key(payload):
    meta = json.loads(payload["meta"])
    del meta["modules"][0]["state_dict"]
    payload["meta"] = json.dumps(meta)
    _reseal(payload)


def _wrong_shape_resealed(payload):
    key = max(payload["tensors"], key=lambda k: payload["tensors"][k].numel())
    payload["tensors"][key] = payload["tensors"][key][:1]
    _reseal(payload)


TAMPERING = [
    ("changed weight", _change_weight, "checksum"),
    ("changed metadata", _change_meta, "checksum"),
    ("dropped tensor", _drop_tensor, "checksum"),
    ("missing checksum", lambda p: p.pop("checksum"), r"missing keys \['checksum'\]"),
    ("missing meta", lambda p: p.pop("meta"), r"missing keys \['meta'\]"),
    ("wrong format", lambda p: p.update(format="other"), "not a skkgp model file"),
    ("future version", lambda p: p.update(version=99), "version 99"),
    ("class not allowed", _foreign_class, "subprocess:Popen.*allow-list"),
    ("missing key", _missing_module_key, "missing key 'state_dict'"),
    ("resealed wrong shape", _wrong_shape_resealed, "do not fit"),
]


@pytest.mark.parametrize(("what", "change", "match"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_tampered_file_fails_clearly(eegnet_file, what, change, match):
    *_, path = eegnet_file
    _rewrite(path, change)
    with pytest.raises(ValueError, match=match):
        skkgp.load(path)


@pytest.mark.parametrize(
    ("what", "corrupt"),
    [
        ("truncated", lambda b: b[: len(b) // 2]),
        ("empty", lambda b: b""),
        ("text", lambda b: b"hello, not a model\n"),
    ],
)
def test_damaged_bytes_fail_clearly(eegnet_file, what, corrupt):
    *_, path = eegnet_file
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(ValueError, match="not a readable skkgp model file"):
        skkgp.load(path)


def test_flipped_weight_byte_fails_checksum(eegnet_file):
    net, _, path = eegnet_file
    weights = net.module_.lin.weight.detach().numpy().tobytes()
    data = bytearray(path.read_bytes())
    where = bytes(data).find(weights)
    assert where > 0
    data[where + 5] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="failed its checksum"):
        skkgp.load(path)


def test_any_flipped_byte_is_caught_or_harmless(eegnet_file):
    # Bytes of zip padding and unused header fields may change without effect; every
    # other change must be refused. Never a silently different model.
    net, X, path = eegnet_file
    original = path.read_bytes()
    expected = net.predict_proba(X)
    refused = 0
    for where in np.linspace(0, len(original) - 1, 25).astype(int):
        data = bytearray(original)
        data[where] ^= 0xFF
        path.write_bytes(bytes(data))
        try:
            loaded = skkgp.load(path)
        except ValueError:
            refused += 1
            continue
        np.testing.assert_array_equal(loaded.predict_proba(X), expected)
    assert refused > 0


def _forged_callback(path, callback):
    """Save an unfitted CCNN, then plant ``callback`` among its callbacks and reseal."""
    skkgp.save(EEGClassifier("ccnn"), path)

    def plant(payload):
        meta = json.loads(payload["meta"])
        meta["estimator"]["params"]["callbacks"] = {"__list__": [callback]}
        payload["meta"] = json.dumps(meta)
        _reseal(payload)

    _rewrite(path, plant)


@pytest.mark.parametrize(
    ("stored", "kwargs", "real"),
    [
        # An allow-listed module, then attribute hops through the modules it imported.
        ("skkgp.export:np.f2py.subprocess.Popen", lambda m: {"args": {"__list__": [
            "touch", str(m)]}}, "subprocess"),
        ("skkgp.persistence:io.FileIO", lambda m: {"file": str(m), "mode": "w"}, "io"),
    ],
    ids=["popen", "fileio"],
)
def test_class_path_hops_outside_the_allow_list_are_refused(tmp_path, stored, kwargs, real):
    marker = tmp_path / "owned"
    path = tmp_path / "forged.skkgp"
    _forged_callback(path, {"__object__": stored, "kwargs": kwargs(marker)})
    with pytest.raises(ValueError, match=rf"{re.escape(stored)}.*not on skkgp's allow-list"):
        skkgp.load(path)
    assert not marker.exists()


def test_class_path_must_name_the_class_where_it_is_defined(tmp_path):
    # skkgp.classifier imports EEGClassifier's base classes: a path through that import
    # names a real class, but not by its own path.
    path = tmp_path / "forged.skkgp"
    _forged_callback(path, {"__object__": "skkgp.classifier:NeuralNetClassifier",
                            "kwargs": {}})
    with pytest.raises(ValueError, match="skkgp.classifier:NeuralNetClassifier.*allow-list"):
        skkgp.load(path)


def test_user_guide_lists_every_class_a_file_may_name():
    from pathlib import Path

    from skkgp.persistence.decode import allowed_classes

    guide = (Path(__file__).parents[1] / "docs" / "user_guide" / "persistence.rst").read_text()
    missing = [path for path, cls in allowed_classes().items()
               if not issubclass(cls, torch.optim.Optimizer) and cls.__name__ not in guide]
    assert not missing
    # Optimizers are listed as "every optimizer of torch.optim".
    assert "every optimizer of :mod:`torch.optim`" in guide


def _sgd():
    return {"__object__": "torch.optim.sgd:SGD",
            "kwargs": {"params": {"__list__": [{"__tensor__": "t0"}]}, "lr": 0.1}}


def _linear(n):
    return {"__object__": "torch.nn.modules.linear:Linear",
            "kwargs": {"in_features": n, "out_features": n}}


# Classes inside the packages skkgp trusts that skkgp.save never writes: each is refused
# before it is created, whatever its constructor would do.
NOT_MODEL_PARTS = [
    # A results store pointed at a folder of the victim's.
    ("store", {"__object__": "skkgp.reproduce.store:ResultStore", "kwargs": {"out": "/"}}),
    # A scheduler that calls a class named in the file while it is being built.
    ("lambda-lr", {"__object__": "torch.optim.lr_scheduler:LambdaLR", "kwargs": {
        "optimizer": _sgd(),
        "lr_lambda": {"__class__": "skkgp.reproduce.store:ResultStore"}}}),
    ("data-parallel", {"__object__": "torch.nn.parallel.data_parallel:DataParallel",
                       "kwargs": {"module": _linear(2)}}),
    ("ddp", {"__object__": "torch.nn.parallel.distributed:DistributedDataParallel",
             "kwargs": {"module": _linear(2)}}),
    ("interrupt-watch", {"__object__": "skkgp.reproduce.interrupt:InterruptWatch",
                         "kwargs": {}}),
    # 4 TB of weights asked for by a file of a few kB.
    ("huge-linear", _linear(10**6)),
    ("lambda-lr-class", {"__class__": "torch.optim.lr_scheduler:LambdaLR"}),
]


@pytest.mark.parametrize(("what", "forged"), NOT_MODEL_PARTS, ids=[n[0] for n in NOT_MODEL_PARTS])
def test_classes_save_never_writes_are_refused(tmp_path, what, forged):
    path = tmp_path / "forged.skkgp"
    _forged_callback(path, forged)

    def add_tensor(payload):
        payload["tensors"]["t0"] = torch.zeros(1)
        _reseal(payload)

    _rewrite(path, add_tensor)
    name = forged.get("__object__", forged.get("__class__"))
    with pytest.raises(ValueError, match=rf"{re.escape(name)}', which is not on skkgp's allow"):
        skkgp.load(path)


def test_zoo_classes_are_networks_not_objects(tmp_path):
    # A zoo network is rebuilt from its stored record only, where its weights bound its
    # size; as a plain object it would be built at whatever size the file says.
    path = tmp_path / "forged.skkgp"
    _forged_callback(path, {"__object__": "skkgp.models.ccnn:CCNN",
                            "kwargs": {"num_classes": 10**12}})
    with pytest.raises(ValueError, match="skkgp.models.ccnn:CCNN.*network.*not an object"):
        skkgp.load(path)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("predict", {"__class__": "skkgp.transforms:ToGrid"}),  # shadows a method
        ("__class__", {"__class__": "skkgp.transforms:ToGrid"}),  # swaps the class
        ("_fitted", 1),
        ("history", 1),  # a skorch property
    ],
)
def test_fitted_attributes_are_only_those_save_writes(eegnet_file, name, value):
    *_, path = eegnet_file

    def plant(payload):
        meta = json.loads(payload["meta"])
        meta["estimator"]["fitted"][name] = value
        payload["meta"] = json.dumps(meta)
        _reseal(payload)

    _rewrite(path, plant)
    with pytest.raises(ValueError, match=rf"fitted attribute {re.escape(name)!r}"):
        skkgp.load(path)


def test_deeply_nested_metadata_fails_clearly(eegnet_file):
    # JSON nested thousands of levels deep exhausts Python's recursion limit while the
    # file is read: a damaged file, named as such, not a RecursionError.
    *_, path = eegnet_file
    depth = 5000

    def nest(payload):
        deep = '{"__list__":[' * depth + '"x"' + "]}" * depth
        payload["meta"] = payload["meta"].replace('"fitted":{', '"fitted":{"deep_":' + deep + ",", 1)
        _reseal(payload)

    _rewrite(path, nest)
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}.*nested too deeply"):
        skkgp.load(path)


def test_network_that_contains_itself_is_refused(fitted, tmp_path):
    net, _ = fitted["ccnn"]
    path = tmp_path / "m.skkgp"
    skkgp.save(net, path)

    def loop(payload):
        meta = json.loads(payload["meta"])
        meta["modules"][0]["kwargs"]["dropout"] = {"__module__": 0}
        payload["meta"] = json.dumps(meta)
        _reseal(payload)

    _rewrite(path, loop)
    with pytest.raises(ValueError, match="network 0 contains itself"):
        skkgp.load(path)


def test_compressed_archive_entries_are_refused_unopened(eegnet_file, tmp_path):
    # torch.load inflates deflated zip entries: a file of 100 kB can unpack to 100 MB
    # of tensors (1000 to 1). skkgp.save stores every entry uncompressed.
    *_, path = eegnet_file
    packed = tmp_path / "packed.skkgp"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(packed, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info.filename),
                            compress_type=zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match=r"packed.skkgp.*compressed"):
        skkgp.load(packed)


def test_each_stored_tensor_is_used_once(eegnet_file):
    # Every reference to a stored tensor makes a copy of it: a file that names its
    # largest tensor a thousand times would make a thousand copies. skkgp.save writes
    # a tensor per use.
    *_, path = eegnet_file

    def repeat(payload):
        key = max(payload["tensors"], key=lambda k: payload["tensors"][k].numel())
        meta = json.loads(payload["meta"])
        meta["estimator"]["fitted"]["copies_"] = {"__list__": [{"__tensor__": key}] * 1000}
        payload["meta"] = json.dumps(meta)
        _reseal(payload)

    _rewrite(path, repeat)
    with pytest.raises(ValueError, match=r"tensor 't\d+' more than once"):
        skkgp.load(path)


def _resize(path, change):
    def doctor(payload):
        meta = json.loads(payload["meta"])
        change(meta)
        payload["meta"] = json.dumps(meta)
        _reseal(payload)

    _rewrite(path, doctor)


def test_declared_network_size_is_checked_against_the_stored_weights(fitted, tmp_path):
    # A CCNN said to have 10**12 classes would need terabytes for its last layer; the
    # file holds weights for 2. The network is built of shapes only, given the stored
    # weights' shapes, and allocated only then: as large as the file's weights.
    net, X = fitted["ccnn"]
    path = tmp_path / "m.skkgp"
    skkgp.save(net, path)
    _resize(path, lambda meta: meta["modules"][0]["kwargs"].update(num_classes=10**12))
    np.testing.assert_array_equal(skkgp.load(path).predict_proba(X), net.predict_proba(X))

    def layers_too(meta):
        layers = meta["modules"][0]["layers"]
        head = next(name for name, layer in layers.items()
                    if layer["attrs"].get("out_features") == 2)
        layers[head]["attrs"]["out_features"] = 10**12

    _resize(path, layers_too)
    with pytest.raises(ValueError, match=r"do not fit.*weight has shape \(2, .*imply "
                                         r"\(1000000000000, "):
        skkgp.load(path)


def test_network_built_from_parameters_is_never_allocated(fitted, tmp_path):
    # A fitted net is restored from its stored network; the one its parameters describe
    # (module__* and the inferred module_kwargs_) is never built, whatever its size.
    net, X = fitted["ccnn"]
    path = tmp_path / "m.skkgp"
    skkgp.save(net, path)

    def huge(meta):
        meta["estimator"]["params"]["module__num_classes"] = 10**12
        meta["estimator"]["fitted"]["module_kwargs_"]["__dict__"]["num_classes"] = 10**12

    _resize(path, huge)
    loaded = skkgp.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        # numpy.void(n) allocates n bytes (up to 2 GB a scalar).
        ({"__npscalar__": "|V8", "value": 2**31 - 1}, "dtype '|V8'"),
        ({"__npscalar__": "|O", "value": 1}, "dtype '|O'"),
        ({"__ndarray_items__": ["a"], "dtype": "<U500000000", "shape": [1]},
         "dtype '<U500000000'"),
        ({"__ndarray__": "planted", "dtype": "|V8"}, "dtype '|V8'"),
    ],
    ids=["void-scalar", "object-scalar", "wide-strings", "void-array"],
)
def test_numpy_dtypes_are_only_those_save_writes(eegnet_file, value, match):
    *_, path = eegnet_file

    def plant(payload):
        meta = json.loads(payload["meta"])
        meta["estimator"]["fitted"]["planted_"] = value
        payload["meta"] = json.dumps(meta)
        payload["tensors"]["planted"] = torch.zeros(8, dtype=torch.uint8)
        _reseal(payload)

    _rewrite(path, plant)
    with pytest.raises(ValueError, match=re.escape(match)):
        skkgp.load(path)


@pytest.mark.parametrize(
    ("attr", "value", "match"),
    [
        ("stride", {"__tuple__": [3, 3]}, "attribute 'stride'.*not one skkgp.save writes"),
        ("__class__", "x", "attribute '__class__'"),
        ("out_channels", "8", "out_channels='8'.*int or a tuple of ints"),
        ("out_channels", True, "out_channels=True"),
        ("out_channels", {"__tuple__": [1, "a"]}, "out_channels="),
    ],
)
def test_layer_attributes_outside_the_format_are_refused(fitted, tmp_path, attr, value, match):
    net, X = fitted["ccnn"]
    path = tmp_path / "m.skkgp"
    skkgp.save(net, path)

    def doctor(payload):
        meta = json.loads(payload["meta"])
        layers = meta["modules"][0]["layers"]
        conv = next(name for name, layer in layers.items() if layer["type"].endswith("Conv2d"))
        layers[conv]["attrs"][attr] = value
        payload["meta"] = json.dumps(meta)
        _reseal(payload)

    _rewrite(path, doctor)
    with pytest.raises(ValueError, match=match):
        skkgp.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such"):
        skkgp.load(tmp_path / "no-such.skkgp")


class TinyNet(nn.Module):
    """A user's own module class: not on the allow-list."""

    def __init__(self, n_features=12, num_classes=2, hidden=5):
        super().__init__()
        self.n_features, self.num_classes, self.hidden = n_features, num_classes, hidden
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(n_features, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.head(self.body(x))


def test_user_class_needs_trusted_classes(tmp_path):
    X, y = _data((3, 4))
    net = _net(TinyNet, module__n_features=12).fit(X, y)
    skkgp.save(net, tmp_path / "t.skkgp")
    with pytest.raises(ValueError, match="TinyNet.*not on skkgp's allow-list.*trusted_classes"):
        skkgp.load(tmp_path / "t.skkgp")
    loaded = skkgp.load(tmp_path / "t.skkgp", trusted_classes=[TinyNet])
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    # One class alone, not in a list, is trusted as well.
    alone = skkgp.load(tmp_path / "t.skkgp", trusted_classes=TinyNet)
    np.testing.assert_array_equal(alone.predict_proba(X), net.predict_proba(X))
    with pytest.raises(TypeError, match="trusted_classes must hold classes, got 'TinyNet'"):
        skkgp.load(tmp_path / "t.skkgp", trusted_classes=["TinyNet"])
    with pytest.raises(TypeError, match="trusted_classes must be a class or an iterable"):
        skkgp.load(tmp_path / "t.skkgp", trusted_classes=3)


def test_unsafe_params_are_refused_and_callbacks_dropped(fitted, tmp_path):
    net, X = fitted["eegnet"]
    bad = copy.deepcopy(net).set_params(criterion=lambda: nn.CrossEntropyLoss())
    with pytest.raises(ValueError, match="Cannot save parameter criterion"):
        skkgp.save(bad, tmp_path / "bad.skkgp")
    assert not (tmp_path / "bad.skkgp").exists()
    assert os.listdir(tmp_path) == []  # no temporary file left behind

    def score(net, X, y):
        return 0.0

    X, y = _data(SHAPES["eegnet"])
    with_callback = _net("eegnet", callbacks=[("mine", EpochScoring(score))]).fit(X, y)
    with pytest.warns(UserWarning, match="drops the callback"):
        skkgp.save(with_callback, tmp_path / "cb.skkgp")
    loaded = skkgp.load(tmp_path / "cb.skkgp")
    assert loaded.get_params()["callbacks"] == []
    np.testing.assert_array_equal(loaded.predict_proba(X), with_callback.predict_proba(X))


def test_never_overwrites_without_consent(fitted, tmp_path):
    net, _ = fitted["eegnet"]
    path = tmp_path / "m.skkgp"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        skkgp.save(net, path)
    assert path.read_bytes() == b"precious"
    skkgp.save(net, path, overwrite=True)
    assert skkgp.load(path).initialized_
    assert sorted(os.listdir(tmp_path)) == ["m.skkgp"]


def test_device_maps_to_cpu_when_cuda_is_absent(eegnet_file):
    net, X, path = eegnet_file

    def gpu_saved(payload):
        meta = json.loads(payload["meta"])
        meta["estimator"]["params"]["device"] = "cuda"
        payload["meta"] = json.dumps(meta)
        _reseal(payload)

    _rewrite(path, gpu_saved)
    if torch.cuda.is_available():
        loaded = skkgp.load(path)
        assert loaded.device == "cuda"
    else:
        with pytest.warns(UserWarning, match="CUDA is not available"):
            loaded = skkgp.load(path)
        assert loaded.device == "cpu"
    np.testing.assert_allclose(loaded.predict_proba(X), net.predict_proba(X), rtol=1e-5)
    explicit = skkgp.load(path, device="cpu")
    assert explicit.device == "cpu"
    assert all(p.device.type == "cpu" for p in explicit.module_.parameters())


def test_save_refuses_non_estimators(tmp_path):
    with pytest.raises(TypeError, match="skkgp estimators"):
        skkgp.save(nn.Linear(2, 2), tmp_path / "x.skkgp")


# ----------------------------------------------------------------------------- pickle
@pytest.mark.parametrize("how", ["pickle", "joblib"])
def test_pickle_and_joblib_keep_working(pruners, fitted, tmp_path, how):
    for est, X in (pruners["umwp"], fitted["fbccnn"]):
        if how == "pickle":
            again = pickle.loads(pickle.dumps(est))
        else:
            joblib.dump(est, tmp_path / "m.joblib")
            again = joblib.load(tmp_path / "m.joblib")
        np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))


def test_file_holds_no_code_objects(pruners, tmp_path):
    kgp, _ = pruners["umwp"]
    skkgp.save(kgp, tmp_path / "k.skkgp")
    payload = torch.load(tmp_path / "k.skkgp", weights_only=True)
    allowed = (str, int, float, bool, type(None), torch.Tensor)

    def walk(value):
        if isinstance(value, dict):
            for key, item in value.items():
                assert isinstance(key, str)
                walk(item)
        else:
            assert isinstance(value, allowed), type(value)

    walk(payload)
    # Masks are stored compactly and the file lists them per layer.
    meta = json.loads(payload["meta"])
    assert any(record["masks"] for record in meta["modules"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        skkgp.load(tmp_path / "k.skkgp")


# ---------------------------------------------------------------------- one copy per file
def _state_dict_bytes(module) -> int:
    import io

    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return len(buffer.getvalue())


@pytest.fixture(scope="module")
def pruned_ccnn():
    """A full-size CCNN (6.2 M parameters) pruned by lfp at 0.5 and recovered for an epoch."""
    X, y = _data((4, 9, 9))
    return KnowledgeGuidedPruner(_net("ccnn", batch_size=16), method="lfp", prune_ratio=0.5,
                                 random_state=0).fit(X, y), X


def test_pruned_network_is_stored_once(pruned_ccnn, tmp_path):
    kgp, X = pruned_ccnn
    net = kgp.estimator_
    assert net.module is net.module_  # no pre-recovery copy beside the recovered network
    path = tmp_path / "pruned.skkgp"
    skkgp.save(net, path)
    size, state = os.path.getsize(path), _state_dict_bytes(net.module_)
    assert state > 10_000_000  # about 11.6 MB: the test measures the real network
    assert abs(size - state) <= 0.05 * state
    loaded = skkgp.load(path)
    assert loaded.module is loaded.module_
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))


def test_pruner_file_without_origin_holds_what_predicting_needs(pruned_ccnn, tmp_path):
    kgp, X = pruned_ccnn
    full, lean = tmp_path / "full.skkgp", tmp_path / "lean.skkgp"
    skkgp.save(kgp, full)
    skkgp.save(kgp, lean, include_origin=False)
    state = _state_dict_bytes(kgp.estimator_.module_)
    origin = _state_dict_bytes(kgp.origin_module_)
    # Default: the origin and the pruned network, each once.
    assert abs(os.path.getsize(full) - (state + origin)) <= 0.05 * (state + origin)
    assert abs(os.path.getsize(lean) - state) <= 0.05 * state
    again = skkgp.load(lean)
    np.testing.assert_array_equal(again.predict_proba(X), kgp.predict_proba(X))
    assert again.origin_score_ == kgp.origin_score_
    assert not hasattr(again, "origin_estimator_") and not hasattr(again, "origin_module_")
    assert hasattr(skkgp.load(full), "origin_estimator_")


def test_prefit_origin_is_stored_unfitted_without_origin(tmp_path):
    X, y = _data(SHAPES["eegnet"])
    origin = _net("eegnet").fit(X, y)
    kgp = KnowledgeGuidedPruner(origin, prefit=True, ch_names=CH_NAMES, random_state=0).fit(X, y)
    path = tmp_path / "prefit.skkgp"
    skkgp.save(kgp, path, include_origin=False)
    again = skkgp.load(path)
    assert not hasattr(again.estimator, "module_")  # the origin's weights stayed out
    np.testing.assert_array_equal(again.predict(X), kgp.predict(X))
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="prefit=True"):
        again.fit(X, y)
