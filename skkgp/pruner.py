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
from sklearn.utils.validation import check_is_fitted, column_or_1d

from skkgp import pruning
from skkgp._input import eeg_input
from skkgp._validation import HasMethods, Interval, Options, validate_params
from skkgp._training import uncompiled
from skkgp.classifier import EEGClassifier
from skkgp.layout import DEFAULT_REGION, get_channels, get_layout, grid_cells, region_mask
from skkgp.pruning.base import TrainingBatch, check_per_layer_scope, check_ratios
from skkgp.pruning.budget import (
    budget_costs,
    check_budget,
    find_budget_ratio,
    prunable_widths,
    prune_to_budget,
    refuse_met_budget,
)
from skkgp.pruning.masks import store_derived_tensors
from skkgp.pruning.report import PruningReport
from skkgp.pruning.schedule import (
    SCHEDULES,
    STEP_RECOVERY,
    budget_targets,
    keep_fractions,
    split_epochs,
    step_ratios,
)
from skkgp.knowledge.evidence import EVIDENCE_KINDS, mean_region_share
from skkgp.knowledge.losses import ESTIMATOR_REGION_LOSS, REGION_WEIGHT, SAMPLE_WEIGHTING
from skkgp.knowledge.recovery import KnowledgeGuidedClassifier

__all__ = ["KnowledgeGuidedPruner", "ConstantPredictorWarning"]

