"""
Table 1's parameters and FLOPs, counted two ways
================================================

Every :class:`~skkgp.pruning.PruningReport` counts the pruned network twice.
*skkgp's realized counts* are those of the network :func:`~skkgp.pruning.prune`
leaves: stored parameters (non-zero ones for the masked ``umwp``) and 2 x the
multiply-accumulates of its conv and linear layers. *The paper's convention* is the
counter of Rao & Zhong's code applied to the network they evaluate: parameters minus
zero conv weights, FLOPs from the non-zero conv weights plus linear, bias, BatchNorm,
ReLU and pooling terms, and soft filter pruning counted before its hard step, with
its zeroed filters still in place.

This example prunes freshly initialised CCNN and FBCCNN networks at the paper's
ratio 0.1 on a 4-band 9x9 grid and prints, for each row of Table 1, the paper's
figures beside both counts. The counts of ``lfp``, ``sfp`` and ``umwp`` with
``scope="conv"`` (the paper's) depend on the architecture, not on trained weights
(``umwp``'s FLOPs a little, through which layers its smallest weights sit in), so
they hold for the paper's trained networks too. ``nsfp``'s depend on the gammas
that network slimming's sparsity training leaves, so it is left out here.
"""

# %%
# Prune and count
# ---------------
import pandas as pd
import torch

from skkgp.models import CCNN, FBCCNN
from skkgp.pruning import prune

#: Table 1 of the paper at ratio 0.1: (params in M, FLOPs).
PAPER = {
    ("CCNN", "origin"): (6.23, 1.60e8),
    ("CCNN", "lfp"): (5.47, 1.30e8),
    ("CCNN", "umwp"): (6.14, 1.45e8),
    ("CCNN", "sfp"): (6.14, 1.46e8),
    ("FBCCNN", "origin"): (2.12, 1.20e8),
    ("FBCCNN", "lfp"): (1.81, 0.97e8),
    ("FBCCNN", "nsfp"): (2.01, 1.02e8),
    ("FBCCNN", "umwp"): (2.05, 1.08e8),
    ("FBCCNN", "sfp"): (2.05, 1.09e8),
}
ROWS = [
    ("lfp", None),
    ("umwp", {"scope": "conv"}),
    ("umwp", {"scope": "all"}),
    ("sfp", None),
]
grid = torch.randn(2, 4, 9, 9, generator=torch.Generator().manual_seed(0))

rows = []
for model_class in (CCNN, FBCCNN):
    name = model_class.__name__
    for method, options in ROWS:
        torch.manual_seed(0)
        report = prune(model_class(), method, 0.1, grid, method_options=options)
        if not rows or rows[-1]["model"] != name:
            paper_params, paper_flops = PAPER[(name, "origin")]
            rows.append({
                "model": name, "row": "origin", "paper params (M)": paper_params,
                "paper FLOPs": paper_flops,
                "realized params (M)": report.params_before / 1e6,
                "realized FLOPs": report.flops_before,
                "paper-convention params (M)": report.paper_params_before / 1e6,
                "paper-convention FLOPs": report.paper_flops_before,
            })
        label = method if options is None else f"{method} ({options['scope']})"
        paper = PAPER.get((name, method)) if options != {"scope": "all"} else None
        realized_params = report.params_after if report.structural else (
            report.nonzero_params_after
        )
        rows.append({
            "model": name,
            "row": label,
            "paper params (M)": paper[0] if paper else float("nan"),
            "paper FLOPs": paper[1] if paper else float("nan"),
            "realized params (M)": realized_params / 1e6,
            "realized FLOPs": report.flops_after,
            "paper-convention params (M)": report.paper_params_after / 1e6,
            "paper-convention FLOPs": report.paper_flops_after,
        })

table = pd.DataFrame(rows)
with pd.option_context("display.width", 200, "display.max_columns", 20):
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))

# %%
# The paper-convention columns match the paper's rows (``umwp (all)`` is skkgp's
# default scope, which has no row there). The realized columns differ where the
# conventions do: ``sfp`` ends with a hard step that also removes the next layers'
# input channels, so its network is smaller than the soft-pruned one the paper
# counts; a masked network's realized FLOPs leave out bias, ReLU and BatchNorm terms.
#
# One report, both conventions:
torch.manual_seed(0)
print(prune(CCNN(), "sfp", 0.1, grid))
