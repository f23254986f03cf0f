"""Tests of the ``skkgp`` command line and ``skkgp reproduce`` (options, outputs, resume)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import skkgp
from skkgp.cli import main
from skkgp.reproduce.config import Cell, ReproduceConfig
from skkgp.reproduce.data import DataSpec, fold_indices, load_windows
from skkgp.reproduce.report import (
    LEGEND,
    RESULT_COLUMNS,
    TABLE_COLUMNS,
    format_table,
    results_frame,
    summarize,
)
from skkgp.reproduce.store import ResultStore

# The smallest run that still exercises every step: one raw model, 2 folds, 1 epoch,
# a few short simulated trials.
TINY = [
    "reproduce", "--models", "eegnet", "--methods", "lfp", "--recovery", "finetune",
    "--folds", "2", "--epochs", "1", "--recovery-epochs", "1", "--n-subjects", "2",
    "--n-trials", "6", "--trial-seconds", "3", "--batch-size", "16", "--quiet",
]


def _run(argv, capsys):
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One finished tiny run, shared by the tests that read its outputs."""
    out = tmp_path_factory.mktemp("tiny") / "out"
    import io
    from contextlib import redirect_stderr, redirect_stdout

    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        status = main([*TINY, "--out", str(out)])
    return status, stdout.getvalue(), stderr.getvalue(), out


# ---------------------------------------------------------------- outputs
def test_tiny_run_prints_table_with_every_column(tiny_run):
    status, stdout, _, _ = tiny_run
    assert status == 0
    header = stdout.splitlines()[0]
    for column in TABLE_COLUMNS:
        assert column in header
    row = stdout.splitlines()[2]
    assert row.split()[:3] == ["eegnet", "lfp", "finetune"]
    assert "±" in row and "%" in row


def test_tiny_run_writes_results_csv(tiny_run):
    _, _, _, out = tiny_run
    frame = pd.read_csv(out / "results.csv")
    assert list(frame.columns) == list(RESULT_COLUMNS)
    assert len(frame) == 2  # one row per (cell, seed, fold)
    assert sorted(frame["fold"]) == [0, 1]
    assert (frame["seed"] == 0).all()
    for stage in ("origin", "baseline", "proposed"):
        accuracy = frame[f"{stage}_accuracy"]
        assert accuracy.between(0, 1).all()
    # Pruning at 0.5 makes the network smaller, and FLOPs are twice the MACs.
    assert (frame["params_after"] < frame["params_before"]).all()
    assert (frame["flops_before"] == 2 * frame["macs_before"]).all()
    assert (frame["flops_reduction"] > 0).all()
    # The paper's counts beside skkgp's: same network, more terms in its FLOPs.
    assert (frame["paper_params_after"] < frame["paper_params_before"]).all()
    assert (frame["paper_flops_after"] < frame["paper_flops_before"]).all()
    assert (frame["paper_flops_before"] > frame["flops_before"]).all()
    assert frame["n_train"].add(frame["n_test"]).nunique() == 1
    assert frame["origin_train_accuracy"].between(0, 1).all()
    assert (frame["origin_seconds"] > 0).all() and (frame["seconds"] > 0).all()


