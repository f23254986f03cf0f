"""PruningReport: what a pruning step removed, in skkgp's counts and the paper's."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["PruningReport"]


def _reduction(before: int, after: int) -> float:
    return 0.0 if before == 0 else 100.0 * (before - after) / before


@dataclass
class PruningReport:
    """Parameters and MACs of a network before and after pruning, in two conventions.

    skkgp's realized counts: MACs are the multiply-accumulates of the conv and linear
    layers for one input sample (FLOPs = 2 x MACs), parameters every stored entry, with
    non-zero counts beside them. The paper's convention (``paper_*`` fields): the
    counter of the authors' code on the network they evaluate, parameters minus zero
    conv weights, FLOPs from the non-zero conv weights plus the linear, BatchNorm,
    ReLU and pooling terms it counts; a soft-pruned (SFP) network is counted before
    its hard step. See :mod:`skkgp.pruning.counting`.

    Parameters
    ----------
    method : str
        Pruning method (one of :data:`skkgp.pruning.METHODS`).
    ratio : float or dict of str to float
        Pruning ratio used (per layer for a dict); for a budget, the ratio the search
        found.
    params_before, params_after : int
        Parameters of the network (every stored entry; masked weights included).
    macs_before, macs_after : int
        Dense MACs per sample.
    nonzero_params_after : int
        Non-zero parameter entries after pruning, masks applied.
    nonzero_macs_after : int
        MACs with each layer scaled by the non-zero share of its weight (what a
        sparse kernel would need; equal to ``macs_after`` for structural methods
        unless weights happen to be zero).
    kept_channels : dict of str to (int, int)
        Root layer of each prunable unit -> (channels kept, channels before). For the
        masked ``umwp``, a channel counts as kept while one of its weights is non-zero.
    structural : bool, default=True
        Whether the network was made physically smaller (``lfp``, ``nsfp``, ``sfp``)
        rather than masked (``umwp``).
    method_options : dict, default={}
        Options of the method (``{"scope": "conv"}`` for ``umwp``).
    paper_params_before, paper_params_after : int or None, default=None
        Parameters as the paper counts them (:func:`~skkgp.pruning.count_paper_params`)
        before pruning and of the network the paper evaluates after it (for ``sfp``
        the soft-pruned network, zeroed filters in place).
    paper_flops_before, paper_flops_after : int or None, default=None
        FLOPs per sample as the paper counts them
        (:func:`~skkgp.pruning.count_paper_flops`), of the same networks.
    target_macs, target_params : int or None, default=None
        The budget pruned to, if any (MACs, parameters; non-zero counts for masked
        methods). The reached counts are ``flops_after / 2`` and the params the
        reductions are computed from.
    n_steps : int, default=1
        Prune-recover steps that led here.

    Attributes
    ----------
    params_reduction, macs_reduction : float
        Reductions in percent: of the dense counts for structural methods, of the
        non-zero counts for masked ones (the paper's convention).
    flops_before, flops_after : int
        ``2 * macs_before`` and twice the MACs the reductions are computed from.
    paper_params_reduction, paper_flops_reduction : float or None
        Reductions in percent of the paper's counts (None where they are missing).
    """

    method: str
    ratio: float
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    nonzero_params_after: int
    nonzero_macs_after: int
    kept_channels: dict[str, tuple[int, int]] = field(default_factory=dict)
    structural: bool = True
    method_options: dict = field(default_factory=dict)
    paper_params_before: int | None = None
    paper_params_after: int | None = None
    paper_flops_before: int | None = None
    paper_flops_after: int | None = None
    target_macs: int | None = None
    target_params: int | None = None
    n_steps: int = 1
    params_reduction: float = field(init=False)
    macs_reduction: float = field(init=False)

    def __post_init__(self) -> None:
        self.params_reduction = _reduction(self.params_before, self._params_left)
        self.macs_reduction = _reduction(self.macs_before, self._macs_left)

    @property
    def has_paper_counts(self) -> bool:
        """Whether the four ``paper_*`` counts are there."""
        return None not in (self.paper_params_before, self.paper_params_after,
                            self.paper_flops_before, self.paper_flops_after)

    @property
    def paper_params_reduction(self) -> float | None:
        if not self.has_paper_counts:
            return None
        return _reduction(self.paper_params_before, self.paper_params_after)

    @property
    def paper_flops_reduction(self) -> float | None:
        if not self.has_paper_counts:
            return None
        return _reduction(self.paper_flops_before, self.paper_flops_after)

    @property
    def _params_left(self) -> int:
        return self.params_after if self.structural else self.nonzero_params_after

    @property
    def _macs_left(self) -> int:
        return self.macs_after if self.structural else self.nonzero_macs_after

    @property
    def flops_before(self) -> int:
        return 2 * self.macs_before

    @property
    def flops_after(self) -> int:
        return 2 * self._macs_left

    def to_dict(self) -> dict:
        """Every field as plain Python values (JSON-ready; ``kept_channels`` as lists)."""
        data = asdict(self)
        data["kept_channels"] = {k: list(v) for k, v in self.kept_channels.items()}
        data["flops_before"] = self.flops_before
        data["flops_after"] = self.flops_after
        data["paper_params_reduction"] = self.paper_params_reduction
        data["paper_flops_reduction"] = self.paper_flops_reduction
        return data

    def __str__(self) -> str:
        kind = "structural" if self.structural else "masked"
        options = "".join(f", {k}={v!r}" for k, v in self.method_options.items())
        if isinstance(self.ratio, dict):
            ratio = "per-layer ratios " + ", ".join(
                f"{name}: {value:g}" for name, value in self.ratio.items()
            )
        else:
            ratio = f"ratio {self.ratio:g}"
        steps = f" in {self.n_steps} steps" if self.n_steps > 1 else ""
        lines = [f"PruningReport: {self.method} ({kind}{options}) at {ratio}{steps}"]
        for what, target, left in (
            ("MACs", self.target_macs, self._macs_left),
            ("params", self.target_params, self._params_left),
        ):
            if target is not None:
                lines.append(f"  budget: {what} <= {target:,} (reached {left:,})")
        lines += [
            f"  params  {self.params_before:>13,} -> {self._params_left:>13,}"
            f"  (-{self.params_reduction:.1f} %; {self.params_after:,} stored,"
            f" {self.nonzero_params_after:,} non-zero)",
            f"  MACs    {self.macs_before:>13,} -> {self._macs_left:>13,}"
            f"  (-{self.macs_reduction:.1f} %; {self.macs_after:,} dense,"
            f" {self.nonzero_macs_after:,} non-zero)",
            f"  FLOPs   {self.flops_before:>13.3e} -> {self.flops_after:>13.3e}",
        ]
        if self.has_paper_counts:
            lines += [
                "  as the paper counts (zero conv weights left out; FLOPs with bias,"
                " BatchNorm, ReLU, pooling):",
                f"  params  {self.paper_params_before:>13,} -> {self.paper_params_after:>13,}"
                f"  (-{self.paper_params_reduction:.1f} %)",
                f"  FLOPs   {self.paper_flops_before:>13.3e} -> {self.paper_flops_after:>13.3e}"
                f"  (-{self.paper_flops_reduction:.1f} %)",
            ]
        if self.kept_channels:
            lines.append("  kept channels:")
            width = max(len(name) for name in self.kept_channels)
            for name, (kept, total) in self.kept_channels.items():
                lines.append(f"    {name:<{width}}  {kept:>5} / {total}")
        return "\n".join(lines)
