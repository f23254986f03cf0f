"""Tests of the benchmarks' options, output files and statistics: ``knowledge_effect.py``,
``pruning_schedules.py``, ``step_host.py``, ``grid_demand.py``, ``int8_accuracy.py``'s
statistics (its run is tested in ``test_export.py``) and ``full_grid_gpu.py``'s budget and
summary."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

TINY = ["--models", "eegnet", "--seeds", "0", "1", "--subjects", "2", "--trials", "8",
        "--duration", "2", "--epochs", "1", "--recovery-epochs", "1", "--batch-size", "8",
        "--scenario", "shortcut", "--region", "frontal_left", "parietal"]


@pytest.fixture
def knowledge_effect(load_benchmark):
    return load_benchmark("knowledge_effect")


def test_knowledge_effect_runs_resumes_and_summarises(knowledge_effect, tmp_path, capsys):
    out = tmp_path / "results.csv"
    results = knowledge_effect.main([*TINY, "--jobs", "2", "--out", str(out)])
    printed = capsys.readouterr().out
    # One row per (model, scenario, seed, region): the origin and baseline are shared
    # by the regions of a seed, so their figures repeat.
    assert len(results) == 4
    assert set(results["region"]) == {"frontal_left", "parietal"}
    for _, part in results.groupby("seed"):
        assert part["acc_baseline"].nunique() == 1 and part["acc_origin"].nunique() == 1
        # The shortcut scenario trains on the +1 half of the trials, tests on the rest.
        assert (part["n_train"] == 16).all() and (part["n_test"] == 16).all()
    for region in ("frontal_left", "parietal"):
        assert f"eegnet shortcut {region}:" in printed
    assert printed.count("  accuracy proposed vs baseline: ") == 2
    assert printed.count("  region share proposed vs baseline: ") == 2
    assert "of 2 pairs" in printed

    written = pd.read_csv(out)
    assert len(written) == 4 and (written["sample_weighting"] == 1.0).all()
    before = out.read_bytes()

    # The same command again computes nothing; --summary-only prints the same summary.
    again = knowledge_effect.main([*TINY, "--out", str(out)])
    assert len(again) == 4
    resumed = capsys.readouterr()
    assert "2 cells there, 0 to compute" in resumed.err
    assert out.read_bytes() == before
    knowledge_effect.main(["--summary-only", str(out)])
    summary = capsys.readouterr().out
    assert summary.split("\n\n", 1)[1] in printed

    # Other settings never overwrite the file.
    with pytest.raises(SystemExit, match="holds results of other settings"):
        knowledge_effect.main([*TINY, "--region-weight", "0.5", "--out", str(out)])
    assert out.read_bytes() == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--region", "nowhere"], "unknown region 'nowhere'"),
        (["--scenario", "decoy"], "invalid choice: 'decoy'"),
        (["--sample-weighting", "2"], "--sample-weighting must lie in [0, 1]"),
        (["--region-weight", "-1"], "--region-weight must be >= 0"),
        (["--jobs", "0"], "0 is not a positive int"),
        (["--seeds", "-3"], "--seeds must be non-negative"),
        (["--models", "resnet"], "invalid choice: 'resnet'"),
    ],
)
def test_knowledge_effect_bad_options(knowledge_effect, extra, message, capsys):
    with pytest.raises(SystemExit) as error:
        knowledge_effect.main([*TINY, *extra])
    assert error.value.code == 2
    assert message in capsys.readouterr().err


SCHEDULES_TINY = ["--seeds", "0", "1", "--subjects", "2", "--trials", "8", "--duration", "2",
                  "--epochs", "1", "--recovery-epochs", "3", "--batch-size", "16"]


def test_pruning_schedules_runs_resumes_and_summarises(load_benchmark, tmp_path, capsys):
    schedules = load_benchmark("pruning_schedules")
    out = tmp_path / "schedules.csv"
    table = schedules.main([*SCHEDULES_TINY, "--out", str(out)])
    printed = capsys.readouterr().out
    # Four comparisons, each over the two seeds; LFP and kgi meet the same MAC budget.
    assert list(table.index) == [
        "3 steps/baseline - one-shot/baseline", "kgi@budget/baseline - lfp@budget/baseline",
        "3 steps/kg - one-shot/kg", "kgi@budget/kg - lfp@budget/kg"]
    assert ((table["n_seeds"] + table["n_collapsed"]) == 2).all()
    assert (table["ci_low"] <= table["mean_diff"]).all()
    assert (table["mean_diff"] <= table["ci_high"]).all()
    budget = table.loc["kgi@budget/kg - lfp@budget/kg"]
    assert abs(budget["macs_treated"] - budget["macs_control"]) <= 0.02 * budget["macs_control"]
    assert "seed 0: origin" in printed and "seed 1: origin" in printed
    written = pd.read_csv(out)
    assert len(written) == 2 * 8 and set(written["seed"]) == {0, 1}
    before = out.read_bytes()

    # The same command computes nothing new; --summary-only prints the same table.
    schedules.main([*SCHEDULES_TINY, "--out", str(out)])
    assert "2 seeds there, 0 to compute" in capsys.readouterr().err
    assert out.read_bytes() == before
    summary = schedules.main(["--summary-only", str(out)])
    pd.testing.assert_frame_equal(summary, table)

    # Other settings never overwrite the file.
    with pytest.raises(SystemExit, match="holds results of other settings"):
        schedules.main([*SCHEDULES_TINY, "--steps", "2", "--out", str(out)])
    assert out.read_bytes() == before


def test_pruning_schedules_needs_two_seeds(load_benchmark, capsys):
    schedules = load_benchmark("pruning_schedules")
    with pytest.raises(SystemExit) as error:
        schedules.main([*SCHEDULES_TINY[3:], "--seeds", "3"])
    assert error.value.code == 2
    assert "at least two seeds" in capsys.readouterr().err


def test_pruning_schedules_shortcut_split_trains_where_the_shortcut_holds(load_benchmark):
    from skkgp.datasets import make_deap_like

    schedules = load_benchmark("pruning_schedules")
    data = make_deap_like(n_subjects=2, n_trials=8, duration=2, scenario="shortcut",
                          random_state=0)
    train, test = schedules._split(data, "shortcut", 0)
    assert (data.shortcut[train] == 1).all() and (data.shortcut[test] == -1).all()
    assert len(train) + len(test) == len(data.y)
    # The default scenario splits by trial: no trial on both sides.
    data = make_deap_like(n_subjects=2, n_trials=8, duration=2, random_state=0)
    train, test = schedules._split(data, "default", 0)
    assert not set(data.trials[train]) & set(data.trials[test])


def test_step_host_counts_operations_and_times_host_work(load_benchmark, capsys):
    step_host = load_benchmark("step_host")
    step_host.main(["--models", "ccnn", "--repeats", "2", "--steps", "2"])
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("ccnn"))
    fit_ops, kg_ops, _, fit_kernels, kg_kernels = row.split()[1:6]
    fit_ops, kg_ops, fit_kernels, kg_kernels = map(int, (fit_ops, kg_ops, fit_kernels,
                                                         kg_kernels))
    # The knowledge-guided step adds the evidence, its loss and the double backward; views
    # and allocations are left out of the kernels.
    assert 0 < fit_kernels < fit_ops and 0 < kg_kernels < kg_ops
    assert kg_kernels > fit_kernels
    # Counts depend on neither the load nor the run.
    counts = step_host.count_operations("ccnn", 2)
    assert (counts["fit"].total, counts["kg"].total) == (fit_ops, kg_ops)
    assert counts["kg"].counts["convolution_backward"] > counts["fit"].counts[
        "convolution_backward"]


def test_int8_accuracy_leaves_collapsed_origins_out_of_its_statistics(load_benchmark):
    int8 = load_benchmark("int8_accuracy")
    # Four seeds of one model; the origin of seed 2 collapsed, and its file's accuracy
    # (0.0, far from the others) must not move the means or the paired differences.
    accuracy = {"float": [0.6, 0.7, 0.0, 0.8], "int8-random": [0.5, 0.7, 1.0, 0.8],
                "int8-knowledge": [0.6, 0.6, 0.0, 0.7]}
    results = pd.DataFrame({
        "model": "eegnet", "seed": [0, 1, 2, 3],
        "origin_constant": [False, False, True, False],
        "constant": [False, False, True, False],
        **{f"acc_{name}": values for name, values in accuracy.items()},
        **{f"{what}_{name}": 1.0 for what in ("agree", "dp", "ms1", "ms256", "mb")
           for name in int8.FILES},
    })
    pairs = int8.comparisons(results)
    drop = int8.comparisons(results[~results["origin_constant"]])
    for name, comparison in pairs.items():
        assert (comparison.n_pairs, comparison.n_excluded) == (3, 1)
        assert comparison.mean_difference == pytest.approx(drop[name].mean_difference)
    assert pairs["int8-random - float"].mean_difference == pytest.approx(-0.1 / 3)
    summary = int8.summarize(results)["eegnet"]
    assert summary["seeds (collapsed)"] == "4 (1)"
    assert summary["seeds whose float file predicts one class"] == 0
    kept = np.array([0.6, 0.7, 0.8])
    assert summary["acc float"] == f"{kept.mean():.3f} ± {kept.std(ddof=1):.3f}"


def _full_grid_limits(bench, total: float) -> list[tuple[str, float]]:
    """Each run's limit when every run that starts takes all of it (the worst case)."""
    budget, limits = bench.Budget(total, skip=[]), []
    for stage, shares in bench.SHARES.items():
        for _ in shares:
            limit = budget.next_limit()
            limits.append((stage, limit))
            if limit >= 10:  # as run() does: a shorter limit skips the run
                budget.total -= limit
    return limits