def test_tiny_run_writes_markdown_table_and_plots(tiny_run):
    _, _, _, out = tiny_run
    markdown = (out / "table.md").read_text()
    assert "| eegnet | lfp    | finetune |" in markdown
    assert LEGEND in markdown
    assert "- eegnet lfp finetune: proposed vs baseline:" in markdown
    comparison = pd.read_csv(out / "comparison.csv")
    # The columns the user guide lists for the file.
    assert list(comparison.columns) == [
        "model", "method", "recovery", "metric", "n_pairs", "n_excluded", "mean_difference",
        "median_difference", "ci_low", "ci_high", "confidence", "wilcoxon_p", "ttest_p",
        "n_up", "n_down", "n_tied", "n_boot", "direction"]
    assert list(comparison["metric"]) == ["accuracy", "region_share"]
    assert (comparison["n_pairs"] == 2).all() and (comparison["n_boot"] == 10_000).all()
    # The table's "P - B" column is the file's accuracy row.
    accuracy = comparison.iloc[0]
    assert (f"{100 * accuracy.mean_difference:+.1f} [{100 * accuracy.ci_low:+.1f}, "
            f"{100 * accuracy.ci_high:+.1f}]") in markdown
    for name in ("accuracy.png", "evidence-eegnet-lfp-finetune.png"):
        png = (out / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000


# ---------------------------------------------------------------- --ratios
RATIOS = [*TINY, "--methods", "lfp", "kgi", "--ratios", "0.7", "0.3", "--seeds", "0", "1"]


@pytest.fixture(scope="module")
def ratios_run(tmp_path_factory):
    """A finished tiny run of two methods at two ratios over two seeds."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    out = tmp_path_factory.mktemp("ratios") / "out"
    with redirect_stdout(io.StringIO()) as stdout, redirect_stderr(io.StringIO()) as stderr:
        status = main([*RATIOS, "--out", str(out)])
    assert status == 0, stderr.getvalue()
    return stdout.getvalue(), out


def test_ratios_give_a_row_per_ratio_and_the_cost_curves(ratios_run):
    stdout, out = ratios_run
    png = (out / "pareto.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    rows = [line.split()[:4] for line in stdout.splitlines()[2:6]]
    # Table order: model, method, recovery, then the ratios ascending.
    assert rows == [["eegnet", method, "@", ratio] for method in ("lfp", "kgi")
                    for ratio in ("0.3", "0.7")]
    for method in ("lfp", "kgi"):
        for ratio in ("0.3", "0.7"):
            assert f"eegnet {method} finetune @ {ratio}: proposed vs baseline:" in stdout
    assert "Evidence: eegnet input x gradient." in stdout
    frame = pd.read_csv(out / "results.csv")
    assert len(frame) == 2 * 2 * 2 * 2  # methods x ratios x seeds x folds
    assert sorted(set(frame["ratio"])) == [0.3, 0.7]
    assert (frame["evidence_kind"] == "input_x_gradient").all()
    # More pruning keeps fewer MACs, the x axis of the curves; one origin serves all.
    flops = frame.groupby(["method", "ratio"])["flops_after"].mean()
    for method in ("lfp", "kgi"):
        assert flops[method, 0.7] < flops[method, 0.3] < frame["flops_before"].min()
    assert frame.groupby(["seed", "fold"])["random_state"].nunique().eq(1).all()
    assert frame.groupby(["seed", "fold"])["origin_accuracy"].nunique().eq(1).all()
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["ratios"] == [0.3, 0.7] and "prune_ratio" not in config
    assert (out / "cells" / "eegnet-kgi-finetune-r0.3-seed1-fold0.json").exists()


def test_ratios_compare_each_cell_at_each_ratio_over_the_seeds(ratios_run):
    stdout, out = ratios_run
    comparison = pd.read_csv(out / "comparison.csv")
    accuracy = comparison[comparison["metric"] == "accuracy"]
    assert list(zip(accuracy["method"], accuracy["ratio"], strict=True)) == [
        ("lfp", 0.3), ("lfp", 0.7), ("kgi", 0.3), ("kgi", 0.7)]
    assert (comparison["n_pairs"] == 4).all()  # 2 seeds x 2 folds
    assert "of 4 pairs" in stdout
    markdown = (out / "table.md").read_text()
    assert "prune ratios 0.3, 0.7" in markdown and "| eegnet | kgi @ 0.7 |" in markdown
    png = (out / "evidence-eegnet-lfp-finetune-r0.7.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_ratios_resume_and_exclude_prune_ratio(ratios_run, capsys):
    stdout, out = ratios_run
    status, again, _ = _run([*RATIOS, "--out", str(out)], capsys)
    assert status == 0 and again == stdout
    assert "computed 0 and reused 16 of 16" in (out / "run.log").read_text().splitlines()[-1]
    status, _, stderr = _run([*RATIOS, "--prune-ratio", "0.5", "--out", str(out / "x")], capsys)
    assert status == 2
    assert "--ratios 0.7 0.3 and --prune-ratio 0.5 exclude each other" in stderr
    assert not (out / "x").exists()


@pytest.mark.parametrize("n_classes", [2, 3])
def test_accuracy_plot_draws_chance_for_the_data_s_classes(tiny_run, n_classes, tmp_path):
    import matplotlib.pyplot as plt

    from skkgp.reproduce.plots import _accuracy_figure, plot_accuracy

    frame = pd.read_csv(tiny_run[3] / "results.csv")
    summary = summarize(frame, [Cell("eegnet", "lfp", "finetune")])
    fig = _accuracy_figure(summary, n_classes)
    try:
        (chance,) = [line for line in fig.axes[0].lines
                     if line.get_label() == f"chance ({n_classes} classes)"]
        assert list(chance.get_ydata()) == pytest.approx([100 / n_classes] * 2)
    finally:
        plt.close(fig)
    png = plot_accuracy(summary, tmp_path / "a.png", n_classes=n_classes).read_bytes()
    assert png.startswith(b"\x89PNG")


def test_pareto_plot_marks_a_model_whose_origins_all_collapsed(tmp_path):
    from skkgp.reproduce.plots import plot_pareto

    rows = [{"model": model, "method": "lfp", "recovery": "finetune", "ratio": ratio,
             "seed": seed, "fold": fold, "random_state": 10 * seed + fold,
             "origin_constant": model == "ccnn", "flops_before": 1000,
             "flops_after": 1000 * (1 - ratio), "origin_accuracy": 0.7,
             "baseline_accuracy": 0.6 - ratio / 10, "proposed_accuracy": 0.62 - ratio / 10}
            for model in ("eegnet", "ccnn") for ratio in (0.3, 0.7) for seed in (0, 1)
            for fold in (0, 1)]
    path = plot_pareto(pd.DataFrame(rows), tmp_path / "pareto.png")
    png = path.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000


def test_evidence_plots_leave_out_collapsed_origins_as_the_table_does():
    from skkgp.reproduce.command import _mean_evidence

    cell = Cell("eegnet", "lfp", "finetune")

    def result(share: float, collapsed: bool) -> dict:
        shares = [share, 1 - share]
        return {"origin_constant": collapsed, "evidence": {
            "ch_names": ["Fp1", "O1"], "region": [True, False], "origin": shares,
            "baseline": shares, "proposed": shares}}

    mean = _mean_evidence([(cell, result(0.8, False)), (cell, result(0.2, True)),
                           (cell, result(0.6, False))], cell)
    for name in ("origin", "baseline", "proposed"):
        assert mean[name] == pytest.approx([0.7, 0.3])
    # Every origin collapsed: no plot, as the table has no accuracy.
    assert _mean_evidence([(cell, result(0.2, True))], cell) is None


def test_ratio_cells_and_identity():
    config = ReproduceConfig(models=("eegnet",), methods=("lfp", "taylor"), ratios=(0.3, 0.7))
    cells = config.cells()
    assert [c.key for c in cells] == [
        "eegnet-lfp-finetune-r0.3", "eegnet-lfp-finetune-r0.7",
        "eegnet-taylor-finetune-r0.3", "eegnet-taylor-finetune-r0.7"]
    assert [config.ratio_of(c) for c in cells] == [0.3, 0.7, 0.3, 0.7]
    # Without --ratios: the cells, files and identity of runs from before it existed.
    plain = ReproduceConfig(models=("eegnet",))
    assert plain.cells() == [Cell("eegnet", "lfp", "finetune")]
    assert plain.cells()[0].key == "eegnet-lfp-finetune"
    assert plain.ratio_of(plain.cells()[0]) == plain.prune_ratio
    assert "ratios" not in plain.identity() and plain.identity()["prune_ratio"] == 0.5


def test_ratios_that_would_share_result_files_are_refused(tmp_path, capsys):
    # Result files name a ratio by 6 significant digits.
    status, _, stderr = _run([*TINY, "--out", str(tmp_path / "out"), "--ratios", "0.3",
                              "0.5", "0.5000001"], capsys)
    assert status == 2
    assert "--ratios 0.5 and 0.5000001 are equal to 6 significant digits" in stderr
    assert not (tmp_path / "out").exists()


def test_close_ratios_keep_their_own_rows():
    cells = [Cell("eegnet", "lfp", "finetune", ratio) for ratio in (0.500001, 0.500002)]
    rows = [{"model": "eegnet", "method": "lfp", "recovery": "finetune", "ratio": ratio,
             "seed": 0, "fold": fold, "origin_accuracy": 0.9, "baseline_accuracy": accuracy,
             "proposed_accuracy": accuracy, "baseline_region_share": 0.3,
             "proposed_region_share": 0.3, "origin_constant": False}
            for ratio, accuracy in ((0.500001, 0.6), (0.500002, 0.8)) for fold in range(2)]
    summary = summarize(results_frame(rows), cells)
    assert list(summary["results"]) == [2, 2]
    assert list(summary["baseline_mean"]) == pytest.approx([0.6, 0.8])


def test_methods_accept_the_importance_criteria():
    from skkgp.cli import build_parser, config_from_args

    args = build_parser().parse_args(["reproduce", "--methods", "taylor,fpgm", "lamp", "kgi"])
    assert config_from_args(args).methods == ("taylor", "fpgm", "lamp", "kgi")
    # They are not Table 1's: --full's grid keeps its four methods.
    full = config_from_args(build_parser().parse_args(["reproduce", "--full", "--data",
                                                       "synthetic"]))
    assert full.methods == ("lfp", "nsfp", "umwp", "sfp")


def test_tiny_run_stores_every_fold_with_evidence(tiny_run):
    _, _, _, out = tiny_run
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["models"] == ["eegnet"] and config["folds"] == 2
    for fold in range(2):
        result = json.loads((out / "cells" / f"eegnet-lfp-finetune-seed0-fold{fold}.json").read_text())
        evidence = result["evidence"]
        assert len(evidence["ch_names"]) == 32
        for stage in ("origin", "baseline", "proposed"):
            assert np.isclose(sum(evidence[stage]), 1.0)
            share = np.asarray(evidence[stage])[np.asarray(evidence["region"])].sum()
            assert np.isclose(share, result[f"{stage}_region_share"])


def test_same_command_again_recomputes_nothing(tiny_run, capsys):
    _, first_stdout, _, out = tiny_run
    cell_file = out / "cells" / "eegnet-lfp-finetune-seed0-fold0.json"
    before = cell_file.stat().st_mtime_ns, cell_file.read_bytes()
    status, stdout, _ = _run([*TINY, "--out", str(out)], capsys)
    assert status == 0
    assert stdout == first_stdout
    assert (cell_file.stat().st_mtime_ns, cell_file.read_bytes()) == before
    assert "computed 0 and reused 2 of 2" in (out / "run.log").read_text().splitlines()[-1]


def test_results_stored_without_ratio_or_evidence_kind_still_resume(tiny_run, tmp_path,
                                                                    capsys):
    import shutil

    _, first_stdout, _, first = tiny_run
    out = tmp_path / "out"
    shutil.copytree(first, out)
    for path in (out / "cells").glob("*.json"):
        result = json.loads(path.read_text())
        del result["ratio"], result["evidence_kind"]
        path.write_text(json.dumps(result))
    status, stdout, _ = _run([*TINY, "--out", str(out)], capsys)
    assert status == 0 and stdout == first_stdout
    assert "computed 0 and reused 2 of 2" in (out / "run.log").read_text().splitlines()[-1]
    frame = pd.read_csv(out / "results.csv")
    assert (frame["ratio"] == 0.5).all() and (frame["evidence_kind"] == "input_x_gradient").all()


def test_other_configuration_in_out_is_refused(tiny_run, capsys):
    _, _, _, out = tiny_run
    before = {p.name: p.read_bytes() for p in (out / "cells").iterdir()}
    status, _, stderr = _run([*TINY, "--out", str(out), "--prune-ratio", "0.3"], capsys)
    assert status == 2
    assert "different configuration" in stderr
    assert "prune_ratio: 0.5 there, 0.3 now" in stderr
    assert "--overwrite" in stderr
    assert {p.name: p.read_bytes() for p in (out / "cells").iterdir()} == before


def test_foreign_folder_is_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    status, _, stderr = _run([*TINY, "--out", str(tmp_path)], capsys)
    assert status == 2
    assert "not empty" in stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_pending_results_are_grouped_by_the_origin_they_prune():
    from skkgp.reproduce.runner import group_pending

    config = ReproduceConfig(models=("fbccnn", "eegnet"), methods=("lfp", "nsfp", "umwp"),
                             recoveries=("finetune", "scratch"), folds=2)
    cells = config.cells()
    # A resumed run: fold 0 of fbccnn's lfp cells is already there.
    done = {(Cell("fbccnn", "lfp", "finetune"), 0), (Cell("fbccnn", "lfp", "scratch"), 0)}
    pending = [(cell, fold) for cell in cells for fold in range(2) if (cell, fold) not in done]
    groups = group_pending(config, pending)
    # One origin per (model, family, fold): plain (lfp, umwp) and nsfp, 2 models, 2 folds.
    assert len(groups) == 8
    assert sorted(c for g in groups for c in ((cell, g.fold) for cell in g.cells)) == sorted(
        pending)
    by_key = {(g.model, g.family, g.fold): g for g in groups}
    assert [c.key for c in by_key["fbccnn", "plain", 0].cells] == [
        "fbccnn-umwp-finetune", "fbccnn-umwp-scratch"]
    assert len(by_key["fbccnn", "plain", 1].cells) == 4
    assert {c.method for c in by_key["eegnet", "nsfp", 0].cells} == {"nsfp"}
    # The seed depends on the origin only, never on which cells are missing.
    alone = group_pending(config, [(Cell("fbccnn", "lfp", "finetune"), 0)])
    assert alone[0].seed == by_key["fbccnn", "plain", 0].seed
    assert len({g.seed for g in groups}) == 8
    assert group_pending(config, []) == []


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--models", "resnet"], "unknown model 'resnet'"),
        (["--methods", "magic"], "unknown method 'magic'"),
        (["--recovery", "later"], "unknown recovery 'later'"),
        (["--prune-ratio", "1.5"], "out of range"),
        (["--sample-weighting", "2"], "out of range"),
        (["--folds", "1"], "out of range"),
        (["--epochs", "two"], "not a valid int"),
        (["--protocol", "random"], "invalid choice"),
        (["--region", "nowhere"], "nowhere"),
        (["--seeds", "-1"], "out of range"),
        (["--seeds", "one"], "not a valid int"),
        (["--seeds"], "expected at least one argument"),
    ],
)
def test_bad_options_exit_2(extra, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main([*TINY, "--out", str(tmp_path / "out"), *extra])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--models", "ccnn", "--methods", "nsfp"], "ccnn-nsfp"),
        (["--data", "/no/such/deap"], "no such folder"),
        (["--full"], "--full reproduces the paper on DEAP"),
        (["--folds", "13"], "only 12 trials"),
        (["--device", "cuda:7"], "--device"),
        (["--device", "mps"], "--device 'mps' is not usable"),
        (["--device", "meta"], "--device 'meta' is not usable"),
        (["--device", "cpu:1"], "torch has one CPU device"),
        (["--device", "cpu:1", "--scheduler", "tcp://127.0.0.1:1"], "one CPU device"),
        (["--cuda-graphs"], "--cuda-graphs needs --device cuda"),
        (["--umwp-scope", "all"], "--umwp-scope all applies to umwp only, which --methods "
                                  "(lfp) leaves out"),
        (["--dry-run", "--scheduler", "tcp://127.0.0.1:8786"],
         "it cannot time the workers of a --scheduler cluster"),
    ],
)
def test_bad_runs_exit_2_with_a_message(extra, message, tmp_path, capsys):
    status, _, stderr = _run([*TINY, "--out", str(tmp_path / "out"), *extra], capsys)
    assert status == 2
    assert stderr.startswith("skkgp reproduce: error:")
    assert message in stderr
    assert not (tmp_path / "out").exists()


def test_device_with_a_scheduler_is_the_cluster_s_to_check():
    from skkgp.cli import build_parser, config_from_args

    # The workers of the cluster train: this machine needs no GPU for --device cuda.
    args = build_parser().parse_args(
        [*TINY, "--device", "cuda", "--scheduler", "tcp://127.0.0.1:8786"])
    assert config_from_args(args).device == "cuda"


def test_unreachable_scheduler_exits_2_and_leaves_out_as_it_was(tmp_path, capsys):
    import dask

    out = tmp_path / "out"
    ResultStore(out).open(ReproduceConfig(epochs=7))
    (out / "cells" / "eegnet-lfp-finetune-seed0-fold0.json").write_text("{}\n")
    (out / "table.md").write_text("an earlier table\n")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        status, _, stderr = _run([*TINY, "--out", str(out), "--overwrite", "--scheduler",
                                  "tcp://127.0.0.1:1"], capsys)
    assert status == 2
    assert "--scheduler tcp://127.0.0.1:1: no Dask scheduler" in stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_cuda_graphs_change_how_a_run_trains_not_what_it_computes():
    from skkgp.reproduce.runner import OriginGroup, _origin

    graphed = ReproduceConfig(device="cuda", cuda_graphs=True)
    # Results of a run with and without graphs are the same results (resumable).
    assert graphed.identity() == ReproduceConfig(device="cuda").identity()
    group = OriginGroup(graphed, "ccnn", "lfp", 0, (Cell("ccnn", "lfp", "finetune"),))
    origin = _origin(group)
    assert origin.get_params()["cuda_graphs"] is True
    assert origin.get_params()["device"] == "cuda"


def test_models_accept_commas_and_spaces():
    from skkgp.cli import build_parser, config_from_args

    args = build_parser().parse_args(["reproduce", "--models", "ccnn,eegnet", "tsception"])
    config = config_from_args(args)
    assert config.models == ("ccnn", "eegnet", "tsception")
    assert config.methods == ("lfp",) and config.recoveries == ("finetune",)


def test_full_grid_leaves_out_only_pairs_that_do_not_apply():
    from skkgp.cli import build_parser, config_from_args

    args = build_parser().parse_args(["reproduce", "--full", "--data", "synthetic"])
    config = config_from_args(args)
    assert config.folds == 10 and config.protocol == "paper"
    assert "ccnn-nsfp" in config.skipped and "fbccnn-nsfp" not in config.skipped
    cells = config.cells()
    assert Cell("fbccnn", "nsfp", "scratch") in cells
    assert Cell("ccnn", "nsfp", "finetune") not in cells
    assert len(cells) == 2 * (4 * len(config.models) - len(config.skipped))
    # The paper's UMWP ranks conv weights only.
    assert config.umwp_scope == "conv" and config.identity()["umwp_scope"] == "conv"
    assert config.method_options("umwp") == {"scope": "conv"}
    assert config.method_options("lfp") is None


def test_umwp_scope_option():
    from skkgp.cli import build_parser, config_from_args

    parser = build_parser()
    config = config_from_args(parser.parse_args(
        ["reproduce", "--methods", "umwp", "--umwp-scope", "all"]))
    assert config.umwp_scope == "all" and config.identity()["umwp_scope"] == "all"
    assert config.method_options("umwp") == {"scope": "all"}
    # A run without umwp means the same whatever the scope: its identity leaves it out.
    assert "umwp_scope" not in ReproduceConfig(umwp_scope="all").identity()
    with pytest.raises(SystemExit):
        parser.parse_args(["reproduce", "--umwp-scope", "linear"])


def test_table_shows_both_conventions():
    rows = []
    for fold in range(2):
        rows.append({
            "model": "ccnn", "method": "umwp", "method_options": "scope=conv",
            "recovery": "finetune", "fold": fold, "origin_accuracy": 0.8,
            "baseline_accuracy": 0.7, "proposed_accuracy": 0.75, "params_before": 6_233_602,
            # umwp masks: the stored parameters stay, 1.48 % of them are zero.
            "params_after": 6_233_602, "nonzero_params_after": 6_141_442,
            "flops_before": 159_920_128, "flops_after": 144_990_208,
            "params_reduction": 1.48, "flops_reduction": 9.34,
            "paper_params_before": 6_233_602, "paper_params_after": 6_141_442,
            "paper_flops_before": 160_004_098, "paper_flops_after": 145_074_178,
            "paper_params_reduction": 1.48, "paper_flops_reduction": 9.33,
            "baseline_region_share": 0.3, "proposed_region_share": 0.4,
            "origin_constant": False,
        })
    # A result stored before the paper's counts existed.
    old = {k: v for k, v in rows[0].items() if not k.startswith("paper_")}
    old.update(method="lfp", method_options=None)
    cells = [Cell("ccnn", "umwp", "finetune"), Cell("ccnn", "lfp", "finetune")]
    table = format_table(summarize(results_frame([*rows, old]), cells))
    header, _, umwp, lfp = table.splitlines()
    assert "Params (skkgp)" in header and "FLOPs (paper's count)" in header
    assert "umwp (scope=conv)" in umwp
    assert "6.23M → 6.14M (-1.5%)" in umwp and "160M → 145M (-9.3%)" in umwp
    assert lfp.count("n/a") >= 2
    # skkgp's count for umwp is of the non-zero parameters, as its reduction and FLOPs
    # are; for a structural method, of the parameters left.
    markdown = format_table(summarize(results_frame([*rows, old]), cells), markdown=True)
    columns = [[c.strip() for c in line.split("|")[1:-1]] for line in markdown.splitlines()]
    umwp_row = dict(zip(columns[0], columns[2], strict=True))
    lfp_row = dict(zip(columns[0], columns[3], strict=True))
    assert umwp_row["Params (skkgp)"] == "6.23M → 6.14M"
    assert umwp_row["Params red."] == "1.5%"
    assert lfp_row["Params (skkgp)"] == "6.23M → 6.23M"


# ---------------------------------------------------------------- protocols and report
def _folds(protocol, folds):
    config = ReproduceConfig(protocol=protocol, folds=folds, n_subjects=3, n_trials=4,
                             trial_seconds=3)
    bunch = load_windows(DataSpec.from_config(config))
    return bunch, [fold_indices(config, bunch, k) for k in range(folds)]


@pytest.mark.parametrize(("protocol", "key", "shared"), [
    ("trial", "trials", False), ("subject", "groups", False), ("paper", "trials", True),
])
def test_protocols_split_by_their_unit(protocol, key, shared):
    bunch, folds = _folds(protocol, 3)
    covered = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(covered), np.arange(len(bunch.y)))
    groups = np.asarray(bunch[key])
    overlap = [np.intersect1d(groups[train], groups[test]).size for train, test in folds]
    # Only the paper's pooled KFold puts windows of one trial on both sides.
    assert (max(overlap) > 0) == shared


def test_shortcut_scenario_trains_where_the_shortcut_holds_and_tests_where_it_is_reversed():
    config = ReproduceConfig(scenario="shortcut", folds=3, n_subjects=2, n_trials=8,
                             trial_seconds=3)
    bunch = load_windows(DataSpec.from_config(config))
    plain = load_windows(DataSpec.from_config(config.replace(scenario="default")))
    assert "shortcut" not in plain
    tested = []
    for fold in range(3):
        train, test = fold_indices(config, bunch, fold)
        assert (bunch.shortcut[train] == 1).all() and (bunch.shortcut[test] == -1).all()
        assert not np.intersect1d(bunch.trials[train], bunch.trials[test]).size
        tested.append(test)
    # Every held-out (-1) window is tested once, no shortcut (+1) window ever.
    covered = np.sort(np.concatenate(tested))
    assert np.array_equal(covered, np.flatnonzero(bunch.shortcut == -1))
    assert "scenario" in config.identity()
    assert "scenario" not in config.replace(data="/deap").identity()


def test_scenario_needs_the_simulation_and_a_known_name(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([*TINY, "--scenario", "decoy", "--out", str(tmp_path / "a")])
    assert "invalid choice: 'decoy'" in capsys.readouterr().err
    (tmp_path / "deap").mkdir()
    status, _, stderr = _run([*TINY[:TINY.index("--n-subjects")], "--data",
                              str(tmp_path / "deap"), "--scenario", "shortcut", "--out",
                              str(tmp_path / "b")], capsys)
    assert status == 2 and "--scenario applies to --data synthetic only" in stderr


def test_reproduce_scenarios_are_the_simulations():
    from skkgp.datasets import SCENARIOS
    from skkgp.reproduce.config import SCENARIOS as CLI_SCENARIOS

    assert CLI_SCENARIOS == SCENARIOS


def test_paper_protocol_warns_about_leakage(tmp_path, capsys):
    status, _, stderr = _run([*TINY, "--protocol", "paper", "--out", str(tmp_path / "out")],
                             capsys)
    assert status == 0
    assert "windows of one trial fall on both sides of the split" in stderr
    assert "**Warning:**" in (tmp_path / "out" / "table.md").read_text()


def test_console_table_has_a_legend_and_a_verdict_per_cell(tiny_run):
    _, stdout, _, _ = tiny_run
    assert "Accuracy: held-out, mean ± sample std over (seed, fold) pairs" in stdout
    verdicts = [line for line in stdout.splitlines() if "proposed vs baseline:" in line]
    assert len(verdicts) == 1
    assert verdicts[0].startswith("eegnet lfp finetune: proposed vs baseline: ")
    assert verdicts[0].endswith(": too few pairs to tell")  # 2 pairs
    assert "of 2 pairs" in verdicts[0]


def test_more_seeds_reuse_the_finished_ones(tiny_run, tmp_path, capsys):
    _, _, _, first = tiny_run
    out = tmp_path / "out"
    # A run over seeds 0 and 1 into a copy of the one-seed folder computes only seed 1.
    import shutil

    shutil.copytree(first, out)
    before = {p.name: p.read_bytes() for p in (out / "cells").iterdir()}
    status, stdout, _ = _run([*TINY, "--out", str(out), "--seeds", "0", "1"], capsys)
    assert status == 0
    assert "computed 2 and reused 2 of 4" in (out / "run.log").read_text().splitlines()[-1]
    for name, content in before.items():
        assert (out / "cells" / name).read_bytes() == content
    frame = pd.read_csv(out / "results.csv")
    assert sorted(zip(frame["seed"], frame["fold"])) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    # Seed 1 draws other data, so its origins differ from seed 0's.
    assert frame.groupby("seed")["random_state"].apply(set).map(len).sum() == 4
    assert "of 4 pairs" in stdout

    # The same command again computes nothing and prints the same table.
    status, again, _ = _run([*TINY, "--out", str(out), "--seeds", "0", "1"], capsys)
    assert status == 0 and again == stdout
    assert "computed 0 and reused 4 of 4" in (out / "run.log").read_text().splitlines()[-1]


def test_seeds_are_checked_and_deduplicated():
    from skkgp.cli import build_parser, config_from_args

    args = build_parser().parse_args(["reproduce", "--seeds", "3", "1", "3"])
    config = config_from_args(args)
    assert config.seeds == (3, 1) and config.seed == 3
    assert "seed" not in config.identity() and "seeds" not in config.identity()
    assert config_from_args(build_parser().parse_args(["reproduce", "--seed", "7"])).seeds == (7,)


def test_store_refuses_a_file_as_out(tmp_path):
    from skkgp.reproduce.config import ConfigError

    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        ResultStore(target).open(ReproduceConfig())


# ---------------------------------------------------------------- kill -9 and resume
def test_killed_run_resumes_without_recomputing(tmp_path):
    out = tmp_path / "out"
    argv = [*TINY, "--folds", "4", "--epochs", "2", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "skkgp", *argv], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cells = out / "cells"
    deadline = time.monotonic() + 90
    try:
        while not (cells.exists() and list(cells.glob("*.json"))):
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "no result appeared in 90 s"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    finished = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in cells.glob("*.json")}
    assert 1 <= len(finished) < 4
    assert not list(cells.glob("*.tmp"))  # no half-written result under a final name
    for _, content in finished.values():
        json.loads(content)  # every file present is whole

    result = subprocess.run([sys.executable, "-m", "skkgp", *argv], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name, stamp in finished.items():
        path = cells / name
        assert (path.stat().st_mtime_ns, path.read_bytes()) == stamp
    log = (out / "run.log").read_text().splitlines()[-1]
    assert f"computed {4 - len(finished)} and reused {len(finished)} of 4" in log
    frame = pd.read_csv(out / "results.csv")
    assert sorted(frame["fold"]) == [0, 1, 2, 3]
    assert Path(out / "table.md").exists()


# ---------------------------------------------------------------- Ctrl-C
def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(("stage", "epochs", "recovery_epochs"), [
    ("origin", "150", "1"),
    ("baseline recovery", "1", "150"),
])
def test_ctrl_c_during_a_fit_saves_no_result_and_exits_130(tmp_path, stage, epochs,
                                                            recovery_epochs):
    # skorch ends a fit early on KeyboardInterrupt and returns as if it had finished:
    # the run must stop instead of storing an under-trained cell.
    out = tmp_path / "out"
    argv = [*TINY, "--epochs", epochs, "--recovery-epochs", recovery_epochs, "--threads", "1",
            "--out", str(out)]
    argv.remove("--quiet")  # the epoch bars say which fit is running
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "w") as stderr:
        # A session of its own: SIGINT goes to its process group, as a terminal's Ctrl-C.
        # SIGINT's default action, as in a terminal's foreground job: run from a shell's
        # background job (`pytest ... &`), the test would pass on the ignored SIGINT that
        # such jobs inherit, and Python keeps ignoring it.
        process = subprocess.Popen([sys.executable, "-m", "skkgp", *argv], env=env,
                                   stdout=subprocess.DEVNULL, stderr=stderr,
                                   start_new_session=True, preexec_fn=_default_sigint)
    try:
        deadline = time.monotonic() + 120
        # A few epochs of the first fit of that stage have run.
        running = re.compile(rf"fold 0 {stage}:.*\| [2-9]\d*/150 ")
        while not running.search(stderr_path.read_text()):
            assert process.poll() is None, stderr_path.read_text()
            assert time.monotonic() < deadline, "the fit did not start in 120 s"
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    text = stderr_path.read_text()
    assert process.returncode == 130, text
    assert "interrupted" in text
    assert not list((out / "cells").glob("*.json"))
    if stage != "origin":
        return
    result = subprocess.run([sys.executable, "-m", "skkgp", *argv, "--quiet"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    log = (out / "run.log").read_text().splitlines()[-1]
    assert "computed 2 and reused 0 of 2" in log


def test_deap_folder_runs_a_grid_model(tmp_path, capsys):
    from skkgp.datasets import write_deap_like

    write_deap_like(tmp_path / "deap", n_subjects=2, n_trials=6, duration=3.0, random_state=0)
    argv = [*TINY[:TINY.index("--n-subjects")], "--batch-size", "16", "--quiet",
            "--data", str(tmp_path / "deap"), "--models", "ccnn", "--out", str(tmp_path / "out")]
    status, stdout, stderr = _run(argv, capsys)
    assert status == 0, stderr
    assert stdout.splitlines()[2].split()[:3] == ["ccnn", "lfp", "finetune"]
    config = json.loads((tmp_path / "out" / "config.json").read_text())["config"]
    assert config["data"] == str(tmp_path / "deap")
    assert "n_trials" not in config
    frame = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(frame) == 2 and (frame["n_train"] + frame["n_test"] == 36).all()
    # Options of the simulation make no sense with real data.
    status, _, stderr = _run([*argv, "--n-trials", "5"], capsys)
    assert status == 2 and "--n-trials applies to --data synthetic only" in stderr


def test_subject_protocol_defaults_to_leave_one_subject_out():
    from skkgp.cli import build_parser, config_from_args
    from skkgp.reproduce.data import n_folds

    args = build_parser().parse_args(["reproduce", "--protocol", "subject", "--n-subjects", "3"])
    config = config_from_args(args)
    assert config.folds is None
    bunch = load_windows(DataSpec.from_config(config))
    assert n_folds(config, bunch) == 3
    for fold in range(3):
        train, test = fold_indices(config.replace(folds=3), bunch, fold)
        assert np.unique(bunch.groups[test]).size == 1  # one subject held out
        assert np.unique(bunch.groups[train]).size == 2


def test_subject_protocol_with_one_subject_says_it_needs_two(tmp_path, capsys):
    argv = [*TINY, "--protocol", "subject", "--n-subjects", "1", "--out", str(tmp_path / "out")]
    del argv[argv.index("--folds"):argv.index("--folds") + 2]  # one fold per subject
    status, _, stderr = _run(argv, capsys)
    assert status == 2
    assert "--protocol subject leaves out one subject per fold and needs at least 2 " \
           "subjects; the data have 1." in stderr
    assert "--folds" not in stderr
    assert not (tmp_path / "out").exists()


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"skkgp {skkgp.__version__}"


def test_version_of_the_installed_command():
    # The console script and ``python -m skkgp`` answer the same, without running a job.
    result = subprocess.run(
        [sys.executable, "-m", "skkgp", "--version"], capture_output=True, text=True,
        timeout=120, env={**os.environ, "PYTHONPATH": str(Path(skkgp.__file__).parents[1])},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"skkgp {skkgp.__version__}"


def test_seed_release_runs_end_to_end_on_its_grid_and_bands(tmp_path, capsys):
    from skkgp.cli import build_parser, config_from_args
    from skkgp.datasets import write_seed_like
    from skkgp.reproduce.data import model_inputs

    write_seed_like(tmp_path / "seed", n_subjects=1, n_sessions=1, features="raw",
                    random_state=0)
    argv = [*TINY[:TINY.index("--n-subjects")], "--batch-size", "16", "--quiet",
            "--dataset", "seed", "--data", str(tmp_path / "seed"), "--out", str(tmp_path / "out")]
    status, stdout, stderr = _run(argv, capsys)
    assert status == 0, stderr
    assert stdout.splitlines()[2].split()[:3] == ["eegnet", "lfp", "finetune"]
    config = json.loads((tmp_path / "out" / "config.json").read_text())["config"]
    assert config["dataset"] == "seed" and config["region"] == "temporal"
    assert "target" not in config
    frame = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(frame) == 2
    # The grid models get SEED's five DE bands on SEED's 9x9 grid.
    config = config_from_args(build_parser().parse_args(argv[:-2]))
    bunch = load_windows(DataSpec.from_config(config))
    assert bunch.X.shape[1:] == (62, 200) and set(np.unique(bunch.y)) == {-1, 0, 1}
    train, test = fold_indices(config, bunch, 0)
    X_train, _ = model_inputs(DataSpec.from_config(config), "grid", train, test)
    assert X_train.shape[1:] == (5, 9, 9)
    assert (X_train[:, :, 0, 4] != 0).all()  # FPZ, a SEED electrode DEAP does not have


def test_dreamer_release_runs_end_to_end_with_its_baseline(tmp_path, capsys):
    from skkgp.cli import build_parser, config_from_args
    from skkgp.datasets import write_dreamer_like
    from skkgp.reproduce.data import model_inputs, window_features

    file = write_dreamer_like(tmp_path / "dreamer", n_subjects=2, n_clips=6, random_state=0)
    argv = [*TINY[:TINY.index("--n-subjects")], "--batch-size", "16", "--quiet",
            "--dataset", "dreamer", "--data", str(file), "--target", "arousal",
            "--out", str(tmp_path / "out")]
    status, stdout, stderr = _run(argv, capsys)
    assert status == 0, stderr
    config = json.loads((tmp_path / "out" / "config.json").read_text())["config"]
    assert config["dataset"] == "dreamer" and config["target"] == "arousal"
    assert config["region"] == "frontal_left"
    config = config_from_args(build_parser().parse_args(argv[:-2]))
    spec = DataSpec.from_config(config)
    bunch = load_windows(spec)
    assert bunch.ch_names[0] == "AF3" and bunch.baseline.shape[1:] == (14, 512)
    # DE relative to the clip's baseline: not the plain DE of the window.
    from skkgp.transforms import BandDifferentialEntropy

    plain = BandDifferentialEntropy().fit_transform(bunch.X[:5])
    assert not np.allclose(window_features(spec, "grid")[:5], plain)
    train, test = fold_indices(config, bunch, 0)
    X_train, _ = model_inputs(spec, "grid", train, test)
    assert X_train.shape[1:] == (4, 9, 9)


@pytest.mark.parametrize(("extra", "message"), [
    (["--dataset", "seed"], "--dataset seed reads a release: give --data PATH"),
    (["--dataset", "dreamer", "--data", "/no/such/DREAMER.mat"], "no such file or folder"),
    (["--dataset", "dreamer", "--data", ".", "--target", "liking"],
     "--target liking does not apply to --dataset dreamer; choose from valence"),
])
def test_bad_dataset_options_exit_2(extra, message, tmp_path, capsys):
    status, _, stderr = _run(["reproduce", *extra, "--out", str(tmp_path / "out")], capsys)
    assert status == 2 and message in stderr


def test_overwrite_removes_only_what_skkgp_wrote(tmp_path):
    from skkgp.reproduce.store import ResultStore

    out = tmp_path / "out"
    ResultStore(out).open(ReproduceConfig(prune_ratio=0.3))
    written = ["results.csv", "table.md", "comparison.csv", "accuracy.png", "pareto.png",
               "evidence-ccnn-lfp-finetune.png", "evidence-eegnet-kgi-scratch-r0.25.png"]
    # The user's own files, figures included, whatever their names.
    own = ["notes.txt", "my-figure.png", "evidence-by-hand.png", "accuracy-old.png"]
    for name in [*written, *own]:
        (out / name).write_text("x")
    ResultStore(out).open(ReproduceConfig(prune_ratio=0.5), overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(["cells", "config.json", *own])
    assert json.loads((out / "config.json").read_text())["config"]["prune_ratio"] == 0.5


def test_overwrite_removes_every_output_of_a_real_run(tiny_run, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(tiny_run[3], out)
    (out / "my-figure.png").write_bytes(b"the user's figure")
    ResultStore(out).open(ReproduceConfig(prune_ratio=0.3), overwrite=True)
    # The log of what was run in the folder is kept, as the user's figure.
    assert sorted(p.name for p in out.iterdir()) == [
        "cells", "config.json", "my-figure.png", "run.log"]
    assert not list((out / "cells").iterdir())
