"""Nothing lost: inputs are never modified, outputs are replaced atomically.

- ``load_deap`` and ``skkgp reproduce`` leave every input file as it was (content hash,
  size, mtime, permissions) and create nothing next to them, also when they fail.
- ``skkgp reproduce`` never wipes a folder it did not write, and ``--overwrite``
  removes only its own files.
- A writer killed with SIGKILL in the middle of a large write (a real subprocess, no
  mocks) leaves the previous file intact: readers see the old file or the whole new
  one, never a part. Checked for :mod:`skkgp._atomic` (which the result store of
  ``skkgp reproduce`` uses) and :func:`skkgp.save`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import skkgp
from skkgp import EEGClassifier
from skkgp.cli import main as cli_main
from skkgp.datasets import load_deap, write_deap_like

pytestmark = pytest.mark.filterwarnings("ignore::skkgp.pruner.ConstantPredictorWarning")


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every file under ``root``: (sha256, size, mtime_ns, mode)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path.relative_to(root))] = (digest, stat.st_size, stat.st_mtime_ns,
                                                stat.st_mode)
    return out


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A tiny DEAP-format release (1 subject, 8 trials of 2 s) in both formats."""
    root = write_deap_like(tmp_path_factory.mktemp("release") / "deap", n_subjects=1,
                           random_state=0, n_trials=8, duration=2, format="both")
    return root


def _run_cli(*argv: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            return cli_main(list(argv))
        except SystemExit as exit_:
            return int(exit_.code or 0)


# ----------------------------------------------------------------------------- inputs
def test_load_deap_never_touches_its_files(release):
    before = _snapshot(release)
    assert len(before) == 2  # s01.dat and s01.mat
    python = load_deap(release)
    matlab = load_deap(release, format="matlab", baseline="return")
    np.testing.assert_array_equal(python.X, matlab.X)
    # Writing into the returned arrays must not reach the files either.
    python.X[:] = 0
    assert _snapshot(release) == before


def test_load_deap_leaves_a_broken_release_as_it_was(tmp_path, release):
    folder = tmp_path / "data_preprocessed_python"
    folder.mkdir()
    good = (release / "data_preprocessed_python" / "s01.dat").read_bytes()
    (folder / "s01.dat").write_bytes(good)
    (folder / "s02.dat").write_bytes(good[: len(good) // 2])  # truncated download
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match="s02.dat"):
        load_deap(tmp_path)
    assert _snapshot(tmp_path) == before


def test_reproduce_never_touches_its_input_nor_foreign_files(tmp_path, release):
    before = _snapshot(release)
    out = tmp_path / "out"
    out.mkdir()
    # Results of another configuration, and a file of the user's: --overwrite may
    # replace the former but must keep the latter.
    (out / "config.json").write_text('{"format": 1, "config": {"other": "run"}}')
    (out / "notes.txt").write_text("keep me")
    status = _run_cli(
        "reproduce", "--data", str(release), "--models", "eegnet", "--methods", "umwp",
        "--recovery", "finetune", "--folds", "2", "--epochs", "1", "--recovery-epochs", "1",
        "--batch-size", "8", "--quiet", "--out", str(out), "--overwrite",
    )
    assert status == 0
    assert (out / "results.csv").is_file()
    assert (out / "notes.txt").read_text() == "keep me"
    assert _snapshot(release) == before


def test_failed_reproduce_never_touches_its_input(tmp_path, release):
    data = tmp_path / "data_preprocessed_python"
    data.mkdir()
    (data / "s01.dat").write_bytes((release / "data_preprocessed_python" / "s01.dat")
                                   .read_bytes()[:1000])
    before = _snapshot(tmp_path)
    status = _run_cli("reproduce", "--data", str(tmp_path), "--out", str(tmp_path / "out"),
                      "--quiet")
    assert status != 0
    snapshot = _snapshot(tmp_path)
    assert {k: v for k, v in snapshot.items() if not k.startswith("out")} == before


def test_reproduce_never_wipes_a_folder_it_did_not_write(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    before = _snapshot(out)
    status = _run_cli("reproduce", "--models", "eegnet", "--methods", "lfp", "--folds", "2",
                      "--out", str(out), "--quiet")
    assert status != 0
    assert _snapshot(out) == before


# ----------------------------------------------------------------------------- atomic writes
_WRITERS = {
    "skkgp._atomic.atomic_write_bytes": textwrap.dedent("""
        from skkgp._atomic import atomic_write_bytes as write
        def payload(i):
            return bytes([i % 250 + 1]) * SIZE
    """),
    # What skkgp reproduce writes its cells, config, results.csv and table.md with.
    "skkgp._atomic.atomic_write_text": textwrap.dedent("""
        from skkgp._atomic import atomic_write_text as write
        def payload(i):
            return chr(ord("a") + i % 26) * SIZE
    """),
}
_LOOP = textwrap.dedent("""
    import sys
    SIZE = int(sys.argv[2])
    {writer}
    i = 0
    while True:
        i += 1
        write(sys.argv[1], payload(i))
""")


def _kill_while_writing(script: str, target: Path, size: int, timeout: float = 60.0) -> bool:
    """Run ``script`` and SIGKILL it while a temporary file exists (before its rename).

    Returns whether the kill landed while a temporary file was there.
    """
    process = subprocess.Popen([sys.executable, "-c", script, str(target), str(size)],
                               stderr=subprocess.PIPE)
    caught = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and process.poll() is None:
            for tmp in target.parent.glob(f".{target.name}.*.tmp"):
                # The new content is on its way but not yet renamed into place:
                # exactly the moment a crash must not cost the old file.
                if tmp.exists():
                    caught = True
                    break
            if caught:
                break
        assert process.poll() is None, process.stderr.read().decode()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stderr.close()
    return caught


@pytest.mark.parametrize("writer", list(_WRITERS))
def test_killed_writer_leaves_the_previous_file_intact(tmp_path, writer):
    size = 16 << 20
    target = tmp_path / "results.csv"
    old = b"model,method,accuracy\nccnn,lfp,0.93\n" * 100
    target.write_bytes(old)
    script = _LOOP.replace("{writer}", _WRITERS[writer])
    caught = _kill_while_writing(script, target, size)
    assert caught, "the writer was never seen in the middle of a write"
    content = target.read_bytes()
    whole_new = len(content) == size and content.count(content[:1]) == size
    assert content == old or whole_new, f"partial file of {len(content)} bytes"


def test_killed_save_leaves_the_previous_model_intact(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 4, 9, 9)).astype("float32")
    y = np.array([0, 1] * 4)
    net = EEGClassifier("ccnn", max_epochs=1, batch_size=8, random_state=0).fit(X, y)
    target = tmp_path / "model.skkgp"
    skkgp.save(net, target)
    old = target.read_bytes()
    size = len(old)  # about 25 MB: long enough to be caught mid-write
    script = textwrap.dedent(f"""
        import sys, skkgp
        net = skkgp.load({str(target)!r})
        while True:
            skkgp.save(net, sys.argv[1], overwrite=True)
    """)
    caught = _kill_while_writing(script, target, size, timeout=120)
    assert caught, "save was never seen in the middle of a write"
    # Old or whole new (identical bytes but for the file's own metadata): it loads.
    loaded = skkgp.load(target)
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))


