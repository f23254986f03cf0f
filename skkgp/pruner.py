"""KnowledgeGuidedPruner: fit an EEG network, prune it, and recover it with knowledge.

The meta-estimator of Rao & Zhong (2023): it clones and fits an
:class:`skkgp.EEGClassifier` (the origin model; or, with ``prefit=True``, takes an
already fitted one as it is), prunes a copy of the fitted network
with one of :data:`skkgp.pruning.METHODS`, and trains the pruned network again with
the knowledge-guided losses of :class:`skkgp.knowledge.recovery.KnowledgeGuidedClassifier`,
which pull the guided Grad-CAM evidence towards a brain region.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score
from sklearn.utils.validation import check_is_fitted

from skkgp import pruning
from skkgp._input import eeg_input
from skkgp._validation import HasMethods, Interval, Options, validate_params
from skkgp._training import uncompiled
from skkgp.classifier import EEGClassifier
from skkgp.layout import DEFAULT_REGION, get_channels, get_layout, grid_cells, region_mask
from skkgp.pruning.masks import store_derived_tensors
from skkgp.knowledge.evidence import EVIDENCE_KINDS, mean_region_share
from skkgp.knowledge.losses import ESTIMATOR_REGION_LOSS, REGION_WEIGHT, SAMPLE_WEIGHTING
from skkgp.knowledge.recovery import KnowledgeGuidedClassifier

__all__ = ["KnowledgeGuidedPruner", "ConstantPredictorWarning"]


class ConstantPredictorWarning(UserWarning):
    """A fitted network predicts one class for every training sample.

    A collapsed origin model (it happens: CCNN with Adam at ``lr=1e-3`` on real DEAP)
    makes any comparison of pruned networks against it meaningless, so
    :class:`KnowledgeGuidedPruner` reports it instead of pruning it silently; a
    recovery that collapses while its origin did not is reported the same way.
    """


class KnowledgeGuidedPruner(ClassifierMixin, BaseEstimator):
    """Prune a fitted EEG network and recover it with knowledge-guided losses.

    ``fit`` runs three steps:

    1. **Origin.** ``estimator`` is cloned (never modified) and fitted on ``(X, y)``
       with the method's origin callbacks (network slimming's sparsity term
       :class:`skkgp.pruning.NetworkSlimming` for NSFP). With ``prefit=True``,
       ``estimator`` is already the fitted origin: it is deep-copied (never modified)
       and not trained again. An origin that predicts one class for every training
       sample raises a :class:`ConstantPredictorWarning`.
    2. **Pruning.** A copy of the fitted network is pruned with
       :func:`skkgp.pruning.prune` (LFP, NSFP: structurally smaller; UMWP: masks that
       stay applied during recovery).
    3. **Recovery.** The pruned network is trained again, starting from its pruned
       weights (``recovery="finetune"``) or from a fresh initialisation of the pruned
       structure (``recovery="scratch"``; UMWP's masks are kept), by a
       :class:`skkgp.knowledge.recovery.KnowledgeGuidedClassifier` that has the estimator's
       optimizer, learning rate, batch size, device and callbacks, and the method's
       recovery callbacks.

    A method whose structural step is a final hard one (soft filter pruning, SFP)
    prunes *during* recovery instead: the network keeps its full structure while
    :class:`skkgp.pruning.SoftFilterPruning` zeroes its lowest-L2 filters after every
    epoch (they may regrow in the next one), and the zeroed filters are removed
    physically at the end of recovery by :func:`skkgp.pruning.prune`. Each method
    carries these parts itself (:class:`skkgp.pruning.base.PruningMethod`).

    With ``region_weight=0`` and ``sample_weighting=0`` the recovery is exactly the plain
    cross-entropy fine-tuning of the pruned network (same seed, same weights).

    Parameters
    ----------
    estimator : EEGClassifier
        The origin network: unfitted (cloned and fitted by ``fit``), or already fitted
        when ``prefit=True``. It is never modified.
    method : str, default="lfp"
        Pruning method, one of :data:`skkgp.pruning.METHODS`; it must apply to the
        network (NSFP needs BatchNorm layers, e.g. FBCCNN's).
    prune_ratio : float in (0, 1), default=0.5
        Fraction of filters (structural methods: LFP, NSFP, SFP) or weights (UMWP)
        removed; how each method counts it: :func:`skkgp.pruning.prune`.
    method_options : dict or None, default=None
        Options of the pruning method, passed to :func:`skkgp.pruning.prune`: for
        ``"umwp"``, ``{"scope": "conv"}`` masks conv weights only, as the paper, and
        ``{"scope": "all"}`` (the default) conv and linear weights. The other methods
        take none. Searchable like any parameter:
        ``GridSearchCV(pruner, {"method_options": [{"scope": "conv"}, {"scope": "all"}]})``.
    recovery : {"finetune", "scratch"}, default="finetune"
        Recover from the pruned weights or from a re-initialised pruned structure.
    region : str or list of str, default="frontal_left"
        The knowledge region: a name of :data:`skkgp.layout.REGIONS` or a list of
        electrode names (case-insensitive). At least one of its electrodes must be
        among the network's electrodes. The default, :data:`skkgp.layout.DEFAULT_REGION`,
        is the front-left region of Rao & Zhong's code (FP1, AF3, F7, F3; see
        :ref:`regions` for why).
    region_weight : float >= 0, default=1.0
        Weight ``alpha`` of the region-wise loss. Evidence that vanishes on every
        electrode counts as the worst case in that loss (see
        :func:`skkgp.knowledge.losses.region_loss`), so the network cannot escape it by silencing
        its Grad-CAM map; ``benchmarks/knowledge_effect.py`` reports the share of such
        windows. Tune it, e.g. with :class:`~sklearn.model_selection.GridSearchCV`.
    sample_weighting : float in [0, 1], default=1.0
        Weight ``beta`` of the evidence-based sample weights in the cross-entropy. On
        small simulated data, ``beta = 1`` cost more accuracy than the region loss did
        (``benchmarks/knowledge_effect.py``); consider searching smaller values.
    region_loss : {"auto", "literal", "dead_aware", "straight_through"}, default="auto"
        Variant of the region-wise loss (:func:`skkgp.knowledge.losses.region_loss`):
        the formulas as written; all-zero evidence counted as the worst share and
        revived; or that and a gradient through the evidence's ReLU on the region's
        electrodes. ``"auto"`` takes, per evidence kind, the variant measured to move the
        held-out evidence (:func:`skkgp.knowledge.losses.resolve_region_loss`:
        straight-through for Grad-CAM and HiResCAM, dead-aware for input x gradient). See
        :ref:`method` for what each was measured to do.
    evidence : {"auto", "gradcam", "hirescam", "input_x_gradient"}, default="auto"
        The evidence the knowledge-guided losses see (see
        :mod:`skkgp.knowledge.evidence`): the paper's Grad-CAM, HiResCAM, or input x
        gradient per electrode. ``"auto"`` takes the kind the zoo model declares
        (Grad-CAM for CCNN and FBCCNN, as in the paper; a kind the loss can move for
        EEGNet and TSCeption, whose evidence layer is temporal only), Grad-CAM for other
        modules.
    recovery_epochs : int or None, default=None
        Epochs of recovery; ``None`` uses the estimator's ``max_epochs``.
    ch_names : list of str or None, default=None
        Electrode names. Raw inputs ``(n, n_chans, n_times)``: the name of each
        channel, by default the layout's channel list when its length is
        ``n_chans``. Grid inputs ``(n, n_bands, rows, cols)``: the electrodes placed
        on the grid, by default all channels of the layout.
    layout : {"deap", "seed", "dreamer"} or dict, default="deap"
        Channel list and grid layout (electrode -> (row, col)) the electrodes come from.
    random_state : int or None, default=None
        Seed of the origin fit, of the re-initialisation for ``recovery="scratch"`` and
        of the recovery; ``None`` keeps the estimator's own ``random_state``. With
        ``prefit=True`` the origin is not fitted here, so it seeds the re-initialisation
        and the recovery only.
    prefit : bool, default=False
        Whether ``estimator`` is an already fitted :class:`~skkgp.EEGClassifier` to use
        as the origin, as in :class:`sklearn.feature_selection.SelectFromModel`. It
        must have been fitted on inputs of the shape of ``X`` and on the classes of
        ``y``; ``fit`` deep-copies it and prunes and recovers the copy without
        refitting it. One origin can then serve several pruners (methods, recoveries,
        baseline and proposed losses). See Notes.
    verbose : int, default=0
        Print one line at each step when positive.

    Attributes
    ----------
    estimator_ : KnowledgeGuidedClassifier
        The pruned and recovered network, fitted. Its ``module`` parameter is its
        fitted network ``module_`` itself (not the pruned network as it was before
        recovery), so that memory and model files hold one copy; a clone of it trains
        on from the recovered weights.
    origin_estimator_ : EEGClassifier
        The fitted origin network (unpruned); with ``prefit=True``, a deep copy of
        ``estimator``.
    origin_module_ : torch.nn.Module
        The origin network's module (``origin_estimator_.module_``), e.g. for
        evidence plots of the unpruned model.
    origin_score_ : float
        Accuracy of the origin network on the training data ``(X, y)`` it was fitted
        on: a training score, optimistic by construction. Score held-out data with
        ``origin_estimator_.score(X_test, y_test)``.
    origin_is_constant_ : bool
        Whether the origin predicts a single class for every training sample.
    recovered_is_constant_ : bool
        Whether the pruned, recovered network predicts a single class for every
        training sample (a collapsed recovery; a :class:`ConstantPredictorWarning` says
        so).
    pruning_report_ : skkgp.pruning.PruningReport
        Parameters and MACs before and after pruning, kept channels per layer; in
        skkgp's realized counts and as the paper counts them (for SFP, the soft-pruned
        network before its final step).
    classes_ : ndarray, shape (n_classes,)
        Class labels.
    electrodes_ : tuple of str
        Names of the electrodes the evidence is computed on.
    region_mask_ : ndarray of bool, shape (n_electrodes,)
        Which of ``electrodes_`` belong to the knowledge region.

    See Also
    --------
    skkgp.EEGClassifier : The networks pruned here.
    sklearn.feature_selection.SelectFromModel : The ``prefit`` convention followed here.
    skkgp.pruning.prune : The pruning step alone.
    skkgp.knowledge.recovery.KnowledgeGuidedClassifier : The knowledge-guided recovery alone.

    Notes
    -----
    With ``prefit=True``:

    - ``origin_score_`` and ``origin_is_constant_`` are measured on the ``(X, y)``
      given to ``fit``, as without ``prefit``: pass the data the origin was fitted on
      for ``origin_score_`` to keep its meaning of a training score.
    - A pruner with ``prefit=False`` and ``random_state=r`` fits a clone of its
      estimator with ``random_state=r``; fitting that estimator yourself with
      ``random_state=r`` (and the method's origin callbacks appended to its callbacks,
      ``skkgp.pruning.get_method(method).origin_callbacks()``: NSFP's
      ``("network_slimming", NetworkSlimming())``) and
      passing it with ``prefit=True`` gives exactly the same pruned and recovered
      network (on CPU).
    - NSFP prunes by BatchNorm gammas made sparse while training: the
      origin should have been trained with :class:`skkgp.pruning.NetworkSlimming`.
      This is not enforced (any network with BatchNorm can be pruned by its gammas),
      but ``fit`` warns when the origin's callbacks hold no ``NetworkSlimming``. The
      ``NetworkSlimming`` callbacks of a prefit origin are left out of its recovery,
      as they are without ``prefit``.
    - :func:`sklearn.base.clone` of the pruner clones ``estimator`` *unfitted*, as for
      ``SelectFromModel(prefit=True)``: ``fit`` of such a clone (e.g. inside
      :class:`~sklearn.model_selection.GridSearchCV` or
      :func:`~sklearn.model_selection.cross_val_score`) raises
      :class:`~sklearn.exceptions.NotFittedError`. Use ``prefit=False`` there.
      Pickling keeps the fitted estimator.

    References
    ----------
    .. [1] Rao, Y., & Zhong, X. (2023). Knowledge-guided network pruning for EEG-based
       emotion recognition. IEEE International Conference on Bioinformatics and
       Biomedicine (BIBM).

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from skkgp import EEGClassifier, KnowledgeGuidedPruner
    >>> from skkgp.transforms import BandDifferentialEntropy, ToGrid
    >>> pipe = make_pipeline(
    ...     BandDifferentialEntropy(), ToGrid(),
    ...     KnowledgeGuidedPruner(EEGClassifier("ccnn", max_epochs=2), prune_ratio=0.5),
    ... )  # doctest: +SKIP
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "predict", "get_params"])],
        "method": [Options(pruning.METHODS)],
        "prune_ratio": [Interval(Real, 0, 1, closed="neither")],
        "method_options": [dict, None],
        "recovery": [Options({"finetune", "scratch"})],
        "region": [str, list, tuple],
        "region_weight": [REGION_WEIGHT],
        "sample_weighting": [SAMPLE_WEIGHTING],
        "region_loss": [ESTIMATOR_REGION_LOSS],
        "evidence": [Options({"auto", *EVIDENCE_KINDS})],
        "recovery_epochs": [Interval(Integral, 1, None, closed="left"), None],
        "ch_names": [list, tuple, np.ndarray, None],
        "layout": [Options({"deap", "seed", "dreamer"}), Mapping],
        "random_state": [Interval(Integral, 0, None, closed="left"), None],
        "prefit": ["boolean"],
        "verbose": [Interval(Integral, 0, None, closed="left"), "boolean"],
    }

    def __init__(
        self,
        estimator,
        *,
        method: str = "lfp",
        prune_ratio: float = 0.5,
        method_options: dict | None = None,
        recovery: str = "finetune",
        region: str | Sequence[str] = DEFAULT_REGION,
        region_weight: float = 1.0,
        sample_weighting: float = 1.0,
        region_loss: str = "auto",
        evidence: str = "auto",
        recovery_epochs: int | None = None,
        ch_names: Sequence[str] | None = None,
        layout: str | Mapping = "deap",
        random_state: int | None = None,
        prefit: bool = False,
        verbose: int = 0,
    ):
        self.estimator = estimator
        self.method = method
        self.prune_ratio = prune_ratio
        self.method_options = method_options
        self.recovery = recovery
        self.region = region
        self.region_weight = region_weight
        self.sample_weighting = sample_weighting
        self.region_loss = region_loss
        self.evidence = evidence
        self.recovery_epochs = recovery_epochs
        self.ch_names = ch_names
        self.layout = layout
        self.random_state = random_state
        self.prefit = prefit
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None) -> KnowledgeGuidedPruner:
        """Fit the origin network (unless ``prefit``), prune it and recover it.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_chans, n_times) or (n_samples, n_bands, rows, cols)
            Raw windows (EEGNet, TSCeption) or electrode grids (CCNN, FBCCNN), or an
            :class:`mne.Epochs`, whose EEG channel names stand for ``ch_names`` when
            that is ``None``.
        y : array-like, shape (n_samples,), default=None
            Class labels; ``None`` only with Epochs, whose event codes are then the labels.

        Returns
        -------
        self : KnowledgeGuidedPruner
        """
        validate_params(self._parameter_constraints, self.get_params(deep=False))
        if not isinstance(self.estimator, EEGClassifier):
            raise TypeError(
                "estimator must be an skkgp.EEGClassifier, got "
                f"{type(self.estimator).__name__}: {self.estimator!r}."
            )
        X, y, epochs_names, _ = eeg_input(X, y)
        if y is None:
            raise ValueError("KnowledgeGuidedPruner.fit needs y (labels) unless X is Epochs.")
        X = _check_X(X)
        y = np.asarray(y)
        self.electrodes_, cells = self._resolve_electrodes(X, epochs_names)
        self.region_mask_ = self._resolve_region(self.electrodes_)

        # A bad option fails here, before the origin is trained.
        method = pruning.get_method(self.method, self.method_options)

        # 1. Origin.
        if self.prefit:
            origin = self._prefit_origin(X, y, method)
        else:
            self._check_method_before_fit(X, y)
            origin = self._fit_origin(X, y, method)
        pruning.check_method(self.method, origin.module_)
        origin_pred = origin.predict(X)
        self.origin_score_ = float(accuracy_score(y, origin_pred))
        self.origin_is_constant_ = bool(np.unique(origin_pred).size == 1)
        if self.origin_is_constant_:
            warnings.warn(
                f"The origin {_model_name(origin)} predicts the single class "
                f"{_plain(origin_pred[0])!r} for all {len(y)} training samples (training accuracy "
                f"{self.origin_score_:.3f}): it has collapsed, so pruning and recovering it "
                "say nothing about the method. Refit with another random_state or a smaller lr.",
                ConstantPredictorWarning,
                stacklevel=2,
            )
        self.origin_estimator_ = origin
        self.origin_module_ = origin.module_

        # 2. Pruning, unless the method's structural step is a final hard one.
        module = copy.deepcopy(origin.module_)
        example_inputs = _example_inputs(X, module)
        if not method.prunes_after_recovery:
            self._say(f"pruning with {self.method} at ratio {self.prune_ratio}")
            self.pruning_report_ = pruning.prune(
                module, self.method, self.prune_ratio, example_inputs,
                method_options=self.method_options,
            )
        if self.recovery == "scratch":
            _reinitialize(module, self._seed())

        # 3. Recovery, with the method's own training-time parts.
        recovered = self._recovery_net(module, cells, method)
        self._say(f"recovering ({self.recovery})")
        recovered.fit(X, y)
        if method.prunes_after_recovery:
            self._say(f"pruning with {self.method} at ratio {self.prune_ratio} (final step)")
            report = pruning.prune(
                recovered.module_, self.method, self.prune_ratio, example_inputs,
                method_options=self.method_options,
            )
            # The paper's "before" is the origin's: the soft-pruned network it was
            # given counts its zeroed filters out already.
            self.pruning_report_ = dataclasses.replace(
                report,
                paper_params_before=pruning.count_paper_params(origin.module_),
                paper_flops_before=pruning.count_paper_flops(origin.module_, example_inputs),
            )
            # The optimizer still points at the unpruned tensors.
            recovered.initialize_optimizer()
        # The recovery trained a copy of the pruned network it was given; keeping that
        # pre-recovery copy as its parameter would double the memory and the model file.
        # (A plain assignment: set_params would re-initialise the network.)
        recovered.module = uncompiled(recovered.module_)
        self.estimator_ = recovered
        self.classes_ = recovered.classes_
        recovered_pred = recovered.predict(X)
        self.recovered_is_constant_ = bool(np.unique(recovered_pred).size == 1)
        if self.recovered_is_constant_ and not self.origin_is_constant_:
            warnings.warn(
                f"The recovered {_model_name(recovered)} predicts the single class "
                f"{_plain(recovered_pred[0])!r} for all {len(y)} training samples: the "
                "recovery collapsed (the origin did not). Compare it with care; a smaller "
                "region_weight, another region_loss or another random_state may avoid it.",
                ConstantPredictorWarning,
                stacklevel=2,
            )
        return self

    def _fit_origin(self, X: np.ndarray, y: np.ndarray, method) -> EEGClassifier:
        origin = clone(self.estimator)
        if self.random_state is not None:
            origin.set_params(random_state=self.random_state)
        origin_callbacks = method.origin_callbacks()
        if origin_callbacks:
            origin.set_params(callbacks=[*_user_callbacks(origin), *origin_callbacks])
        self._say("fitting the origin network")
        return origin.fit(X, y)

    def _prefit_origin(self, X: np.ndarray, y: np.ndarray, method) -> EEGClassifier:
        """A copy of the fitted ``estimator``, checked against ``(X, y)``."""
        estimator = self.estimator
        try:
            check_is_fitted(estimator, "input_shape_")
        except NotFittedError:
            raise NotFittedError(
                f"prefit=True needs an estimator that is already fitted, but this "
                f"{type(estimator).__name__} is not: fit it first, or pass prefit=False to "
                "let KnowledgeGuidedPruner fit it. (sklearn.base.clone of a "
                "KnowledgeGuidedPruner with prefit=True, as GridSearchCV and "
                "cross_val_score make, clones the estimator unfitted, as for "
                "SelectFromModel(prefit=True): use prefit=False there.)"
            ) from None
        fitted_shape = tuple(estimator.input_shape_)
        if tuple(X.shape[1:]) != fitted_shape:
            raise ValueError(
                f"prefit=True: the estimator was fitted on samples of shape {fitted_shape}, "
                f"but X has samples of shape {tuple(X.shape[1:])} (X.shape={X.shape}). Pass "
                "the inputs of the kind the origin was fitted on."
            )
        classes = np.unique(y)
        if not np.array_equal(classes, np.asarray(estimator.classes_)):
            raise ValueError(
                f"prefit=True: the estimator was fitted on the classes "
                f"{np.asarray(estimator.classes_).tolist()}, but y holds the classes "
                f"{classes.tolist()}: the recovered network keeps the origin's outputs, so "
                "both must be the same."
            )
        warning = method.origin_warning(estimator)
        if warning is not None:
            warnings.warn(warning, UserWarning, stacklevel=3)
        self._say("using the prefit origin network")
        return copy.deepcopy(estimator)

    # -------------------------------------------------------------- predict
    def predict(self, X) -> np.ndarray:
        """Predict class labels with the pruned, recovered network.

        Parameters
        ----------
        X : array-like, shape (n_samples, ...)
            Same kind of input as at ``fit``.

        Returns
        -------
        y_pred : ndarray, shape (n_samples,)
        """
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict(X)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities of the pruned, recovered network.

        Parameters
        ----------
        X : array-like, shape (n_samples, ...)
            Same kind of input as at ``fit``.

        Returns
        -------
        proba : ndarray, shape (n_samples, n_classes)
        """
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict_proba(X)

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy of the pruned, recovered network.

        Parameters
        ----------
        X : array-like, shape (n_samples, ...)
        y : array-like, shape (n_samples,)
        sample_weight : array-like, shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        check_is_fitted(self, "estimator_")
        return self.estimator_.score(X, y, sample_weight=sample_weight)

    def region_share(self, X, y=None, *, which: str = "pruned") -> float:
        """Mean share of the evidence on the knowledge region, e.g. on held-out data.

        Parameters
        ----------
        X : array-like, shape (n_samples, ...)
            Same kind of input as at ``fit``.
        y : array-like of shape (n_samples,) or None, default=None
            Classes explained; ``None`` explains the predicted ones.
        which : {"pruned", "origin"}, default="pruned"
            The pruned, recovered network (``estimator_``) or the unpruned origin
            (``origin_estimator_``), both with the evidence kind of the recovery.

        Returns
        -------
        share : float
            Mean over samples of the share of the normalised evidence on the
            electrodes of ``region_mask_``; ``region_mask_.mean()`` is the uniform share.

        See Also
        --------
        skkgp.knowledge.evidence.mean_region_share : The function form.
        """
        check_is_fitted(self, "estimator_")
        return mean_region_share(self, X, y, which=which)

    # -------------------------------------------------------------- helpers
    def _say(self, message: str) -> None:
        if self.verbose:
            print(f"[KnowledgeGuidedPruner] {message}")

    def _seed(self) -> int | None:
        if self.random_state is not None:
            return int(self.random_state)
        seed = getattr(self.estimator, "random_state", None)
        return int(seed) if isinstance(seed, Integral) else None

    def _layout(self) -> tuple[tuple[str, ...], dict]:
        if isinstance(self.layout, Mapping):
            return tuple(self.layout), get_layout(self.layout)
        return get_channels(self.layout), get_layout(self.layout)

    def _resolve_electrodes(self, X: np.ndarray, input_names=None
                            ) -> tuple[tuple[str, ...], np.ndarray | None]:
        """Electrode names of the evidence and, for grid inputs, their grid cells."""
        channels, layout = self._layout()
        names = None if self.ch_names is None else tuple(str(c) for c in self.ch_names)
        if names is None and input_names is not None:
            names = tuple(input_names)
        if X.ndim == 3:
            n_chans = X.shape[1]
            if names is None:
                if len(channels) != n_chans:
                    raise ValueError(
                        f"X has {n_chans} channels but layout={_describe(self.layout)} has "
                        f"{len(channels)}: pass ch_names, the name of each of the {n_chans} "
                        "channels."
                    )
                names = channels
            elif len(names) != n_chans:
                raise ValueError(f"ch_names has {len(names)} names but X has {n_chans} channels.")
            return names, None
        names = channels if names is None else names
        cells = np.asarray(grid_cells(list(names), layout=layout))
        rows, cols = X.shape[2:]
        if cells.size and (cells[:, 0].max() >= rows or cells[:, 1].max() >= cols):
            raise ValueError(
                f"X holds {rows}x{cols} grids but layout={_describe(self.layout)} places "
                f"electrodes up to cell {tuple(cells.max(axis=0))}; pass the layout the grids "
                "were made with."
            )
        return names, cells

    def _resolve_region(self, electrodes: Sequence[str]) -> np.ndarray:
        region = self.region if isinstance(self.region, str) else list(self.region)
        try:
            mask = np.asarray(region_mask(region, list(electrodes)), dtype=bool)
        except ValueError as error:
            raise ValueError(f"region={self.region!r}: {error}") from error
        if not mask.any():
            raise ValueError(
                f"region={self.region!r} has no electrode among the network's electrodes "
                f"{list(electrodes)}."
            )
        return mask

    def _check_method_before_fit(self, X: np.ndarray, y: np.ndarray) -> None:
        """Refuse a method that does not apply before spending time on the origin fit."""
        probe = _probe_module(self.estimator, X, y)
        if probe is not None:
            pruning.check_method(self.method, probe)

    def _recovery_net(self, module: torch.nn.Module, cells: np.ndarray | None, method):
        params = clone(self.estimator).get_params(deep=False)
        # module__* arguments shaped the origin; with a module instance they are refused.
        params = {k: v for k, v in params.items() if not k.startswith("module__")}
        # The clone's callbacks: the recovery must not share callback objects with
        # the estimator.
        user_callbacks = _callback_list(params.get("callbacks"))
        if self.prefit and any(pruning.is_origin_callback(c) for c in user_callbacks):
            # A prefit origin carries the training-time parts of its own origin fit
            # (NSFP's sparsity term): they are not part of the recovery.
            user_callbacks = [c for c in user_callbacks if not pruning.is_origin_callback(c)]
            params["callbacks"] = user_callbacks or None
        params.update(
            module=module,
            max_epochs=self.recovery_epochs or self.estimator.max_epochs,
            region_mask=self.region_mask_,
            region_weight=self.region_weight,
            sample_weighting=self.sample_weighting,
            region_loss=self.region_loss,
            evidence=self.evidence,
        )
        if self.random_state is not None:
            params["random_state"] = self.random_state
        recovery_callbacks = method.recovery_callbacks(self.prune_ratio)
        if recovery_callbacks:
            params["callbacks"] = [*user_callbacks, *recovery_callbacks]
        recovery_cls = (
            type(self.estimator)
            if isinstance(self.estimator, KnowledgeGuidedClassifier)
            else KnowledgeGuidedClassifier
        )
        if cells is not None:
            params["cells"] = cells
        return recovery_cls(**params)


def _check_X(X) -> np.ndarray:
    """``X`` as an array of a shape the pruner can work with.

    Only its shape is checked here (the electrodes and the probe of the network need
    it): its values are checked once, by the origin's own ``fit`` (or ``predict`` for a
    prefit origin).
    """
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    X = np.asarray(X)
    if X.ndim >= 1 and X.shape[0] < 2:
        raise ValueError(
            f"Found array with {X.shape[0]} sample(s) (shape={X.shape}) while a minimum of "
            "2 is required by KnowledgeGuidedPruner."
        )
    if X.ndim not in (3, 4):
        raise ValueError(
            "X must hold raw windows (n_samples, n_chans, n_times) or electrode grids "
            f"(n_samples, n_bands, rows, cols); got an array of shape {X.shape}."
        )
    return X


def _user_callbacks(net) -> list:
    return _callback_list(net.get_params(deep=False).get("callbacks"))


def _callback_list(callbacks) -> list:
    if callbacks is None or isinstance(callbacks, str):
        return []
    return list(callbacks)


def _probe_module(estimator, X: np.ndarray, y: np.ndarray) -> torch.nn.Module | None:
    """The network ``estimator`` would build for ``X``, on the meta device (no memory)."""
    from skkgp.models import get_model_class, infer_module_kwargs

    module = estimator.module
    if isinstance(module, torch.nn.Module):
        return module
    try:
        module_cls = get_model_class(module)
    except (TypeError, ValueError):
        return None
    kwargs = infer_module_kwargs(module_cls, X.shape[1:], np.unique(y).size)
    kwargs.update(
        estimator.get_params_for("module") if hasattr(estimator, "get_params_for") else {}
    )
    try:
        with torch.device("meta"):
            return module_cls(**kwargs)
    except Exception:  # noqa: BLE001 - a foreign module is checked after the origin fit
        return None


def _example_inputs(X: np.ndarray, module: torch.nn.Module) -> torch.Tensor:
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    return torch.as_tensor(X[:2], dtype=torch.float32, device=device)


def _reinitialize(module: torch.nn.Module, seed: int | None) -> None:
    """Re-initialise every submodule that has ``reset_parameters``, keeping pruning masks."""
    devices = [p.device.index or 0 for p in module.parameters() if p.device.type == "cuda"][:1]
    with torch.random.fork_rng(devices=devices):
        if seed is not None:
            torch.manual_seed(seed)
        for submodule in module.modules():
            reset = getattr(submodule, "reset_parameters", None)
            if not callable(reset):
                continue
            reset()
            store_derived_tensors(submodule)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _model_name(net) -> str:
    module = net.module_
    return type(module).__name__


def _describe(layout) -> str:
    return repr(layout) if isinstance(layout, str) else "<custom layout>"