# Training samples the data-driven criteria ("taylor", "kgi") rank filters on.
TRAINING_BATCH_SIZE = 256
# prune_ratio=None without a budget.
DEFAULT_RATIO = 0.5


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
       :class:`skkgp.pruning.NetworkSlimming` for NSFP; a ``NetworkSlimming`` among
       the estimator's callbacks takes its place, with its own penalty). With ``prefit=True``,
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
       optimizer, learning rate, batch size, device and callbacks (its origin
       callbacks, such as ``NetworkSlimming``, left out), and the method's recovery
       callbacks.

    A method whose structural step is a final hard one (soft filter pruning, SFP)
    prunes *during* recovery instead: the network keeps its full structure while
    :class:`skkgp.pruning.SoftFilterPruning` zeroes its lowest-L2 filters after every
    epoch (they may regrow in the next one), and the zeroed filters are removed
    physically at the end of recovery by :func:`skkgp.pruning.prune`; the fitted
    ``estimator_`` then keeps the estimator's own callbacks only, so that training it
    further does not soft-prune the pruned network again. Each method
    carries these parts itself (:class:`skkgp.pruning.base.PruningMethod`).

    With ``region_weight=0`` and ``sample_weighting=0`` the recovery is exactly the plain
    cross-entropy fine-tuning of the pruned network (same seed, same weights).

    Parameters
    ----------
    estimator : EEGClassifier
        The origin network: unfitted (cloned and fitted by ``fit``), or already fitted
        when ``prefit=True``. It is never modified.
    method : {"lfp", "nsfp", "umwp", "sfp", "taylor", "fpgm", "lamp", "kgi"}, default="lfp"
        Pruning method (see :mod:`skkgp.pruning`); it must apply to the network
        (``nsfp`` needs BatchNorm layers, e.g. ``"fbccnn"``). ``"taylor"`` and
        ``"kgi"`` rank filters on up to 256 training samples (a random subset of
        ``X``, seeded by ``random_state``); ``"kgi"`` ranks the evidence layer's filters
        by where on the head their evidence lies relative to ``region``.
    prune_ratio : float in (0, 1), dict of str to float, or None, default=None
        Fraction of filters (``lfp``, ``nsfp``, ``sfp`` and the other criteria) or
        weights (``umwp``) removed; a dict gives it per layer (root layer names as in
        ``pruning_report_.kept_channels``; layers it does not name are not pruned;
        structural methods but ``sfp``, ranked per layer; a name that is not a
        prunable layer of a zoo network is refused before the origin trains). ``None``: prune to the
        budget when ``target_macs`` or ``target_params`` is given, else at 0.5.
        Giving both a ratio and a budget is an error.
    method_options : dict or None, default=None
        Options of the pruning method, passed to :func:`skkgp.pruning.prune`: for
        ``"umwp"``, ``{"scope": "conv"}`` masks conv weights only, as the paper, and
        ``{"scope": "all"}`` (the default) conv and linear weights. The other methods
        take none. Searchable like any parameter:
        ``GridSearchCV(pruner, {"method_options": [{"scope": "conv"}, {"scope": "all"}]})``.
    target_macs : float or None, default=None
        Budget: MACs per sample (conv and linear layers, FLOPs = 2 x MACs; non-zero
        MACs for ``umwp``) the pruned network must not exceed. The ratio is searched
        by bisection with :func:`skkgp.pruning.budget.find_budget_ratio`, counting
        pruned copies with :func:`skkgp.pruning.count_macs`: the network found is the
        largest that meets the budget, within one rounding step. A budget the origin
        already meets (refused before the origin is trained), or one that no ratio
        reaches, is an error.
    target_params : float or None, default=None
        Budget: parameters (non-zero ones for ``umwp``), as ``target_macs``; both may
        be given.
    global_pruning : bool or None, default=None
        Rank channels (weights) across layers rather than per layer; ``None`` uses the
        method's default (global for ``nsfp``, ``umwp``, ``lamp``). For ``sfp`` it
        ranks both the per-epoch zeroing and the final hard step. A dict
        ``prune_ratio`` always ranks per layer.
    n_steps : int >= 1, default=1
        Prune -> recover steps towards the final ratio or budget (iterative pruning).
        Every step prunes the network the previous step's recovery left, and is
        followed by a knowledge-guided recovery; the last step lands exactly on the
        final ratio (per-layer rankings keep the filters one-shot pruning keeps) or
        searches the final budget again. Not for ``sfp`` (it prunes gradually
        already) nor ``recovery="scratch"``.
    schedule : {"linear", "geometric"}, default="linear"
        Intermediate targets of the steps (:mod:`skkgp.pruning.schedule`):
        ``"linear"`` keeps ``1 - ratio * i / n_steps`` of the origin's filters after
        step ``i`` (a budget falls linearly from the origin's cost); ``"geometric"``
        ``(1 - ratio) ** (i / n_steps)``, the same share of what is left at every step.
    step_recovery : {"split", "each"}, default="split"
        ``"split"``: the recovery epochs are shared by the steps (as equally as can be,
        later steps getting the remainder; a step may get 0), so that iterative and
        one-shot pruning train equally long; ``"each"``: every step recovers for the
        full recovery epochs.
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
        Epochs of recovery (in all, or per step, see ``step_recovery``); ``None`` uses
        the estimator's ``max_epochs``.
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
        on from the recovered weights. Its callbacks are the estimator's own (its
        origin callbacks left out; for ``sfp``, without the soft step).
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
        Parameters and MACs before (the origin) and after pruning (the last step),
        kept channels per layer, the budget and the reached counts, the ratio used
        (for a one-step budget, the ratio found; over several steps towards a budget,
        the share of the origin's filters removed) and ``n_steps``.
    classes_ : ndarray, shape (n_classes,)
        Class labels.
    n_features_in_ : int
        ``estimator_.n_features_in_``: channels of raw windows, bands of grids.
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
      as the estimator's own are without ``prefit``.
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
        "prune_ratio": [Interval(Real, 0, 1, closed="neither"), dict, None],
        "target_macs": [Interval(Real, 0, None, closed="neither"), None],
        "target_params": [Interval(Real, 0, None, closed="neither"), None],
        "global_pruning": ["boolean", None],
        "n_steps": [Interval(Integral, 1, None, closed="left")],
        "schedule": [Options(SCHEDULES)],
        "step_recovery": [Options(STEP_RECOVERY)],
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
        prune_ratio: float | Mapping[str, float] | None = None,
        method_options: dict | None = None,
        target_macs: float | None = None,
        target_params: float | None = None,
        global_pruning: bool | None = None,
        n_steps: int = 1,
        schedule: str = "linear",
        step_recovery: str = "split",
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
        self.target_macs = target_macs
        self.target_params = target_params
        self.global_pruning = global_pruning
        self.n_steps = n_steps
        self.schedule = schedule
        self.step_recovery = step_recovery
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
            A column vector ``(n_samples, 1)`` is taken as 1-D, with a
            :class:`~sklearn.exceptions.DataConversionWarning`.

        Returns
        -------
        self : KnowledgeGuidedPruner
        """
        validate_params(self._parameter_constraints, self.get_params(deep=False))
        self._check_pruning_params()
        if not isinstance(self.estimator, EEGClassifier):
            raise TypeError(
                "estimator must be an skkgp.EEGClassifier, got "
                f"{type(self.estimator).__name__}: {self.estimator!r}."
            )
        X, y, epochs_names, _ = eeg_input(X, y)
        if y is None:
            raise ValueError("KnowledgeGuidedPruner.fit needs y (labels) unless X is Epochs.")
        X = _check_X(X)
        # Checked here, not by the origin's fit only: a prefit origin is not fitted
        # again, and the ranking batch of taylor/kgi needs one label per sample.
        y = column_or_1d(y, warn=True)
        if len(y) != len(X):
            raise ValueError(
                f"X and y have different numbers of samples: {len(X)} and {len(y)}."
            )
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

        # 2.-3. Pruning and recovery, in n_steps prune -> recover steps (sfp prunes
        # during recovery; its hard step comes after it, see the class docstring).
        module = copy.deepcopy(origin.module_)
        example_inputs = _example_inputs(X, module)
        batch = self._training_batch(X, y, module, cells) if method.uses_batch else None
        epochs = split_epochs(
            self.recovery_epochs or self.estimator.max_epochs, self.n_steps, self.step_recovery
        )
        if method.prunes_after_recovery:
            ratio = self._final_step_ratio(module, example_inputs)
            if self.recovery == "scratch":
                _reinitialize(module, self._seed())
            soft_step = method.recovery_callbacks(ratio, global_pruning=self._is_global(method))
            recovered = self._recovery_net(module, cells, epochs[-1], soft_step)
            self._say(f"recovering ({self.recovery})")
            recovered.fit(X, y)
            if self._has_budget() and self._is_global(method):
                # A global ranking of the recovered network may spread its zeroed
                # filters over the layers otherwise than the origin's, on which the
                # ratio was found: it then takes the fewest further filters that meet
                # the budget (its zeroed filters rank lowest, so they go first).
                ratio = max(ratio, self._final_step_ratio(recovered.module_, example_inputs))
            self._say(f"pruning with {self.method} at ratio {ratio:g} (final step)")
            # Ranked as the recovery's soft step and the budget search ranked, so
            # that the filters removed are the ones zeroed last.
            report = pruning.prune(
                recovered.module_, self.method, ratio, example_inputs,
                global_pruning=self._is_global(method), method_options=self.method_options,
            )
            # The paper's "before" is the origin's: the soft-pruned network it was
            # given counts its zeroed filters out already.
            self.pruning_report_ = dataclasses.replace(
                report,
                paper_params_before=pruning.count_paper_params(origin.module_),
                paper_flops_before=pruning.count_paper_flops(origin.module_, example_inputs),
                target_macs=self._budget()[0],
                target_params=self._budget()[1],
            )
            # Further training of the pruned network (partial_fit, a clone) trains it
            # with the estimator's own callbacks: the soft step is over.
            if soft_step:
                own = [c for c in _callback_list(recovered.callbacks) if c not in soft_step]
                recovered.set_params(callbacks=own or None)
                recovered.initialize_callbacks()
            # The optimizer still points at the unpruned tensors.
            recovered.initialize_optimizer()
        else:
            reports = []
            origin_costs, origin_widths = self._stepwise_origin(module, example_inputs, batch)
            for step in range(self.n_steps):
                report = self._prune_step(module, step, example_inputs, batch, reports,
                                          origin_costs=origin_costs,
                                          origin_widths=origin_widths)
                if report is not None:
                    reports.append(report)
                if step < self.n_steps - 1 and epochs[step] > 0:
                    between = self._recovery_net(module, cells, epochs[step])
                    self._say(f"recovering after step {step + 1} ({epochs[step]} epochs)")
                    module = between.fit(X, y).module_
            self.pruning_report_ = _combine_reports(reports, self)
            if self.recovery == "scratch":
                _reinitialize(module, self._seed())
            recovered = self._recovery_net(module, cells, epochs[-1])
            self._say(f"recovering ({self.recovery})")
            recovered.fit(X, y)
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

    # ------------------------------------------------------ ratios and budgets
    def _budget(self) -> tuple[int | None, int | None]:
        return (
            None if self.target_macs is None else int(self.target_macs),
            None if self.target_params is None else int(self.target_params),
        )

    def _has_budget(self) -> bool:
        return self.target_macs is not None or self.target_params is not None

    def _ratio(self) -> float | dict:
        """``prune_ratio``, or 0.5 when neither it nor a budget is given."""
        return DEFAULT_RATIO if self.prune_ratio is None else self.prune_ratio

    def _check_pruning_params(self) -> None:
        """Combinations the parameter constraints cannot express."""
        if self.prune_ratio is not None and self._has_budget():
            raise ValueError(
                f"prune_ratio={self.prune_ratio!r} and a budget (target_macs="
                f"{self.target_macs!r}, target_params={self.target_params!r}) were both "
                "given: pass one of them (prune_ratio=None to prune to the budget)."
            )
        if isinstance(self.prune_ratio, Mapping):
            check_ratios(self.prune_ratio)
            method = pruning.get_method(self.method)
            if not method.structural or method.prunes_after_recovery:
                raise ValueError(
                    f"per-layer ratios (prune_ratio as a dict) do not apply to "
                    f"method={self.method!r}; pass one float ratio."
                )
            # Checked here too, so that the origin is not trained for nothing.
            check_per_layer_scope(self.prune_ratio, self.global_pruning, "prune_ratio")
        if self.n_steps > 1 and pruning.get_method(self.method).prunes_after_recovery:
            raise ValueError(
                f"n_steps > 1 does not apply to method={self.method!r}, which prunes "
                "during recovery and removes filters at its end: use n_steps=1."
            )
        if self.n_steps > 1 and self.recovery == "scratch":
            raise ValueError(
                "n_steps > 1 recovers between steps by fine-tuning; recovery='scratch' "
                "would throw that training away: use recovery='finetune' or n_steps=1."
            )

    def _final_step_ratio(self, module: torch.nn.Module, example_inputs) -> float:
        """The ratio of a method that prunes after recovery (sfp): the one asked for, or
        the one at which its final step meets the budget on ``module``."""
        if not self._has_budget():
            return float(self._ratio())
        target_macs, target_params = self._budget()
        search = find_budget_ratio(
            module, self.method, example_inputs, target_macs=target_macs,
            target_params=target_params,
            global_pruning=self._is_global(pruning.get_method(self.method)),
            method_options=self.method_options,
        )
        return search.ratio

    def _is_global(self, method) -> bool:
        """Whether ``method`` ranks channels across layers here: ``global_pruning``, or
        the method's default; never for per-layer ratios (a dict), which
        :func:`~skkgp.pruning.prune` ranks per layer."""
        if isinstance(self.prune_ratio, Mapping):
            return False
        if self.global_pruning is not None:
            return bool(self.global_pruning)
        return method.default_global

    def _stepwise_origin(self, module, example_inputs, batch):
        """What the steps of a stepwise run count from: the origin's budget costs (with
        a budget) or its prunable units' widths (structural ratio); None otherwise."""
        if self.n_steps == 1:
            return None, None
        if self._has_budget():
            target_macs, target_params = self._budget()
            # Checks the final budget before any training is spent on steps.
            return check_budget(
                module, self.method, example_inputs, target_macs=target_macs,
                target_params=target_params, global_pruning=self.global_pruning,
                batch=batch, method_options=self.method_options,
            ), None
        if pruning.get_method(self.method).structural:
            return None, prunable_widths(module, example_inputs)
        return None, None

    def _prune_step(self, module, step: int, example_inputs, batch, reports, *,
                    origin_costs=None, origin_widths=None):
        """Prune ``module`` in place to the target of ``step``; None when nothing goes.

        ``origin_costs``/``origin_widths``: :meth:`_stepwise_origin` of the origin.
        """
        last = step == self.n_steps - 1
        common = dict(
            global_pruning=self.global_pruning, batch=batch, method_options=self.method_options
        )
        if self._has_budget():
            target_macs, target_params = self._budget()
            if self.n_steps > 1:
                macs0, params0 = origin_costs
                if target_macs is not None:
                    target_macs = budget_targets(macs0, target_macs, self.n_steps,
                                                 self.schedule)[step]
                if target_params is not None:
                    target_params = budget_targets(params0, target_params, self.n_steps,
                                                   self.schedule)[step]
                macs, params = budget_costs(module, example_inputs, self.method)
                if (target_macs is None or macs <= target_macs) and (
                    target_params is None or params <= target_params
                ):
                    return None
            self._say(f"step {step + 1}: pruning with {self.method} to the budget "
                      f"(MACs <= {target_macs}, params <= {target_params})")
            return prune_to_budget(
                module, self.method, example_inputs, target_macs=target_macs,
                target_params=target_params, **common,
            )
        ratio = self._ratio()
        if self.n_steps == 1:
            self._say(f"pruning with {self.method} at ratio {ratio}")
            return pruning.prune(module, self.method, ratio, example_inputs, **common)
        fraction = keep_fractions_of(ratio, self.n_steps, self.schedule, step)
        method = pruning.get_method(self.method)
        is_global = self._is_global(method)
        if not method.structural:
            # Masked weights are the smallest: the absolute ratio counts them again.
            step_ratio = 1.0 - fraction
        else:
            origin = origin_widths
            current = (
                origin if not reports
                else {name: kept for name, (kept, _) in reports[-1].kept_channels.items()}
            )
        if method.structural and is_global:
            # The step's share of what is left, so that the kept total follows the
            # schedule exactly (step ratios would not compound exactly, with floors).
            target = method.kept(sum(origin.values()), 1.0 - fraction)
            left = sum(current.values())
            if target >= left:
                return None
            step_ratio = 1.0 - target / left
        elif method.structural:
            step_ratio = step_ratios(origin, current, fraction)
            if not step_ratio:
                return None
        if not last:
            self._say(f"step {step + 1}: pruning with {self.method}")
        return pruning.prune(module, self.method, step_ratio, example_inputs, **common)

    def _fit_origin(self, X: np.ndarray, y: np.ndarray, method) -> EEGClassifier:
        origin = clone(self.estimator)
        if self.random_state is not None:
            origin.set_params(random_state=self.random_state)
        user_callbacks = _user_callbacks(origin)
        # The estimator's own origin callback (a NetworkSlimming with its penalty)
        # stands for the method's default one, rather than doubling it.
        if not any(method.owns_origin_callback(c) for c in user_callbacks):
            origin_callbacks = method.origin_callbacks()
            if origin_callbacks:
                origin.set_params(callbacks=[*user_callbacks, *origin_callbacks])
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

    @property
    def n_features_in_(self) -> int:
        # The fitted network's, so that it cannot disagree with it; before fit an
        # AttributeError, as scikit-learn expects of a fitted attribute.
        try:
            estimator = self.estimator_
        except AttributeError:
            raise AttributeError(
                f"This {type(self).__name__} has no n_features_in_ yet: call fit first."
            ) from None
        return estimator.n_features_in_

    # -------------------------------------------------------------- predict
    def predict(self, X) -> np.ndarray:
        """Predict class labels with the pruned, recovered network.

        Parameters
        ----------
        X : array-like or mne.Epochs, shape (n_samples, ...)
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
            As in :meth:`predict`.

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
        X : array-like or mne.Epochs, shape (n_samples, ...)
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

    def _training_batch(
        self, X: np.ndarray, y: np.ndarray, module: torch.nn.Module, cells: np.ndarray | None
    ) -> TrainingBatch:
        """Up to ``TRAINING_BATCH_SIZE`` training samples, for the criteria that rank on data."""
        size = min(len(X), TRAINING_BATCH_SIZE)
        rows = np.sort(np.random.default_rng(self._seed()).permutation(len(X))[:size])
        device = next((p.device for p in module.parameters()), torch.device("cpu"))
        targets = self.origin_estimator_.encode_labels(y[rows])
        return TrainingBatch(
            inputs=torch.as_tensor(X[rows], dtype=torch.float32, device=device),
            targets=torch.as_tensor(targets, dtype=torch.long, device=device),
            region_mask=self.region_mask_,
            cells=cells,
        )

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
                f"electrodes up to cell {tuple(cells.max(axis=0).tolist())}; pass the layout "
                "the grids were made with."
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
        """Refuse a method, per-layer ratios or a budget the unpruned network meets already,
        before spending time on the origin fit."""
        probe = _probe_module(self.estimator, X, y)
        if probe is None:
            return
        pruning.check_method(self.method, probe)
        # The checks below run the probe, and a lazy layer materialises from torch's
        # global generator: forking it keeps the fit's randomness what it would be
        # without them.
        devices = sorted({
            tensor.device.index or 0
            for tensor in (*probe.parameters(), *probe.buffers())
            if tensor.device.type == "cuda"
        })
        with torch.random.fork_rng(devices=devices):
            if isinstance(self.prune_ratio, Mapping):
                _check_layer_names(self.prune_ratio, probe, X)
            if self._has_budget():
                costs = _unpruned_costs(probe, X)
                if costs is not None:
                    target_macs, target_params = self._budget()
                    refuse_met_budget(costs, target_macs=target_macs,
                                      target_params=target_params)

    def _recovery_net(
        self,
        module: torch.nn.Module,
        cells: np.ndarray | None,
        max_epochs: int,
        recovery_callbacks: Sequence = (),
    ):
        """The recovery of ``module``: the estimator's settings and callbacks (its
        origin callbacks left out), the knowledge-guided losses and ``recovery_callbacks``."""
        params = clone(self.estimator).get_params(deep=False)
        # module__* arguments shaped the origin; with a module instance they are refused.
        params = {k: v for k, v in params.items() if not k.startswith("module__")}
        # The clone's callbacks: the recovery must not share callback objects with
        # the estimator. The training-time parts of an origin fit (NSFP's sparsity
        # term), the estimator's own or a prefit origin's, are no part of the recovery.
        given = _callback_list(params.get("callbacks"))
        user_callbacks = [c for c in given if not pruning.is_origin_callback(c)]
        if recovery_callbacks or len(user_callbacks) < len(given):
            params["callbacks"] = [*user_callbacks, *recovery_callbacks] or None
        params.update(
            module=module,
            max_epochs=max_epochs,
            region_mask=self.region_mask_,
            region_weight=self.region_weight,
            sample_weighting=self.sample_weighting,
            region_loss=self.region_loss,
            evidence=self.evidence,
        )
        if self.random_state is not None:
            params["random_state"] = self.random_state
        recovery_cls = (
            type(self.estimator)
            if isinstance(self.estimator, KnowledgeGuidedClassifier)
            else KnowledgeGuidedClassifier
        )
        if cells is not None:
            params["cells"] = cells
        return recovery_cls(**params)


def keep_fractions_of(ratio, n_steps: int, schedule: str, step: int):
    """Kept fraction after ``step`` for a float ratio, or per layer for a dict."""
    if isinstance(ratio, Mapping):
        return {
            name: keep_fractions(value, n_steps, schedule)[step] for name, value in ratio.items()
        }
    return keep_fractions(ratio, n_steps, schedule)[step]


def _combine_reports(reports: list[PruningReport], pruner) -> PruningReport:
    """One report from the origin to the last step's network."""
    target_macs, target_params = pruner._budget()
    if len(reports) == 1 and pruner.n_steps == 1:
        report = reports[0]
        report.target_macs, report.target_params = target_macs, target_params
        return report
    first, last = reports[0], reports[-1]
    kept = {
        name: (last.kept_channels.get(name, (total, total))[0], total)
        for name, (_, total) in first.kept_channels.items()
    }
    if pruner._has_budget():
        if last.structural:
            # The share of the origin's prunable filters removed over all steps.
            ratio = 1.0 - sum(k for k, _ in kept.values()) / max(
                1, sum(t for _, t in kept.values())
            )
        else:
            ratio = last.ratio  # masked methods' ratios are absolute
    else:
        ratio = pruner._ratio()
    return dataclasses.replace(
        last,
        ratio=ratio,
        params_before=first.params_before,
        macs_before=first.macs_before,
        kept_channels=kept,
        paper_params_before=first.paper_params_before,
        paper_flops_before=first.paper_flops_before,
        target_macs=target_macs,
        target_params=target_params,
        n_steps=pruner.n_steps,
    )


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
    """The network ``estimator`` would build for ``X``: on the meta device (no memory),
    or a deep copy of a module instance, which the checks may run (and so change: a
    lazy layer materialises) while the caller's object stays as it was."""
    from skkgp.models import get_model_class, infer_module_kwargs

    module = estimator.module
    if isinstance(module, torch.nn.Module):
        try:
            return copy.deepcopy(module)
        except Exception:  # noqa: BLE001 - a module that cannot be copied fails the origin's clone
            return None
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


