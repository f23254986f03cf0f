"""Training internals of :class:`skkgp.EEGClassifier`: the fast data path, the training
loop's overrides of skorch (:class:`FastTrainingLoop`), memory layout and
``torch.compile`` unwrapping, shared by the estimators, pruning and persistence.

The data path holds whole arrays as tensors and makes batches by slicing.

skorch's default ``Dataset`` + ``DataLoader`` fetch and collate one sample at a time,
which costs a multiple of a plain PyTorch loop's time on small EEG models
(``benchmarks/train_speed.py``; figures in the performance guide). Here ``X`` and ``y`` are
converted to tensors once per ``fit`` (and moved to the compute device once, when they
fit in its memory); a mini-batch is then a slice, or an ``index_select`` with a
shuffled permutation, of those tensors. :class:`TensorBatchIterator` has the call
signature skorch expects of ``iterator_train``/``iterator_valid``, so callbacks,
history and the internal validation split keep working.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from skorch.callbacks import Callback
from skorch.dataset import Dataset, get_len
from torch import nn
from torch.utils.data import Subset

from skkgp._graphs import GraphedTrainingStep

__all__ = [
    "TensorData",
    "TensorBatchIterator",
    "FastTrainingLoop",
    "to_tensor_data",
    "uncompiled",
    "tensors_to_floats",
    "check_channels_last",
    "lay_out",
    "is_channels_last",
]

# Keep the whole data set on a CUDA device only while it takes at most this share of
# the free memory: the rest is for activations, gradients and optimizer state.
_DEVICE_SHARE = 0.25


class TensorData(Dataset):
    """Inputs and targets held as whole tensors.

    A :class:`skorch.dataset.Dataset` (so that skorch's scorers find ``X`` and ``y``)
    that skips skorch's per-sample machinery.

    Parameters
    ----------
    X : torch.Tensor, shape (n_samples, ...)
        Inputs (float32), on ``device`` or, when they do not fit there, in pinned CPU
        memory.
    targets : torch.Tensor of int64, shape (n_samples,), or None
        Encoded class indices used by the loss; ``None`` at prediction.
    y : ndarray, shape (n_samples,), or None
        The original labels. skorch's scorers read ``dataset.X`` and ``dataset.y`` and
        compare them with ``net.predict``, which returns original labels.
    device : str or torch.device
        Where batches must be for the module (the net's ``device``).
    """

    def __init__(self, X: torch.Tensor, targets: torch.Tensor | None, y, device):
        self.X = X
        self.targets = targets
        self.y = y
        self.device = torch.device(device)
        self._len = len(X)

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, index):
        # Only used by a user-chosen DataLoader; TensorBatchIterator never indexes samples.
        target = self.targets[index] if self.targets is not None else torch.tensor(0)
        return self.X[index], target


def _fits_on(device: torch.device, nbytes: int) -> bool:
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= _DEVICE_SHARE * free


def _place(array: np.ndarray, device: torch.device, on_device: bool) -> torch.Tensor:
    tensor = torch.from_numpy(array)
    if device.type == "cpu":
        return tensor
    if on_device:
        return tensor.to(device)
    return tensor.pin_memory() if device.type == "cuda" else tensor


def to_tensor_data(X: np.ndarray, targets: np.ndarray | None, y, device) -> TensorData:
    """Build a :class:`TensorData` from validated arrays, placing it once.

    Parameters
    ----------
    X : ndarray of float32, shape (n_samples, ...)
        C-contiguous, writeable inputs.
    targets : ndarray of int64, shape (n_samples,), or None
        Encoded class indices.
    y : ndarray, shape (n_samples,), or None
        Original labels (kept on the CPU, for scorers).
    device : str or torch.device
        The compute device. On CUDA the data go to the device when they take at most a
        quarter of its free memory, otherwise to pinned CPU memory, from which each
        batch is copied asynchronously.

    Returns
    -------
    data : TensorData
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        # Batches are compared with this device: name it as tensors report theirs.
        device = torch.device("cuda", torch.cuda.current_device())
    nbytes = X.nbytes + (0 if targets is None else targets.nbytes)
    on_device = _fits_on(device, nbytes)
    X_t = _place(X, device, on_device)
    targets_t = None if targets is None else _place(targets, device, on_device)
    return TensorData(X_t, targets_t, y, device)


def _resolve(dataset) -> tuple[TensorData, torch.Tensor | None]:
    """The underlying :class:`TensorData` and the sample indices a ``Subset`` selects."""
    indices = None
    while isinstance(dataset, Subset):
        outer = torch.as_tensor(np.asarray(dataset.indices), dtype=torch.long)
        indices = outer if indices is None else outer[indices]
        dataset = dataset.dataset
    if not isinstance(dataset, TensorData):
        raise TypeError(
            "TensorBatchIterator needs a TensorData (or a Subset of one), got "
            f"{type(dataset).__name__}; use iterator_train=torch.utils.data.DataLoader for "
            "other datasets."
        )
    return dataset, indices


class TensorBatchIterator:
    """Mini-batches of a :class:`TensorData` by slicing, as skorch's iterators are called.

    skorch creates the iterator once per ``fit`` (``iterator(dataset, **kwargs)``) and
    iterates it once per epoch; each pass draws a new permutation from ``generator``.

    Parameters
    ----------
    dataset : TensorData or torch.utils.data.Subset of one
        The data (a ``Subset`` comes from skorch's internal validation split).
    batch_size : int, default=128
        Samples per batch; the last batch may be smaller.
    shuffle : bool, default=False
        Draw a new permutation of the samples at every pass.
    drop_last : bool, default=False
        Skip the last, incomplete batch.
    generator : torch.Generator or None, default=None
        CPU generator of the permutations; ``None`` uses torch's global generator.

    Yields
    ------
    Xb : torch.Tensor, shape (batch, ...)
        Inputs of one batch on the dataset's compute device.
    yb : torch.Tensor of int64, shape (batch,), or None
        Encoded targets of the batch (``None`` when the data have none).
    """

    def __init__(
        self,
        dataset,
        batch_size: int = 128,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
    ):
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator
        self._data, self._indices = _resolve(dataset)
        if self._indices is not None:
            self._indices = self._indices.to(self._data.X.device)

    def __len__(self) -> int:
        n = len(self._indices) if self._indices is not None else len(self._data)
        if self.drop_last:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def _order(self) -> torch.Tensor | None:
        data, indices = self._data, self._indices
        n = len(indices) if indices is not None else len(data)
        if not self.shuffle:
            return indices
        perm = torch.randperm(n, generator=self.generator).to(data.X.device, non_blocking=True)
        return perm if indices is None else indices[perm]

    def _take(self, tensor: torch.Tensor, order, start: int, stop: int) -> torch.Tensor:
        if order is None:
            batch = tensor[start:stop]  # a view: no copy at all
        elif tensor.is_pinned():
            # Gather into pinned memory so that the copy to the device is asynchronous.
            rows = order[start:stop]
            out = torch.empty((len(rows), *tensor.shape[1:]), dtype=tensor.dtype,
                              pin_memory=True)
            batch = torch.index_select(tensor, 0, rows, out=out)
        else:
            batch = tensor.index_select(0, order[start:stop])
        if batch.device != self._data.device:
            batch = batch.to(self._data.device, non_blocking=True)
        return batch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        data = self._data
        order = self._order()
        n = len(order) if order is not None else len(data)
        stop_at = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop_at, self.batch_size):
            stop = min(start + self.batch_size, n)
            Xb = self._take(data.X, order, start, stop)
            yb = None if data.targets is None else self._take(data.targets, order, start, stop)
            yield Xb, yb


class FastTrainingLoop:
    """skorch's training loop with less work per step: a mixin for a skorch net.

    It overrides skorch's loop methods (``get_iterator``, ``_set_training``,
    ``notify``, ``run_single_epoch``) so that batches come from
    :class:`TensorBatchIterator` with a seeded shuffle, modules already in the
    requested mode are left alone, callbacks without the hook are not called, and on
    accelerators the batch losses are read once per epoch. Put it before the skorch
    class in the bases: ``class EEGClassifier(FastTrainingLoop, NeuralNetClassifier)``.
    """

    def get_iterator(self, dataset, training=False):
        """Batches of ``dataset``; training batches are shuffled with a seeded generator."""
        prefix = "iterator_train" if training else "iterator_valid"
        iterator = self.iterator_train if training else self.iterator_valid
        kwargs = self.get_params_for(prefix)
        kwargs.setdefault("batch_size", self.batch_size)
        if kwargs["batch_size"] == -1:
            kwargs["batch_size"] = len(dataset)
        if training and kwargs.get("drop_last") and len(dataset) < kwargs["batch_size"]:
            # Every batch would be dropped: no step, no train_loss, and skorch would fail
            # later with a KeyError on the history.
            raise ValueError(
                f"iterator_train__drop_last=True with batch_size={kwargs['batch_size']} "
                f"drops every batch: the training data have {len(dataset)} samples. Pass "
                f"a batch_size of at most {len(dataset)}, or drop_last=False."
            )
        if iterator is TensorBatchIterator and training:
            kwargs.setdefault("shuffle", True)
            if "generator" not in kwargs:
                # Drawn from torch's (forked, seeded) global generator: reproducible under
                # random_state, and independent of the number of batches drawn so far.
                generator = torch.Generator()
                generator.manual_seed(int(torch.randint(2**62, (1,)).item()))
                kwargs["generator"] = generator
        return iterator(dataset, **kwargs)

    # Per-step bookkeeping: on a GPU at small batches the host's time per step *is* the
    # step time, so skorch's per-step work shows up directly in the epoch time.
    def _set_training(self, training=True):
        """Put the modules in train or eval mode; skorch does it at every step.

        ``nn.Module.train`` walks the whole module tree through ``__setattr__``;
        modules already entirely in the requested mode are left alone (same result).
        """
        for name in self._modules + self._criteria:
            module = getattr(self, name + "_", None)
            if isinstance(module, nn.Module) and any(
                m.training != training for m in module.modules()
            ):
                module.train(training)

    def notify(self, method_name, **cb_kwargs):
        """Call ``method_name`` on the net and on every callback that defines it.

        As skorch's ``notify``, except that callbacks which inherit the base class's
        empty method are not called (three calls per batch per callback otherwise), and
        callbacks disabled with ``set_params(callbacks__name=None)`` are skipped.
        """
        getattr(self, method_name)(self, **cb_kwargs)
        empty = getattr(Callback, method_name, None)
        for _, callback in self.callbacks_:
            if callback is None:
                # Disabled after initialisation (set_params(callbacks__name=None)): fit
                # drops it, partial_fit keeps the list as it is.
                continue
            if (empty is not None and getattr(type(callback), method_name, None) is empty
                    and method_name not in getattr(callback, "__dict__", {})):
                continue
            getattr(callback, method_name)(self, **cb_kwargs)

    def train_step(self, batch, **fit_params):
        """skorch's training step, replayed from a CUDA graph when ``cuda_graphs`` is on.

        Batches the graph cannot take (another shape) and every step when the option is
        off, or outside ``fit``, run skorch's step as it is (:mod:`skkgp._graphs`).
        """
        graphed = self.__dict__.get("_graphed_step_")
        if graphed is None:
            return super().train_step(batch, **fit_params)
        return graphed.run(batch, fit_params, super().train_step)

    def _graph_settings(self) -> tuple:
        """The net's own settings a captured step bakes in: a change recaptures it."""
        return ()

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.__dict__.pop("cuda_graph_steps_", None)
        # A graph left by a fit that raised, or by steps run outside fit, reads tensors
        # of that fit: never replay it in this one.
        stale = self.__dict__.pop("_graphed_step_", None)
        if stale is not None:
            stale.close()
        if getattr(self, "cuda_graphs", False):
            self._graphed_step_ = GraphedTrainingStep(self)
        super().on_train_begin(net, X=X, y=y, **kwargs)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        # A graph lives for one fit: it reads tensors made per fit (the knowledge-guided
        # mask), and its memory is the network's training memory.
        graphed = self.__dict__.pop("_graphed_step_", None)
        if graphed is not None:
            self.cuda_graph_steps_ = graphed.close()
        super().on_train_end(net, X=X, y=y, **kwargs)

    def __getstate__(self):
        graphed = self.__dict__.get("_graphed_step_")
        # Pickled mid-fit (a checkpoint), the optimizer goes with the setting it was
        # given, so that the copy also trains where capturable optimizers cannot (a CPU).
        with graphed.own_optimizer_settings() if graphed else contextlib.nullcontext():
            state = super().__getstate__()
        # A CUDA graph is tied to this process's device memory: a copy captures afresh.
        state.pop("_graphed_step_", None)
        state.pop("_graph_records", None)
        return state

    def _defer_loss_sync(self) -> bool:
        return torch.device(self.device).type != "cpu"

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        """One pass over ``iterator``; on accelerators, batch losses are read once per epoch.

        skorch records ``loss.item()`` after every batch, which makes the host wait for
        the device at every step. On a GPU this version records the loss tensors (and
        any other 0-dim tensor a step records, such as the knowledge-guided region
        share) and converts them to floats in one transfer at the end of the pass
        (before any ``on_epoch_end`` callback reads them); during the epoch,
        ``on_batch_end`` callbacks see them in the history as 0-dim tensors. On CPU it
        is skorch's own loop.
        """
        if iterator is None or not self._defer_loss_sync():
            return super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)
        records = []
        for batch in iterator:
            self.notify("on_batch_begin", batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            self.history.record_batch(prefix + "_loss", step["loss"].detach())
            records.append(self.history[-1]["batches"][-1])
            Xb = batch[0] if isinstance(batch, (tuple, list)) else batch
            self.history.record_batch(prefix + "_batch_size", get_len(Xb))
            self.notify("on_batch_end", batch=batch, training=training, **step)
        tensors_to_floats(records)
        self.history.record(prefix + "_batch_count", len(records))

    def _record_batch_value(self, key: str, value: torch.Tensor) -> None:
        """Record a 0-dim tensor of this batch: a float, or on a GPU the tensor itself,
        which :meth:`run_single_epoch` reads with the others at the end of the epoch.

        While a step is captured in a CUDA graph the value is handed to the graph,
        which records a copy of it after each replay.
        """
        records = getattr(self, "_graph_records", None)
        if records is not None:
            records[key] = value
            return
        self.history.record_batch(key, value if self._defer_loss_sync() else value.item())


def uncompiled(module: nn.Module) -> nn.Module:
    """The network inside a ``torch.compile`` wrapper (the module itself if not compiled)."""
    return getattr(module, "_orig_mod", module)


def tensors_to_floats(records: list[dict]) -> None:
    """Replace the 0-dim tensors recorded in batch records by floats, in one transfer.

    Other values, tensors of more than one element included, are left as recorded.
    """
    slots = [(record, key) for record in records for key, value in record.items()
             if isinstance(value, torch.Tensor) and value.dim() == 0]
    if slots:
        values = torch.stack([record[key].detach().float() for record, key in slots])
        for (record, key), value in zip(slots, values.tolist(), strict=True):
            record[key] = value


def check_channels_last(value):
    """Validate the ``channels_last`` parameter: ``"auto"``, ``True`` or ``False``."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, str) and value == "auto"):
        return value
    raise ValueError(f"channels_last must be 'auto', True or False, got {value!r}.")


def lay_out(module: nn.Module, channels_last, device) -> nn.Module:
    """``module`` with its 4-D weights in the memory format ``channels_last`` asks for.

    ``"auto"`` uses channels-last where the zoo class declares it faster at float32
    accuracy on ``device``'s type (``channels_last_devices``) and leaves other modules
    as their owner laid them out. Converted in place (``nn.Module.to``), before skorch
    moves the module to ``device`` (which keeps the format).
    """
    choice = check_channels_last(channels_last)
    devices = getattr(type(uncompiled(module)), "channels_last_devices", None)
    if choice == "auto":
        if devices is None:
            return module
        choice = torch.device(device).type in devices
    fmt = torch.channels_last if choice else torch.contiguous_format
    return module.to(memory_format=fmt)


def is_channels_last(module: nn.Module) -> bool:
    """Whether the 4-D weights of ``module`` have channels-last strides."""
    # Strides, not is_contiguous(): a weight with size-1 axes (1x1 or depthwise
    # kernels) passes both layouts' checks, yet its strides steer the kernel choice.
    def strides(p, fmt):
        return torch.empty(p.shape, memory_format=fmt, device="meta").stride()

    telling = [p for p in module.parameters() if p.dim() == 4
               and strides(p, torch.channels_last) != strides(p, torch.contiguous_format)]
    return bool(telling) and all(
        p.stride() == strides(p, torch.channels_last) for p in telling
    )