@pytest.mark.parametrize("total", [200, 300, 540, 900])
def test_full_grid_gpu_budget_goes_to_the_first_stages_first(load_benchmark, total):
    bench = load_benchmark("full_grid_gpu")
    limits = _full_grid_limits(bench, float(total))
    shares = [share for shares in bench.SHARES.values() for share in shares]
    # The key stages run whatever the budget; a share is cut only where the budget is
    # below the sum of the shares up to it.
    assert all(limit >= 10 for stage, limit in limits if stage in ("graphs", "estimate"))
    for (stage, limit), share, reached in zip(limits, shares, np.cumsum(shares), strict=True):
        if reached <= total:  # 5 s of each limit are the margin, 1 s the clock's advance
            assert limit >= share - 5 - 1, (stage, limit, share)
    skipped = [i for i, (_, limit) in enumerate(limits) if limit < 10]
    # Runs are skipped only at the end.
    assert skipped == list(range(len(limits) - len(skipped), len(limits)))


def test_full_grid_gpu_shares_its_budget_and_lists_every_failed_run(load_benchmark, capsys):
    import sys

    bench = load_benchmark("full_grid_gpu")
    # The shares fit the default budget, the first stages' most of all.
    assert sum(sum(shares) for shares in bench.SHARES.values()) <= bench.parse_args([]).budget
    assert list(bench.SHARES)[:3] == ["graphs", "estimate", "grid"]
    budget = bench.Budget(1000.0, skip=["grid"])
    later = sum(sum(s) for name, s in bench.SHARES.items() if name != "grid") - 65
    # The first run may take what is left less every later run's share.
    assert abs(budget.next_limit() - (bench.left(1000.0) - 5 - later)) < 1
    # A run that fails, like one stopped at its limit, is in the summary with its code.
    bench.SUMMARY.clear()
    rc, _, _ = bench.run("failing", [sys.executable, "-c", "raise SystemExit(3)"],
                         bench.Budget(1000.0, skip=[]))
    assert rc == 3
    assert bench.SUMMARY and bench.SUMMARY[-1].startswith("failing: exit 3 after ")
    budget = bench.Budget(0.0, skip=[])
    budget.owed = [0.0]
    budget.total = 15.5 - bench.left(0.0)  # a limit of 10.5 s: the shortest a run gets
    rc, _, seconds = bench.run("slow", [sys.executable, "-c", "import time; time.sleep(60)"],
                               budget)
    assert rc == 124 and seconds < 30
    assert "slow: exit 124 after" in bench.SUMMARY[-1] and "limit" in bench.SUMMARY[-1]