def test_failed_save_keeps_the_previous_model(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 4, 16)).astype("float32")
    y = np.array([0, 1] * 4)
    net = EEGClassifier("eegnet", max_epochs=1, random_state=0).fit(X, y)
    target = tmp_path / "model.skkgp"
    skkgp.save(net, target)
    old = target.read_bytes()
    net.set_params(criterion=lambda: torch.nn.CrossEntropyLoss())
    with pytest.raises(ValueError, match="criterion"):
        skkgp.save(net, target, overwrite=True)
    assert target.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.skkgp"]


def test_atomic_writer_refuses_to_replace_without_overwrite(tmp_path):
    from skkgp._atomic import atomic_write_bytes, atomic_write_text

    target = tmp_path / "a.txt"
    atomic_write_text(target, "first")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        atomic_write_bytes(target, b"second", overwrite=False)
    assert target.read_text() == "first"
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert os.listdir(tmp_path) == ["a.txt"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_atomic_writer_gives_ordinary_permissions(tmp_path):
    # Results are shared: a new file gets what open() would give (0o666 minus the
    # umask), not the owner-only mode of a temporary file; a replaced file keeps its own.
    from skkgp._atomic import atomic_write_text

    umask = os.umask(0o022)
    try:
        new = tmp_path / "new.txt"
        atomic_write_text(new, "x")
        assert stat.S_IMODE(new.stat().st_mode) == 0o644
        kept = tmp_path / "kept.txt"
        kept.write_text("old")
        kept.chmod(0o640)
        atomic_write_text(kept, "new")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    finally:
        os.umask(umask)


def test_reproduce_writes_through_the_atomic_writer():
    # One atomic writer for the whole project: the result store and the final tables
    # of skkgp reproduce use the one tested above.
    from skkgp._atomic import atomic_write_text
    from skkgp.reproduce import command, store

    assert store.atomic_write_text is atomic_write_text
    assert command.atomic_write_text is atomic_write_text
