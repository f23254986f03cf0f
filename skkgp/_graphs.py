"""Training steps replayed from a CUDA graph (``EEGClassifier(cuda_graphs=True)``).

On a GPU at EEG batch sizes a training step is bound by the host: Python, the
dispatcher and one kernel launch per operation take longer than the kernels run, and
the knowledge-guided step, with its double backward, launches about three times the
kernels of a plain step. A CUDA graph records the launches of one whole step (forward,
loss, backward, optimizer update) once and replays them with one call, so the host
work per step no longer grows with the number of operations.

A captured step reads its batch from fixed input tensors and writes its loss, logits
and recorded values to fixed outputs: each replay copies the batch in and the outputs
out. It replays only what the capture did, so:

- batches of another shape (the last, smaller batch of an epoch) run eagerly;
- optimizer hyperparameters and the net's own per-step settings (the knowledge-guided
  weights, ``precision``) are baked into the graph: when they change (a learning-rate
  schedule, ``set_params(lr=...)``, a callback ramping ``region_weight``) the step is
  captured again;
- the optimizer must update without reading values back to the host: Adam-style
  optimizers are switched to ``capturable=True`` (their step counters live on the
  device), which gives the same updates;
- callbacks' ``on_grad_computed`` run once, at capture: their tensor work on the
  gradients (NetworkSlimming's L1 term, gradient clipping) is replayed, Python decisions
  are not;
- a step that cannot be captured (it reads a value back to the host, or uses an
  operation CUDA graphs do not support) is trained eagerly for the rest of the fit,
  with a warning naming the reason; the last warm-up step runs under PyTorch's
  synchronisation check, so that a read back to the host is named before a capture
  is tried.

Dropout masks come from the same generator but, as PyTorch documents for graphs, in a
different order than eager steps draw them: a graphed fit is reproducible under
``random_state`` but does not equal an eager fit of a network with dropout bit for bit.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch

__all__ = ["GraphedTrainingStep", "batch_key", "graph_state", "make_capturable"]

#: Eager steps on a side stream before the first capture: cuBLAS/cuDNN workspaces,
#: autograd's stream bookkeeping and the optimizer's lazily made state must exist
#: before the graph records (PyTorch's guidance for whole-network capture).
WARMUP_STEPS = 3


def make_capturable(optimizer: torch.optim.Optimizer) -> list[dict]:
    """Switch the optimizer's groups to ``capturable=True`` where it has the option.

    A capturable Adam keeps its step counters on the parameters' device and computes
    the bias corrections there, so its update reads nothing back to the host; the
    updates equal the default ones. Step counters already made on the CPU (a
    ``partial_fit`` continuing an earlier fit) move to the device.

    Returns
    -------
    switched : list of dict
        The groups switched, to be switched back after the fit.
    """
    switched = []
    for group in optimizer.param_groups:
        if "capturable" not in group or group["capturable"]:
            continue
        group["capturable"] = True
        switched.append(group)
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                # Step counts, and NAdam's running product: scalars a capturable
                # optimizer keeps beside the parameter.
                if (isinstance(value, torch.Tensor) and value.dim() == 0
                        and value.device != param.device):
                    state[key] = value.to(param.device)
    return switched


def _settings(net, optimizers) -> tuple:
    """What a capture bakes in: the optimizers' hyperparameters, the net's own settings."""
    return _hyperparameters(optimizers), net._graph_settings()


def _hyperparameters(optimizers) -> tuple:
    """The optimizer settings a capture bakes in: every group's non-tensor values.

    Tensor-valued settings (a tensor ``lr``) are read by the kernels at each replay and
    may change freely.
    """
    return tuple(
        tuple(sorted((key, value) for key, value in group.items()
                     if key != "params" and not isinstance(value, torch.Tensor)))
        for optimizer in optimizers for group in optimizer.param_groups
    )


def batch_key(batch) -> tuple | None:
    """Shape, dtype and device of each batch tensor; ``None`` when not all are CUDA tensors."""
    parts = batch if isinstance(batch, (tuple, list)) else (batch,)
    key = []
    for part in parts:
        if not isinstance(part, torch.Tensor) or part.device.type != "cuda":
            return None
        key.append((tuple(part.shape), part.dtype, part.device, part.stride()))
    return tuple(key)


def graph_state(net) -> tuple:
    """Identity of what a capture holds on to: modules, criteria, optimizers, parameters."""
    objects = [getattr(net, name + "_", None) for name in (*net._modules, *net._criteria)]
    optimizers = [getattr(net, name + "_", None) for name in net._optimizers]
    params = [id(p) for module in objects if isinstance(module, torch.nn.Module)
              for p in module.parameters()]
    return (*map(id, objects), *map(id, optimizers), *params)


class GraphedTrainingStep:
    """One net's training step, captured once in a CUDA graph and replayed per batch.

    Parameters
    ----------
    net : skorch.NeuralNet
        A net with :class:`skkgp._training.FastTrainingLoop` in its bases.
    batch : tuple of torch.Tensor
        The first batch: the graph takes batches of its shapes.

    Attributes
    ----------
    captures : int
        Graphs captured so far (more than one when hyperparameters changed).
    replays : int
        Steps trained by replaying a graph.
    eager_steps : int
        Steps trained eagerly (warm-up and batches of another shape).
    failure : str or None
        Why capture failed; the net then trains eagerly.
    """

    def __init__(self, net, batch):
        self.net = net
        self.key = batch_key(batch)
        self.state = graph_state(net)
        self.optimizers = [getattr(net, name + "_") for name in net._optimizers]
        self.switched = [group for optimizer in self.optimizers
                         for group in make_capturable(optimizer)]
        self.device = batch[0].device
        self.stream = torch.cuda.Stream(device=self.device)
        self.graph = None
        self.hyper = None
        self.inputs = None
        self.step = None
        self.records = None
        self.warmup_left = WARMUP_STEPS
        self.captures = 0
        self.replays = 0
        self.eager_steps = 0
        self.failure = None
        self.since_capture = 0  # replays of the current graph
        self.short_lived = 0  # graphs in a row replaced after at most one replay

    def takes(self, key: tuple) -> bool:
        """Whether the graph (or its capture) trains a batch of ``key`` (:func:`batch_key`):
        same shapes, no failure."""
        return self.failure is None and key == self.key

    def run(self, batch, eager_step):
        """Train one batch: eagerly while warming up, then by replaying the graph.

        ``eager_step(batch)`` is skorch's ``train_step`` (zero grad, forward, loss,
        backward, optimizer step); its returned dict's tensors are copied out of the
        graph at each replay.
        """
        if self.warmup_left > 0:
            self.warmup_left -= 1
            if self.warmup_left == 0:
                return self._checked_warmup(eager_step, batch)
            return self._side_stream(eager_step, batch)
        if self.graph is not None and _settings(self.net, self.optimizers) != self.hyper:
            # Settings changed: the old graph would apply the old ones.
            self.graph = None
            self.short_lived = self.short_lived + 1 if self.since_capture <= 1 else 0
            if self.short_lived >= 2:
                self._fail("the training settings change at almost every step (a "
                           "per-batch schedule?), and each change needs a new capture")
        if self.failure is not None or (self.graph is None
                                        and not self._capture(batch, eager_step)):
            return self._side_stream(eager_step, batch)
        for static, value in zip(self.inputs, batch):
            static.copy_(value, non_blocking=True)
        self.graph.replay()
        self.replays += 1
        self.since_capture += 1
        for key, value in self.records.items():
            self.net.history.record_batch(key, value.clone())
        return {key: value.clone() if isinstance(value, torch.Tensor) else value
                for key, value in self.step.items()}

    def _checked_warmup(self, eager_step, batch):
        """The last warm-up step, under PyTorch's check for host synchronisation.

        A capture refuses a step that waits for the GPU, with an error that names the
        refusal rather than the operation; here the step runs to its end and the
        check's warning names the operation.
        """
        previous = torch.cuda.get_sync_debug_mode()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                step = self._side_stream(eager_step, batch)
            finally:
                torch.cuda.set_sync_debug_mode(previous)
        syncs = [w for w in caught if "synchroniz" in str(w.message)]
        for warning in caught:
            if warning not in syncs:
                warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                       warning.lineno)
        if syncs:
            self._fail(f"the step waits for the GPU: {str(syncs[0].message).splitlines()[0]}")
        return step

    @contextlib.contextmanager
    def own_optimizer_settings(self) -> Iterator[None]:
        """Inside the block, the optimizer groups have the capturable setting they were
        given (for pickling a copy mid-fit)."""
        for group in self.switched:
            group["capturable"] = False
        try:
            yield
        finally:
            for group in self.switched:
                group["capturable"] = True

    def close(self) -> dict:
        """Release the graph and give the optimizer back its own setting; the summary.

        A non-capturable Adam reads step counters kept on the device as well, so the
        optimizer trains on (or moves to a CPU) as the user configured it.
        """
        for group in self.switched:
            group["capturable"] = False
        self.graph = self.inputs = self.step = self.records = None
        return self.summary()

    def summary(self) -> dict:
        """Counts of this graph's steps: ``captures``, ``replayed``, ``eager``, ``failure``."""
        return {"captures": self.captures, "replayed": self.replays,
                "eager": self.eager_steps, "failure": self.failure}

    def _side_stream(self, eager_step, batch):
        # Steps before a capture run on the capture's side stream, as PyTorch asks, so
        # that the library state they initialise belongs to that stream.
        self.eager_steps += 1
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            step = eager_step(batch)
        current.wait_stream(self.stream)
        return step

    def _capture(self, batch, eager_step) -> bool:
        """Record one step in a new graph; ``False`` (and a warning) when it cannot be."""
        net = self.net
        self.inputs = [value.detach().clone() for value in batch]
        for optimizer in self.optimizers:
            # Gradients made inside the capture live in the graph's memory, where each
            # replay writes them afresh.
            optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        records: dict[str, torch.Tensor] = {}
        net._graph_records = records
        current = torch.cuda.current_stream(self.device)
        device = torch.cuda.current_device()
        try:
            with torch.cuda.graph(graph, stream=self.stream):
                step = eager_step(tuple(self.inputs))
        except Exception as error:  # noqa: BLE001 - any failure falls back to eager steps
            # A capture that CUDA refused ends before the graph restores the stream and
            # the device.
            torch.cuda.set_device(device)
            torch.cuda.set_stream(current)
            torch.cuda.synchronize(self.device)
            # The error of ending a refused capture hides the refusal: report the first.
            first = error.__context__ if error.__context__ is not None else error
            self._fail(f"{type(first).__name__}: {first}".splitlines()[0])
            return False
        finally:
            net._graph_records = None
        self.graph, self.step, self.records = graph, step, records
        self.hyper = _settings(self.net, self.optimizers)
        self.captures += 1
        self.since_capture = 0
        return True

    def _fail(self, reason: str) -> None:
        """Train eagerly from here on, and say why."""
        self.failure = reason
        self.graph = self.inputs = self.step = self.records = None
        warnings.warn(
            f"{type(self.net).__name__}(cuda_graphs=True): the training step cannot be "
            f"replayed from a CUDA graph ({reason}); training continues with eager steps.",
            RuntimeWarning, stacklevel=5,
        )