def test_grid_demand_counts_the_grids_arithmetic_and_kernels(load_benchmark, capsys):
    import torch

    from skkgp.pruning.counting import count_macs

    demand = load_benchmark("grid_demand")
    demand.main(["--models", "ccnn", "--n-subjects", "2", "--n-trials", "4",
                 "--trial-seconds", "10", "--hours", "0.5"])
    out = capsys.readouterr().out.splitlines()
    rows = {" ".join(line.split()[:2]): line.split()[2:] for line in out
            if line.startswith("ccnn ")}
    assert set(rows) == {"ccnn origin", "ccnn lfp", "ccnn umwp", "ccnn sfp"}
    plain, kg = float(rows["ccnn origin"][0]), float(rows["ccnn origin"][1])
    # The knowledge-guided step's exact gradient costs about twice a plain step's
    # arithmetic, and more kernels.
    assert 1.5 < kg / plain < 2.5
    assert int(rows["ccnn origin"][4]) > int(rows["ccnn origin"][3]) > 0
    # LFP removes filters (less arithmetic); UMWP masks weights (the same dense work).
    assert float(rows["ccnn lfp"][0]) < plain
    assert float(rows["ccnn umwp"][0]) == plain
    # A prediction batch is the forward pass: 2 FLOPs per multiply-accumulate.
    from skkgp import EEGClassifier

    X = torch.randn(2, 4, 9, 9).numpy()
    module = EEGClassifier("ccnn", max_epochs=1, batch_size=2, train_split=None,
                           verbose=0).fit(X, [0, 1]).module_.eval()
    per_sample = count_macs(module, torch.randn(1, 4, 9, 9))
    assert float(rows["ccnn origin"][5]) == pytest.approx(2 * per_sample * 64 / 1e9, rel=0.01)
    # The totals and the rates they ask for agree.
    grid = next(line for line in out if line.startswith("grid:"))
    arithmetic = next(line for line in out if line.startswith("arithmetic:"))
    rate = next(line for line in out if line.startswith("to finish in 0.5 h"))
    pflop, kernels = float(arithmetic.split()[1]), int(arithmetic.split()[-1].replace(",", ""))
    assert pflop > 0 and kernels > 0
    tflops, per_second, every_us = (
        float(x) for x in re.findall(r"[\d.]+(?= TFLOP/s| M k| us)", rate))
    assert tflops == pytest.approx(pflop * 1e3 / 1800, rel=1e-3)
    assert per_second * 1e6 == pytest.approx(kernels / 1800, rel=1e-3)
    assert every_us * kernels / 1e6 == pytest.approx(1800, rel=1e-3)
    # The grid line counts the steps --dry-run prices (the script checks them itself).
    assert "knowledge-guided steps" in grid
