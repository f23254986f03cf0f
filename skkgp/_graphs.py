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
  device), which gives the same updates, while their ``state_dict()`` keeps the
  setting they were given; an optimizer without that option which counts steps on
  the host (Adagrad) is refused, since a replay would repeat one step count;
- callbacks' ``on_grad_computed`` run once, at capture: their tensor work on the
  gradients (NetworkSlimming's L1 term, gradient clipping) is replayed, Python decisions
  are not;
- a step that cannot be captured (it reads a value back to the host, or uses an
  operation CUDA graphs do not support; ``fit_params`` or batches that are not CUDA
  tensors) is trained eagerly for the rest of the fit, with a warning naming the
  reason; the last warm-up step runs under PyTorch's synchronisation check, so that a
  read back to the host is named, with its place, before a capture is tried;
- captures are serialised within a process (:data:`CAPTURE_LOCK`), and each records
  only its own thread's work (``capture_error_mode="thread_local"``), so fits in
  several threads of one process (a multi-threaded Dask worker) can each use graphs.

Dropout masks come from the same generator but, as PyTorch documents for graphs, in a
different order than eager steps draw them: a graphed fit is reproducible under
``random_state`` but does not equal an eager fit of a network with dropout bit for bit.
"""

from __future__ import annotations

import contextlib
import re
import threading
import warnings
from collections.abc import Iterator

import torch

__all__ = ["CAPTURE_LOCK", "WARNING_MESSAGE", "CapturableSwitch", "GraphedTrainingStep",
           "RecaptureGuard", "batch_key", "describe_graph_steps", "graph_state", "host_state",
           "make_capturable", "sync_reason"]

#: Eager steps on a side stream before the first capture: cuBLAS/cuDNN workspaces,
#: autograd's stream bookkeeping and the optimizer's lazily made state must exist
#: before the graph records (PyTorch's guidance for whole-network capture).
WARMUP_STEPS = 3

#: Held by the warm-up steps and each capture: PyTorch's synchronisation check and the
#: warning filters that read it are process-wide, so two threads checking or capturing
#: at once would judge each other's steps.
CAPTURE_LOCK = threading.Lock()

#: The start of PyTorch's note that a capturable optimizer steps outside a capture,
#: which a graphed fit's warm-up and eager steps do by design.
_UNCAPTURED_STEP = "This instance was constructed with capturable=True"

#: The start of the warning of PyTorch's synchronisation check
#: (``torch.cuda.set_sync_debug_mode("warn")``).
_SYNC_WARNING = "called a synchronizing CUDA operation"

#: Per thread, ``caught``: the list the thread's synchronisation warnings go to while
#: its step is checked.
_SYNC_RECORDERS = threading.local()


class _SyncWarningDispatch:
    """``warnings.showwarning`` that hands a synchronisation warning of a thread whose
    step is being checked to that thread's list, and every other warning to the
    handler it took the place of."""

    def __init__(self, previous):
        self.previous = previous

    def __call__(self, message, category, filename, lineno, file=None, line=None):
        caught = getattr(_SYNC_RECORDERS, "caught", None)
        if caught is not None and str(message).startswith(_SYNC_WARNING):
            caught.append(warnings.WarningMessage(message, category, filename, lineno,
                                                  file, line))
        else:
            self.previous(message, category, filename, lineno, file, line)


@contextlib.contextmanager
def _filter_entry(action: str, message: str) -> Iterator[None]:
    """A ``warnings`` filter entry for UserWarnings starting with ``message``, in force
    inside the block and only there.

    ``warnings.catch_warnings`` would save the process's filters and showwarning and
    put them back at the end, from this thread: another thread's block that starts
    inside this one and ends after it would put this block's state back for good, and
    one that ends inside it would drop this block's changes. The entry is removed by
    identity, both from the list it went into (which such a block puts back) and from
    the list in force at the end.
    """
    # filterwarnings, not an insert: it tells the warnings registries that the filters
    # changed, so a warning once ignored at a place is judged again.
    warnings.filterwarnings(action, message=re.escape(message), category=UserWarning)
    filters = warnings.filters
    item = (action, re.compile(re.escape(message), re.I), UserWarning, None, 0)
    entry = next((existing for existing in filters if existing == item), None)
    try:
        yield
    finally:
        for current in (filters, warnings.filters):
            for index, existing in enumerate(current):
                if existing is entry:
                    del current[index]
                    break


@contextlib.contextmanager
def _recorded_sync_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Inside the block, this thread's synchronisation warnings go to the list yielded
    rather than to the user, whatever the filters say; other threads' warnings, and
    this thread's others, are shown as they come."""
    if not isinstance(warnings.showwarning, _SyncWarningDispatch):
        # Installed once, not swapped back at the end (see _filter_entry): it passes on
        # every warning of a thread that is not checking its step.
        warnings.showwarning = _SyncWarningDispatch(warnings.showwarning)
    caught: list[warnings.WarningMessage] = []
    _SYNC_RECORDERS.caught = caught
    try:
        with _filter_entry("always", _SYNC_WARNING):
            yield caught
    finally:
        _SYNC_RECORDERS.caught = None


#: What the warning of a fit whose steps cannot be replayed starts with (a
#: ``warnings.filterwarnings`` message): timing scripts that silence other warnings
#: keep this one.
WARNING_MESSAGE = r"\w+\(cuda_graphs=True\): the training step cannot be replayed"


def describe_graph_steps(steps: dict | None) -> str:
    """One line on how a fit's steps ran, from its ``cuda_graph_steps_``.

    ``None`` (a fit without the attribute) is said to be a fit without graphs.
    """
    if steps is None:
        return "CUDA graphs: not used (no cuda_graph_steps_)"
    counts = (f"{steps['replayed']} steps replayed, {steps['eager']} eager, "
              f"{steps['captures']} capture(s)")
    if steps["failure"] is not None:
        return f"CUDA graphs FAILED, the steps after it ran eagerly ({counts}): {steps['failure']}"
    if steps["replayed"] == 0:
        return f"CUDA graphs: no step replayed ({counts})"
    return f"CUDA graphs: {counts}"


class CapturableSwitch:
    """An optimizer's groups switched to ``capturable=True`` for a graphed fit, and back.

    A capturable Adam keeps its step counters on the parameters' device and computes
    the bias corrections there, so its update reads nothing back to the host; the
    updates equal the default ones. Step counters already made on the CPU (a
    ``partial_fit`` continuing an earlier fit) move to the device.

    While switched, the optimizer's ``state_dict()`` records each group's own setting,
    so that a checkpoint written mid-fit (skorch's ``Checkpoint``, ``save_params``)
    loads later as the optimizer was configured, on a CPU too; a state dict loaded
    into the optimizer while switched is switched as well.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer

    Attributes
    ----------
    groups : list of dict
        The groups switched, which :meth:`restore` switches back.
    loads : int
        State dicts loaded while switched: each replaces the state tensors that a graph
        captured before it updates.
    """

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer
        self.groups: list[dict] = []
        self.loads = 0
        self._switch()
        self._hooks = [optimizer.register_state_dict_post_hook(self._save_own_setting),
                       optimizer.register_load_state_dict_post_hook(self._switch_loaded)]

    def _switch(self) -> None:
        for group in self.optimizer.param_groups:
            if "capturable" not in group or group["capturable"]:
                continue
            group["capturable"] = True
            self.groups.append(group)
            for param in group["params"]:
                state = self.optimizer.state.get(param, {})
                for key, value in state.items():
                    # Step counts, and NAdam's running product: scalars a capturable
                    # optimizer keeps beside the parameter.
                    if (isinstance(value, torch.Tensor) and value.dim() == 0
                            and value.device != param.device):
                        state[key] = value.to(param.device)

    def _save_own_setting(self, optimizer, state_dict) -> None:
        # state_dict() copies the groups, in their order.
        for saved, group in zip(state_dict["param_groups"], optimizer.param_groups,
                                strict=True):
            if any(group is switched for switched in self.groups):
                saved["capturable"] = False

    def _switch_loaded(self, optimizer) -> None:
        # load_state_dict makes new groups and state tensors.
        self.loads += 1
        self._switch()

    @contextlib.contextmanager
    def own_settings(self) -> Iterator[None]:
        """Inside the block, the groups have the capturable setting they were given (for
        pickling a copy mid-fit)."""
        for group in self.groups:
            group["capturable"] = False
        try:
            yield
        finally:
            for group in self.groups:
                group["capturable"] = True

    def restore(self) -> None:
        """Give the groups back their own setting and stop watching the optimizer.

        A non-capturable Adam reads step counters kept on the device as well, so the
        optimizer trains on (or moves to a CPU) as the user configured it.
        """
        for group in self.groups:
            group["capturable"] = False
        for hook in self._hooks:
            hook.remove()
        self._hooks = []


def make_capturable(optimizer: torch.optim.Optimizer) -> CapturableSwitch:
    """Switch the optimizer's groups to ``capturable=True`` where it has the option.

    Returns
    -------
    switch : CapturableSwitch
        Its :meth:`~CapturableSwitch.restore` switches them back after the fit.
    """
    return CapturableSwitch(optimizer)


def host_state(optimizers) -> str | None:
    """Why the optimizers' update cannot be replayed from a graph; ``None`` if it can.

    A graph replays kernels only. An optimizer without a ``capturable`` option that
    keeps a value of its state on the host (a Python number, a tensor off the
    parameter's device, or a scalar tensor beside a non-scalar parameter: Adagrad's step
    count) updates that value in Python, so every replay would repeat the captured step
    count, and whatever depends on it (Adagrad's learning-rate decay). Call after the
    optimizer's first step, which makes its state.
    """
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            if group.get("capturable"):
                continue
            for param in group["params"]:
                for key, value in optimizer.state.get(param, {}).items():
                    if (not isinstance(value, torch.Tensor) or value.device != param.device
                            or (value.dim() == 0 and param.dim() > 0)):
                        return (f"{type(optimizer).__name__} keeps its state {key!r} on the "
                                "host, where a replayed step would not update it; use SGD "
                                "or an optimizer with a capturable option (Adam, AdamW, "
                                "RMSprop...)")
    return None


def sync_reason(warning: warnings.WarningMessage) -> str:
    """The first line of PyTorch's synchronisation warning, and where the step made it."""
    return (f"the step waits for the GPU: {str(warning.message).splitlines()[0]} "
            f"(at {warning.filename}:{warning.lineno})")


class RecaptureGuard:
    """Gives up on graphs that the training settings replace before they pay off.

    A capture costs more than an eager step: when the settings a capture bakes in
    change after each of two graphs in a row has trained at most one batch (a per-batch
    schedule, or a per-epoch one with one full batch an epoch), eager steps are faster.
    """

    def __init__(self):
        self.since_capture = 0  # batches trained by the current graph
        self.short_lived = 0  # graphs in a row replaced after at most one batch

    def captured(self) -> None:
        self.since_capture = 0

    def replayed(self) -> None:
        self.since_capture += 1

    def changed(self) -> str | None:
        """The settings changed: why to stop capturing, or ``None`` to capture again."""
        self.short_lived = self.short_lived + 1 if self.since_capture <= 1 else 0
        if self.short_lived < 2:
            return None
        return ("the training settings (optimizer hyperparameters, the estimator's "
                "per-step settings) changed after each of the last two graphs had trained "
                "a single batch, and a capture per batch costs more than the eager step")


def _settings(net, optimizers, switches) -> tuple:
    """What a capture bakes in: the optimizers' hyperparameters, the net's own settings,
    and the state dicts loaded into the optimizers (new state tensors)."""
    return (_hyperparameters(optimizers), net._graph_settings(),
            tuple(switch.loads for switch in switches))


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
    """One fit's training steps, captured once in a CUDA graph and replayed per batch.

    Made at the start of a fit with ``cuda_graphs=True``; the first batch of CUDA
    tensors fixes the shapes the graph takes and switches the optimizers to
    ``capturable=True``.

    Parameters
    ----------
    net : skorch.NeuralNet
        A net with :class:`skkgp._training.FastTrainingLoop` in its bases.

    Attributes
    ----------
    captures : int
        Graphs captured so far (more than one when hyperparameters changed).
    replays : int
        Steps trained by replaying a graph.
    eager_steps : int
        Steps trained eagerly (warm-up, batches of another shape, every step after a
        failure).
    failure : str or None
        Why the steps are not replayed from a graph; the net then trains eagerly.
    """

    def __init__(self, net):
        self.net = net
        self.state = graph_state(net)
        self.key = None
        self.device = None
        self.stream = None
        self.optimizers: list[torch.optim.Optimizer] = []
        self.switches: list[CapturableSwitch] = []
        self.graph = None
        self.hyper = None
        self.inputs = None
        self.step = None
        self.records = None
        self.grads = None  # (parameter, the graph's gradient tensor)
        self.warmup_left = WARMUP_STEPS
        self.captures = 0
        self.replays = 0
        self.eager_steps = 0
        self.failure = None
        self.guard = RecaptureGuard()

    def run(self, batch, fit_params: dict, eager_step):
        """Train one batch: eagerly while warming up, then by replaying the graph.

        ``eager_step(batch, **fit_params)`` is skorch's ``train_step`` (zero grad,
        forward, loss, backward, optimizer step); its returned dict's tensors are
        copied out of the graph at each replay.
        """
        key = batch_key(batch)
        if self.failure is None:
            if fit_params:
                self._fail(f"fit_params were given ({', '.join(sorted(fit_params))}), and "
                           "a graph replays a step of fixed inputs")
            elif key is None:
                self._fail("the training batches are not CUDA tensors (an iterator_train "
                           "that yields CPU batches?), and a graph reads its inputs on the "
                           "device")
            elif self.state != graph_state(self.net):
                # A new module or optimizer: what the graph and the warm-up held is gone.
                self._start_over()
        if self.failure is None and self.key is None:
            self._begin(batch, key)
        if self.failure is not None or key != self.key:
            return self._eager(eager_step, batch, fit_params)
        if self.warmup_left > 0:
            self.warmup_left -= 1
            with CAPTURE_LOCK, _filter_entry("ignore", _UNCAPTURED_STEP):
                if self.warmup_left == 0:
                    return self._checked_warmup(eager_step, batch)
                return self._side_stream(eager_step, batch)
        if self.graph is not None and self._settings() != self.hyper:
            # Settings changed: the old graph would apply the old ones.
            self._drop_graph()
            reason = self.guard.changed()
            if reason is not None:
                self._fail(reason)
        if self.failure is not None or (self.graph is None
                                        and not self._capture(batch, eager_step)):
            return self._eager(eager_step, batch, fit_params)
        for static, value in zip(self.inputs, batch):
            static.copy_(value, non_blocking=True)
        self.graph.replay()
        self.replays += 1
        self.guard.replayed()
        for key, value in self.records.items():
            self.net.history.record_batch(key, value.clone())
        return {key: value.clone() if isinstance(value, torch.Tensor) else value
                for key, value in self.step.items()}

    def _begin(self, batch, key) -> None:
        """The first CUDA batch: the shapes the graph takes, its stream, the optimizers."""
        self.key = key
        self.device = batch[0].device
        self.stream = torch.cuda.Stream(device=self.device)
        self.optimizers = [getattr(self.net, name + "_") for name in self.net._optimizers]
        self.switches = [make_capturable(optimizer) for optimizer in self.optimizers]

    def _start_over(self) -> None:
        self._drop_graph()
        for switch in self.switches:
            switch.restore()
        self.switches, self.optimizers, self.key = [], [], None
        self.state = graph_state(self.net)
        self.warmup_left = WARMUP_STEPS
        self.guard = RecaptureGuard()

    def _settings(self) -> tuple:
        return _settings(self.net, self.optimizers, self.switches)

    def _checked_warmup(self, eager_step, batch):
        """The last warm-up step, under PyTorch's check for host synchronisation.

        A capture refuses a step that waits for the GPU, with an error that names the
        refusal rather than the operation; here the step runs to its end and the
        check's warning names the operation. Only this thread's synchronisation
        warnings are judged (and not shown); others are shown as they come.
        """
        previous = torch.cuda.get_sync_debug_mode()
        with _recorded_sync_warnings() as syncs:
            torch.cuda.set_sync_debug_mode("warn")
            try:
                step = self._side_stream(eager_step, batch)
            finally:
                torch.cuda.set_sync_debug_mode(previous)
        if syncs:
            self._fail(sync_reason(syncs[0]))
        return step

    @contextlib.contextmanager
    def own_optimizer_settings(self) -> Iterator[None]:
        """Inside the block, the optimizer groups have the capturable setting they were
        given (for pickling a copy mid-fit)."""
        with contextlib.ExitStack() as stack:
            for switch in self.switches:
                stack.enter_context(switch.own_settings())
            yield

    def close(self) -> dict:
        """Release the graph and give the optimizers back their own setting; the summary.

        The parameters' ``.grad`` that are the graph's gradient tensors are set to
        ``None``, which frees the graph's memory.
        """
        for switch in self.switches:
            switch.restore()
        self.switches = []
        self._drop_graph()
        return self.summary()

    def summary(self) -> dict:
        """Counts of this fit's steps: ``captures``, ``replayed``, ``eager``, ``failure``."""
        return {"captures": self.captures, "replayed": self.replays,
                "eager": self.eager_steps, "failure": self.failure}

    def _drop_graph(self) -> None:
        if self.grads is not None:
            for param, static in self.grads:
                if param.grad is static:
                    param.grad = None
        self.graph = self.inputs = self.step = self.records = self.grads = None

    def _eager(self, eager_step, batch, fit_params):
        """A step beside the graph (another batch shape) or instead of it (a failure)."""
        self.eager_steps += 1
        step = eager_step(batch, **fit_params)
        if self.grads is not None:
            # The eager step made new gradient tensors; replays write the graph's. Keep
            # ``.grad`` on the graph's, holding this step's values, so that what reads
            # it after a later replay (a callback) reads that replay's.
            for param, static in self.grads:
                if param.grad is None:
                    static.zero_()
                elif param.grad is not static:
                    static.copy_(param.grad)
                param.grad = static
        return step

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
        refusal = host_state(self.optimizers)
        if refusal is not None:
            self._fail(refusal)
            return False
        with CAPTURE_LOCK:
            return self._capture_locked(batch, eager_step)

    def _capture_locked(self, batch, eager_step) -> bool:
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
        refused = None  # what the step itself raised, if it did
        try:
            # thread_local: the capture forbids unsafe calls (a cudaMalloc, a
            # synchronisation) in this thread only, not in another thread's fit.
            with torch.cuda.graph(graph, stream=self.stream,
                                  capture_error_mode="thread_local"):
                try:
                    step = eager_step(tuple(self.inputs))
                except Exception as error:
                    refused = error
                    raise
        except Exception as error:  # noqa: BLE001 - any failure falls back to eager steps
            # A capture that CUDA refused ends before the graph restores the stream and
            # the device. set_stream also makes the stream's device current: the device
            # goes back last.
            torch.cuda.set_stream(current)
            torch.cuda.set_device(device)
            torch.cuda.synchronize(self.device)
            # The error of ending a refused capture hides the step's own.
            first = refused if refused is not None else error
            self.inputs = None
            self._fail(f"{type(first).__name__}: {first}".splitlines()[0])
            return False
        finally:
            net._graph_records = None
        self.graph, self.step, self.records = graph, step, records
        self.grads = [(param, param.grad) for optimizer in self.optimizers
                      for group in optimizer.param_groups for param in group["params"]
                      if param.grad is not None]
        self.hyper = self._settings()
        self.captures += 1
        self.guard.captured()
        return True

    def _fail(self, reason: str) -> None:
        """Train eagerly from here on, and say why."""
        self.failure = reason
        self._drop_graph()
        # Starts with WARNING_MESSAGE.
        warnings.warn(
            f"{type(self.net).__name__}(cuda_graphs=True): the training step cannot be "
            f"replayed from a CUDA graph ({reason}); training continues with eager steps.",
            RuntimeWarning, stacklevel=5,
        )