def _check_layer_names(ratios: Mapping[str, float], probe: torch.nn.Module, X) -> None:
    """Refuse per-layer ratios that name no prunable unit of ``probe`` (see
    :func:`_probe_module`), as pruning would after the origin fit."""
    device = next((p.device for p in probe.parameters()), torch.device("cpu"))
    try:
        units = prunable_widths(probe, torch.zeros((2, *X.shape[1:]), device=device))
    except Exception:  # noqa: BLE001 - a network that cannot be traced on meta is checked at pruning
        return
    unknown = sorted(set(ratios) - set(units))
    if unknown:
        raise ValueError(
            f"prune_ratio names layers {unknown} that are not prunable units of "
            f"{type(probe).__name__}; its units are {list(units)}."
        )


def _unpruned_costs(probe: torch.nn.Module, X) -> tuple[int, int] | None:
    """Dense MACs per sample and parameters of ``probe`` (see :func:`_probe_module`);
    ``None`` when it cannot be run."""
    device = next((p.device for p in probe.parameters()), torch.device("cpu"))
    try:
        inputs = torch.zeros((1, *X.shape[1:]), device=device)
        return pruning.count_macs(probe, inputs), pruning.count_params(probe)
    except Exception:  # noqa: BLE001 - a network that cannot run here is checked at pruning
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
