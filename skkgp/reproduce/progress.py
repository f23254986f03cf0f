"""Progress bars of ``skkgp reproduce``: one over (cell, fold) results, one over epochs."""

from __future__ import annotations

from skorch.callbacks import Callback
from tqdm.auto import tqdm

__all__ = ["EpochBar"]


def _stage(net) -> str:
    # Recovery nets carry the knowledge-guided weights; both zero is the baseline.
    if not hasattr(net, "region_weight"):
        return "origin"
    if net.region_weight == 0 and getattr(net, "sample_weighting", 0) == 0:
        return "baseline recovery"
    return "proposed recovery"


class EpochBar(Callback):
    """A skorch callback that shows one tqdm bar per ``fit``, advancing each epoch.

    Parameters
    ----------
    desc : str, default="epochs"
        Label of the bar; the training stage (origin, baseline or proposed recovery)
        is appended.
    position : int, default=1
        Line of the bar, below the cells bar at position 0.
    """

    def __init__(self, desc: str = "epochs", position: int = 1):
        self.desc = desc
        self.position = position

    def on_train_begin(self, net, X=None, y=None, **kwargs) -> None:
        self.bar_ = tqdm(total=net.max_epochs, desc=f"{self.desc} {_stage(net)}",
                         position=self.position, leave=False, dynamic_ncols=True)

    def on_epoch_end(self, net, **kwargs) -> None:
        bar = getattr(self, "bar_", None)
        if bar is not None:
            loss = net.history[-1].get("train_loss")
            if loss is not None:
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
            bar.update(1)

    def on_train_end(self, net, X=None, y=None, **kwargs) -> None:
        bar = getattr(self, "bar_", None)
        if bar is not None:
            bar.close()
        # A closed bar holds a lock and a stream: drop it so the net pickles and clones.
        self.bar_ = None
