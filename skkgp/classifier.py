"""EEGClassifier: a skorch classifier for the zoo's EEG networks, with shapes inferred at fit."""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator, Mapping

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d
from skorch import NeuralNetClassifier
from skorch.dataset import Dataset as SkorchDataset
from skorch.utils import is_dataset, to_tensor
from torch import nn

from skkgp._input import eeg_input
from skkgp._modes import eval_mode
from skkgp._training import (
    FastTrainingLoop,
    TensorBatchIterator,
    TensorData,
    lay_out,
    to_tensor_data,
    uncompiled,
)
from skkgp._validation import Interval, Options, TorchDevice, validate_params
from skkgp.models import get_model_class, infer_module_kwargs
from skkgp.pruning.masks import copy_module

__all__ = ["EEGClassifier"]

_PRECISIONS = {None: None, "fp32": None, "float32": None, "bf16": torch.bfloat16,
               "bfloat16": torch.bfloat16}


class EEGClassifier(FastTrainingLoop, NeuralNetClassifier):
    """A scikit-learn classifier around an EEG network, trained with skorch.

    ``module`` is a zoo name or any ``torch.nn.Module`` class. At :meth:`fit` the shape
    of one sample of ``X`` and the classes of ``y`` give the module's constructor
    arguments (``in_channels``/``grid_size`` for grids, ``num_electrodes``/
    ``chunk_size`` for raw windows, ``num_classes``); they are stored in fitted
    attributes, never in the parameters, so :func:`sklearn.base.clone` and
    :meth:`get_params` mean the same before and after ``fit``. Parameters given as
    ``module__name=value`` override the inferred ones.

    Parameters
    ----------
    module : str or type, default="ccnn"
        A zoo name (``"ccnn"``, ``"fbccnn"``, ``"eegnet"``, ``"tsception"``), a
        ``torch.nn.Module`` subclass (a torcheeg model class works too: the shape
        arguments it names are filled in), or a module instance (used as given).
        The module must return logits.
    criterion : type, default=torch.nn.CrossEntropyLoss
        Loss on logits and encoded class indices.
    optimizer : type, default=torch.optim.Adam
        Optimizer class; its arguments are passed as ``optimizer__name=value``.
    lr : float, default=1e-3
        Learning rate.
    max_epochs : int, default=10
        Passes over the training data.
    batch_size : int, default=64
        Samples per mini-batch (``-1``: the whole data set).
    device : str or torch.device, default="cpu"
        Where the module runs, e.g. ``"cuda"``. The data are moved there once per
        ``fit`` when they take at most a quarter of the free device memory, otherwise
        they stay in pinned CPU memory and each batch is copied asynchronously. A
        net fitted on a GPU unpickles on a CPU-only machine (skorch maps it to CPU).
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the dropout masks and the shuffling of the
        mini-batches: two fits on CPU with the same integer give identical
        predictions. The whole fit runs inside :func:`torch.random.fork_rng`, so
        torch's global random state is left as it was. ``None``: draws from torch's
        global generator, as plain PyTorch does.
    precision : {None, "bf16"}, default=None
        ``"bf16"`` runs the forward passes under ``torch.autocast`` with bfloat16
        (mixed precision; worthwhile on recent GPUs, rarely on CPUs). Logits are
        returned as float32.
    channels_last : {"auto", True, False}, default="auto"
        Keep the 4-D weights (convolutions) in the channels-last memory format, which
        oneDNN (CPU) and cuDNN (GPU) run faster for some networks. ``"auto"`` uses it
        for zoo networks on the device types where it was measured faster at float32
        accuracy (``channels_last_devices`` of the module class: CCNN, on CPU and GPU)
        and leaves other modules as they are. ``True`` converts any module (its
        ``forward`` must then use ``.reshape`` or ``.flatten``, not ``.view``, on
        convolution outputs). Caveats (figures in :doc:`/user_guide/performance`):
        PyTorch's channels-last BatchNorm sums its batch statistics with float32
        errors that grow with the batch, which is why FBCCNN, EEGNet and TSCeption
        stay contiguous under ``"auto"`` although channels-last makes some of their
        steps faster; and on a GPU, cuDNN runs CCNN's
        channels-last convolutions as TF32 where PyTorch allows it (its default,
        ``torch.backends.cudnn.allow_tf32``; set it to ``False`` for full float32).
    cuda_graphs : bool, default=False
        Capture the training step (forward, loss, backward, optimizer update) in a
        CUDA graph and replay it for each batch (needs ``device="cuda"``). At EEG
        batch sizes a GPU step waits on the host issuing one kernel after another; a
        replay issues the whole step at once. The first three steps run eagerly,
        batches of another shape (the last of an epoch) too, and the step is captured
        again when optimizer settings change (a learning-rate schedule). Adam-style
        optimizers run with ``capturable=True`` (same updates; the fitted net, and what
        ``save_params`` writes during the fit, keep the setting given). Networks with
        dropout draw their masks in another order than eager steps, so a graphed fit is
        reproducible but not equal to an eager one. A step that cannot be captured
        trains eagerly, with a warning. Not compatible with ``compile=True``.
        Experimental: see :ref:`cuda-graphs`.
    train_split : callable or None, default=None
        skorch's internal validation split. ``None`` trains on all the data given to
        ``fit``, as scikit-learn estimators do; pass ``skorch.dataset.ValidSplit(5,
        stratified=True)`` to monitor ``valid_loss``/``valid_acc`` in ``history_``.
    verbose : int, default=0
        ``0`` prints nothing (the scikit-learn habit); ``1`` prints skorch's
        per-epoch table. For a tqdm progress bar pass
        ``callbacks=[skorch.callbacks.ProgressBar()]``.
    iterator_train, iterator_valid : type, default=TensorBatchIterator
        Batch iterators. The default slices whole tensors (no per-sample collation);
        training batches are shuffled unless ``iterator_train__shuffle=False``.
    use_caching : bool or "auto", default=False
        Whether skorch's scoring callbacks reuse the predictions of the training
        loop. Those cached targets are the encoded class indices while ``predict``
        returns the original labels, so scorers such as ``valid_acc`` predict again
        (one extra forward pass over the validation split per epoch, and only when
        ``train_split`` is set).
    **skorch_kwargs
        Any other :class:`skorch.NeuralNetClassifier` argument (``callbacks``,
        ``warm_start``, ``compile``, ``classes``, ``module__*``, ``optimizer__*``...).
        ``compile=True`` wraps the module in ``torch.compile``; its submodule names
        then gain an ``_orig_mod.`` prefix, so evidence layers must be looked up on
        ``module_._orig_mod``. ``classes`` lists every class label, in any order
        (``classes_`` holds them sorted), when ``y`` may lack some of them.

    Attributes
    ----------
    module_ : torch.nn.Module
        The fitted network.
    classes_ : ndarray, shape (n_classes,)
        Class labels, sorted (also when the ``classes`` parameter lists them in another
        order); ``predict`` returns these, and output ``i`` of the network stands for
        ``classes_[i]`` (:meth:`encode_labels`).
    n_classes_ : int
        Number of classes.
    input_shape_ : tuple of int
        Shape of one sample of ``X``.
    n_features_in_ : int
        ``input_shape_[0]`` (channels of raw windows, bands of grids).
    n_chans_, n_times_ : int
        Channels and samples of a raw window (raw-input modules only).
    n_bands_ : int
        Feature maps of a grid (grid-input modules only).
    grid_size_ : tuple of int
        Rows and columns of a grid (grid-input modules only).
    module_kwargs_ : dict
        Constructor arguments inferred from the data (before ``module__*`` overrides).
    history_ : skorch.History
        Per-epoch and per-batch records (``train_loss``, ``dur``...).
    cuda_graph_steps_ : dict
        Set by every fit with ``cuda_graphs=True``: how its steps ran, ``"replayed"``
        from a graph, ``"eager"`` (warm-up, other batch shapes, and every step after a
        failure), ``"captures"`` made, and ``"failure"``, why the steps stopped being
        replayed (a step that reads back to the host, an optimizer that counts steps on
        the host, ``fit_params``, batches that are not CUDA tensors; ``None`` if none).

    See Also
    --------
    skkgp.KnowledgeGuidedPruner : prunes a fitted ``EEGClassifier`` and recovers it.
    skkgp.models : the zoo.

    Notes
    -----
    ``X`` is ``(n_samples, n_chans, n_times)`` for raw-signal models (EEGNet,
    TSCeption) and ``(n_samples, n_bands, rows, cols)`` for grid models (CCNN, FBCCNN;
    see :class:`skkgp.transforms.BandDifferentialEntropy` and
    :class:`skkgp.transforms.ToGrid`). Labels may be strings or integers.

    Subclasses customise training through skorch's hooks (``get_loss``,
    ``train_step_single``, ``infer``); batches reach them as ``(Xb, yb)`` tensors on
    ``device``, ``yb`` holding encoded class indices ``0..n_classes_-1``.

    Examples
    --------
    >>> import numpy as np
    >>> from skkgp import EEGClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((40, 4, 64)).astype("float32")
    >>> y = np.array(["low", "high"] * 20)
    >>> clf = EEGClassifier("eegnet", max_epochs=2, random_state=0).fit(X, y)
    >>> clf.n_chans_, clf.n_times_, clf.classes_.tolist()
    (4, 64, ['high', 'low'])
    """

    _parameter_constraints: dict = {
        "channels_last": [Options({"auto"}), "boolean"],
        "precision": [Options(k for k in _PRECISIONS if k), None],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left"), Options({-1})],
        "device": [TorchDevice()],
        "max_epochs": [Interval(numbers.Integral, 0, None, closed="left")],
        "cuda_graphs": ["boolean"],
    }

    def __init__(
        self,
        module="ccnn",
        *,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=10,
        batch_size=64,
        device="cpu",
        random_state=None,
        precision=None,
        channels_last="auto",
        cuda_graphs=False,
        train_split=None,
        verbose=0,
        iterator_train=TensorBatchIterator,
        iterator_valid=TensorBatchIterator,
        use_caching=False,
        **skorch_kwargs,
    ):
        super().__init__(
            module,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            device=device,
            train_split=train_split,
            verbose=verbose,
            iterator_train=iterator_train,
            iterator_valid=iterator_valid,
            use_caching=use_caching,
            **skorch_kwargs,
        )
        self.random_state = random_state
        self.precision = precision
        self.channels_last = channels_last
        self.cuda_graphs = cuda_graphs

    # ------------------------------------------------------------------ validation
    def _module_class(self):
        if isinstance(self.module, nn.Module):
            return type(self.module)
        return get_model_class(self.module)

    def _check_X(self, X, *, reset: bool) -> np.ndarray:
        name = type(self).__name__
        if X is None:
            raise ValueError(f"{name} needs X, got None.")
        X = eeg_input(X).X
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        try:
            X = check_array(
                X, allow_nd=True, dtype=np.float32, ensure_all_finite=True, input_name="X",
                estimator=self,
            )
        except ValueError as error:
            if "could not convert" in str(error):
                raise ValueError(f"X must hold numbers (got non-numeric values): {error}") from None
            raise
        if 0 in X.shape:
            raise ValueError(f"X is empty: it has shape {X.shape}.")
        if not X.flags.c_contiguous or not X.flags.writeable:
            # torch.from_numpy needs writeable memory; contiguous rows make batch slices cheap.
            X = np.array(X, dtype=np.float32, order="C", copy=True)
        shape = tuple(X.shape[1:])
        if reset:
            return X
        fitted = self.input_shape_
        if len(shape) != len(fitted):
            raise ValueError(
                f"X has {X.ndim} dimensions, but {name} was fitted on {len(fitted) + 1}-D "
                f"inputs: X has samples of shape {shape}, the estimator expects {fitted}."
            )
        if shape[0] != fitted[0]:
            what = {2: "channels", 3: "bands"}.get(len(fitted), "features")
            raise ValueError(
                f"X has {X.shape[1]} features, but {name} is expecting {self.n_features_in_} "
                f"features as input: X has samples of shape {shape}, the estimator was fitted "
                f"on samples of shape {fitted} (the number of {what} differs from fit)."
            )
        if shape != fitted:
            what = ({2: "number of time samples"}.get(len(fitted))
                    or ("grid size" if hasattr(self, "grid_size_") else "sample shape"))
            raise ValueError(
                f"X has samples of shape {shape}, but {name} was fitted on samples of shape "
                f"{fitted}: the {what} differs from fit."
            )
        return X

    def _check_y(self, y) -> np.ndarray:
        name = type(self).__name__
        if y is None:
            raise ValueError(f"{name} requires y to be passed, but the target y is None.")
        if isinstance(y, torch.Tensor):
            y = y.detach().cpu().numpy()
        y = check_array(y, ensure_2d=False, dtype=None, ensure_all_finite=True, input_name="y")
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        return y

    #: The parameters prediction uses: those :meth:`predict_proba` checks.
    _PREDICTION_PARAMETERS = ("device", "precision", "batch_size", "channels_last")

    def _validate_params(self, names=None) -> None:
        """Check the parameters against ``_parameter_constraints``: all of them at fit,
        the ``names`` given at predict (a parameter set after fit is checked before it is
        used, and only where it is used)."""
        constraints = self._parameter_constraints
        if names is not None:
            constraints = {name: constraints[name] for name in names if name in constraints}
        validate_params(constraints, {name: getattr(self, name) for name in constraints})

    def _check_cuda_graphs(self) -> None:
        """Refuse ``cuda_graphs=True`` where no graph can be captured (checked at fit:
        a net trained with graphs still predicts on any device)."""
        if not self.cuda_graphs:
            return
        if getattr(self, "compile", False):
            raise ValueError(
                "cuda_graphs=True cannot be combined with compile=True: torch.compile "
                "captures its own graphs (compile__mode='reduce-overhead'); choose one."
            )
        if torch.device(self.device).type != "cuda":
            raise ValueError(
                f"cuda_graphs=True needs device='cuda' (CUDA graphs record GPU kernels), "
                f"got device={self.device!r}; pass cuda_graphs=False to train there."
            )

    def _set_input_attributes(self, X: np.ndarray, classes: np.ndarray) -> None:
        """Learn the sample shape and classes (all checks pass before anything is set)."""
        module_cls = self._module_class()
        shape = tuple(int(s) for s in X.shape[1:])
        if isinstance(self.module, nn.Module):
            inferred = {}  # an instance is used as given
        else:
            inferred = infer_module_kwargs(module_cls, shape, len(classes))
        kind = getattr(module_cls, "input_kind", None)
        for attr in ("n_chans_", "n_times_", "n_bands_", "grid_size_"):
            self.__dict__.pop(attr, None)
        if kind == "raw":
            self.n_chans_, self.n_times_ = shape
        elif kind == "grid":
            self.n_bands_, self.grid_size_ = shape[0], shape[1:]
        self.input_shape_ = shape
        self.n_features_in_ = shape[0]
        self.module_kwargs_ = inferred
        self.classes_inferred_ = classes
        self.n_classes_ = len(classes)

    def _training_data(self, X, y, *, reset: bool, classes=None
                       ) -> tuple[TensorData, np.ndarray]:
        """Validate ``X``/``y`` (learning shapes and classes when ``reset``) as tensors.

        ``classes``: those :meth:`partial_fit` was given, if any.
        """
        self._validate_params()
        self._check_cuda_graphs()
        X, y = eeg_input(X, y)[:2]
        X = self._check_X(X, reset=reset)
        y = self._check_y(y)
        if len(X) != len(y):
            raise ValueError(
                f"X and y have different numbers of samples: {len(X)} and {len(y)}."
            )
        if reset:
            self._set_input_attributes(X, self._first_classes(y, classes))
        elif classes is not None:
            given = self._given_classes(classes, "classes")
            # Sets compared: a model saved before classes_ were sorted keeps its order.
            if not np.array_equal(given, np.unique(self.classes_)):
                raise ValueError(
                    f"partial_fit got classes={np.asarray(classes).tolist()}, but the classes "
                    f"were fixed by the first call as {self.classes_.tolist()}: pass the same "
                    "classes (or none), or call fit to start again with other classes."
                )
        return to_tensor_data(X, self.encode_labels(y), y, self.device), y

    def _first_classes(self, y: np.ndarray, classes) -> np.ndarray:
        """The classes of a fresh network: ``classes`` of partial_fit, the ``classes``
        parameter, or those of ``y``; sorted."""
        if classes is not None:
            given = self._given_classes(classes, "classes")
            if self.classes is not None and not np.array_equal(
                given, self._given_classes(self.classes, "classes")
            ):
                raise ValueError(
                    f"partial_fit got classes={given.tolist()}, but the classes parameter "
                    f"is {np.asarray(self.classes).tolist()}: pass the same classes to both, "
                    "or only one of them."
                )
            return given
        if self.classes is not None:
            return self._given_classes(self.classes, "classes")
        found = np.unique(y)
        if len(found) < 2:
            raise ValueError(
                f"y has only one class ({found[0].item()!r}); a classifier needs at least 2 "
                "classes (for batches that lack some of them, pass them all as classes=)."
            )
        return found

    @staticmethod
    def _given_classes(classes, name: str) -> np.ndarray:
        """``classes`` given by the user, sorted as ``classes_`` always is."""
        given = np.unique(np.asarray(classes))
        if len(given) < 2:
            raise ValueError(
                f"{name} must list at least 2 classes, got {np.asarray(classes).tolist()!r}."
            )
        return given

    @property
    def classes_(self) -> np.ndarray:
        # skorch returns the ``classes`` parameter as given; here classes_ is sorted
        # whatever order ``classes`` lists, and after fit it is what the network's
        # outputs were trained on (even if ``classes`` is set again later).
        try:
            return self.classes_inferred_
        except AttributeError:
            pass
        if self.classes is not None and len(self.classes):
            return np.unique(np.asarray(self.classes))
        raise AttributeError(
            f"This {type(self).__name__} has no classes_ yet: call fit, or pass classes."
        )

    def encode_labels(self, y) -> np.ndarray:
        """The class indices the network is trained on for the labels ``y``.

        The index of a label is its position in ``classes_``: the output of the network
        (the column of :meth:`predict_proba`) that stands for it. Training targets,
        and any data-driven ranking of the fitted network's filters, use these indices.

        Parameters
        ----------
        y : array-like, shape (n_samples,)
            Labels from ``classes_``.

        Returns
        -------
        codes : ndarray of int64, shape (n_samples,)
            Indices into ``classes_``.

        Raises
        ------
        ValueError
            If ``y`` holds a label that is not in ``classes_``.
        """
        classes = self.classes_
        y = np.asarray(y)
        # The sorter serves a classes_ in another order, as a model file may hold.
        order = np.argsort(classes, kind="stable")
        positions = np.searchsorted(classes, y, sorter=order)
        positions = np.clip(positions, 0, len(classes) - 1)
        codes = order[positions]
        unknown = classes[codes] != y
        if np.any(unknown):
            raise ValueError(
                f"y contains labels not seen at fit: {sorted(set(y[unknown].tolist()))}; "
                f"known classes: {classes.tolist()}."
            )
        return codes.astype(np.int64)

    # ------------------------------------------------------------------ randomness
    @contextlib.contextmanager
    def _seeded(self) -> Iterator[None]:
        """Run the block with torch's RNG seeded from ``random_state``, restored afterwards."""
        if self.random_state is None:
            yield
            return
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        device = torch.device(self.device)
        cuda = device.type == "cuda" and torch.cuda.is_available()
        index = device.index if device.index is not None else (
            torch.cuda.current_device() if cuda else None)
        with torch.random.fork_rng(devices=[index] if cuda else [], device_type="cuda"):
            torch.default_generator.manual_seed(int(seed))
            if cuda:
                with torch.cuda.device(index):
                    torch.cuda.manual_seed(int(seed))
            yield

    # ------------------------------------------------------------------ skorch hooks
    def initialize_module(self):
        """Instantiate the module from the zoo name or class, with the inferred shapes."""
        # A new module's output width is checked once, on the first batch it trains on
        # (fit_loop); a partial_fit stream keeps the checked module.
        self._width_unchecked = True
        if isinstance(self.module, nn.Module):
            # fit must not change the estimator's parameters: train a copy of the instance,
            # so that clone() never carries trained weights into a new fit.
            if self.get_params_for("module"):
                raise ValueError(
                    "module__* arguments cannot be applied to a module instance; pass the "
                    "module class instead."
                )
            self.module_ = lay_out(copy_module(self.module), self.channels_last, self.device)
            return self
        kwargs = dict(getattr(self, "module_kwargs_", {}))
        kwargs.update(self.get_params_for("module"))
        self.module_ = lay_out(self._module_class()(**kwargs), self.channels_last, self.device)
        return self

    def check_data(self, X, y=None):
        # classes_inferred_ is set when fit validates y; skorch's version would recompute it
        # from every partial_fit batch.
        if y is None and not is_dataset(X):
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target "
                             "y is None.")

    def get_dataset(self, X, y=None):
        """Wrap validated arrays as a :class:`~skkgp._training.TensorData` (once per call)."""
        if is_dataset(X):
            return X
        if self.dataset is not SkorchDataset:  # the user chose a dataset class
            return super().get_dataset(X, None if y is None else self.encode_labels(y))
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        # fit and predict pass validated arrays; this serves skorch's public forward().
        X = np.require(X, dtype=np.float32, requirements=["C_CONTIGUOUS", "WRITEABLE"])
        targets = None if y is None else self.encode_labels(y)
        return to_tensor_data(X, targets, y, self.device)

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        """skorch's loop, after checking that the module returns one output per class."""
        if isinstance(X, TensorData) and len(X) and getattr(self, "_width_unchecked", False):
            forward_params = {k: v for k, v in fit_params.items() if k != "_routing_method"}
            # Two samples, not one: a forward that squeezes its output would drop the
            # batch axis of a single sample.
            self._check_output_width(X.X[:2], forward_params)
            self._width_unchecked = False
        return super().fit_loop(X, y, epochs, **fit_params)

    def _check_output_width(self, sample: torch.Tensor, fit_params: dict) -> None:
        """Refuse a module whose outputs are not one logit per class of ``classes_``.

        A wider module trains (cross-entropy takes any targets below its width) and then
        predicts classes that do not exist; two samples through the network, in eval
        mode and without gradients, find it before any training (each module's mode is
        restored).
        """
        module = uncompiled(self.module_)
        with eval_mode(module), torch.no_grad():
            output = self._infer_on(module, sample, **fit_params)
        if isinstance(output, (tuple, list)):
            output = output[0]  # skorch's convention: the first output holds the logits
        if isinstance(output, torch.Tensor):
            self._check_outputs(tuple(output.shape[1:]))

    def _check_outputs(self, shape: tuple) -> None:
        """Refuse per-sample outputs of ``shape`` unless they are one per class."""
        n_classes = len(self.classes_)
        if shape == (n_classes,):
            return
        if isinstance(self.module, nn.Module):
            fix = (f"build the module instance with {n_classes} outputs (num_classes="
                   f"{n_classes} for the zoo), or pass its class, whose num_classes is "
                   "inferred from y")
        elif "num_classes" in self.get_params_for("module"):
            fix = (f"pass module__num_classes={n_classes}, or leave it out: it is inferred "
                   "from y")
        else:
            fix = (f"give the module's last layer {n_classes} outputs (module__num_classes="
                   f"{n_classes} if its class takes num_classes)")
        raise ValueError(
            f"The module returns outputs of shape {shape} per sample, but there are "
            f"{n_classes} classes ({self.classes_.tolist()}): a classifier's module must "
            f"return one logit per class, shape ({n_classes},). To fix it, {fix}."
        )

    def _graph_settings(self) -> tuple:
        return (self.precision,)

    def infer(self, x, **fit_params):
        """Forward one batch, under bfloat16 autocast when ``precision="bf16"``."""
        return self._infer_on(self.module_, x, **fit_params)

    def _infer_on(self, module: nn.Module, x, **fit_params):
        # skorch's infer, for a given module: the knowledge-guided step runs the
        # uncompiled network (torch.compile has no double backward).
        x = to_tensor(x, device=self.device)
        dtype = _PRECISIONS.get(self.precision)
        # Autocast's cache of cast weights would be freed inside a CUDA graph's memory
        # while the graph still reads it; PyTorch asks for it off under graphs.
        autocast = (contextlib.nullcontext() if dtype is None else
                    torch.autocast(device_type=torch.device(self.device).type, dtype=dtype,
                                   cache_enabled=not getattr(self, "cuda_graphs", False)))
        with autocast:
            if isinstance(x, Mapping):
                y_pred = module(**self._merge_x_and_fit_params(x, fit_params))
            else:
                y_pred = module(x, **fit_params)
        if dtype is not None and isinstance(y_pred, torch.Tensor):
            return y_pred.float()
        return y_pred

    # ------------------------------------------------------------------ public API
    def fit(self, X, y=None, **fit_params):
        """Infer the input shapes and classes, build the module and train it.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_chans, n_times) or (n_samples, n_bands, rows, cols)
            Raw EEG windows or band-feature grids (any numeric dtype; used as float32),
            or an :class:`mne.Epochs` (its EEG channels not marked bad, in microvolts).
        y : array-like, shape (n_samples,), default=None
            Class labels (strings or integers), at least two classes; ``None`` only
            with Epochs, whose event codes are then the labels.
        **fit_params : dict
            Passed to the module's ``forward`` (skorch convention).

        Returns
        -------
        self : EEGClassifier
        """
        reset = not (self.warm_start and self.initialized_)
        data, y = self._training_data(X, y, reset=reset)
        with self._seeded():
            return super().fit(data, y, **fit_params)

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Train for ``max_epochs`` more epochs without re-initialising the module.

        Parameters
        ----------
        X, y : array-like
            As in :meth:`fit`.
        classes : array-like, shape (n_classes,), default=None
            Every class label, in any order, as scikit-learn's ``partial_fit`` takes
            them: the first call on an unfitted classifier fixes ``classes_`` (and the
            network's outputs) to ``np.unique(classes)``, so that ``y`` of each call
            may hold only some of them. ``None``: the ``classes`` parameter, or the
            labels of this ``y``. Later calls may pass the same classes again; other
            classes are an error (call :meth:`fit` to start again).
        **fit_params : dict
            Passed to the module's ``forward``.

        Returns
        -------
        self : EEGClassifier
        """
        if isinstance(X, TensorData):  # already validated by fit
            return super().partial_fit(X, y, classes=classes, **fit_params)
        data, y = self._training_data(X, y, reset=not self.initialized_, classes=classes)
        with self._seeded():
            return super().partial_fit(data, y, classes=classes, **fit_params)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (softmax of the logits).

        Parameters
        ----------
        X : array-like, shape (n_samples, ...)
            Same sample shape as at fit.

        Returns
        -------
        proba : ndarray of float64, shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        check_is_fitted(self, "input_shape_")
        # Parameters set after fit (set_params(device="cuda") on a CPU-only machine)
        # are checked here as fit checks them, not deep inside torch; training-only ones
        # (max_epochs, the knowledge-guided weights) do not concern prediction.
        self._validate_params(self._PREDICTION_PARAMETERS)
        if not is_dataset(X):
            X = self._check_X(X, reset=False)
        proba = np.asarray(super().predict_proba(X), dtype=np.float64)
        self._check_outputs(proba.shape[1:])
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        """Predicted class labels: the most probable class of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like
            As in :meth:`predict_proba`.

        Returns
        -------
        y_pred : ndarray, shape (n_samples,)
            Labels from ``classes_``.
        """
        check_is_fitted(self, "input_shape_")
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def _get_param_names(self):
        # skorch lists every attribute not ending in "_", its private bookkeeping
        # (_params_to_validate) included; that is state, not a parameter.
        return [name for name in super()._get_param_names() if not name.startswith("_")]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags
