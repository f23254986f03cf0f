"""Tests of skkgp.layout: channel lists, grids, regions, positions."""

import numpy as np
import pytest

from skkgp import layout
from skkgp.layout import (
    DEAP_CHANNELS,
    DEAP_GRID,
    REGIONS,
    SEED_CHANNELS,
    SEED_GRID,
    electrode_positions,
    get_layout,
    grid_cells,
    grid_shape,
    make_info,
    region_mask,
)

# torcheeg's DEAP_CHANNEL_LOCATION_DICT, written out independently of the module.
TORCHEEG_DEAP = {
    "FP1": (0, 3), "FP2": (0, 5), "AF3": (1, 3), "AF4": (1, 5), "F7": (2, 0), "F3": (2, 2),
    "FZ": (2, 4), "F4": (2, 6), "F8": (2, 8), "FC5": (3, 1), "FC1": (3, 3), "FC2": (3, 5),
    "FC6": (3, 7), "T7": (4, 0), "C3": (4, 2), "CZ": (4, 4), "C4": (4, 6), "T8": (4, 8),
    "CP5": (5, 1), "CP1": (5, 3), "CP2": (5, 5), "CP6": (5, 7), "P7": (6, 0), "P3": (6, 2),
    "PZ": (6, 4), "P4": (6, 6), "P8": (6, 8), "PO3": (7, 3), "PO4": (7, 5), "O1": (8, 3),
    "OZ": (8, 4), "O2": (8, 5),
}  # fmt: skip


def test_deap_channels_in_release_order():
    assert len(DEAP_CHANNELS) == 32
    assert DEAP_CHANNELS[:4] == ("Fp1", "AF3", "F3", "F7")
    assert DEAP_CHANNELS[16:20] == ("Fp2", "AF4", "Fz", "F4")
    assert DEAP_CHANNELS[-1] == "O2"


def test_deap_grid_matches_torcheeg_layout():
    assert {k.upper(): v for k, v in DEAP_GRID.items()} == TORCHEEG_DEAP
    assert set(DEAP_GRID) == set(DEAP_CHANNELS)


def test_seed_layout_has_62_channels_on_unique_cells():
    assert len(SEED_CHANNELS) == 62 == len(set(SEED_CHANNELS))
    assert set(SEED_GRID) == set(SEED_CHANNELS)
    cells = list(SEED_GRID.values())
    assert len(set(cells)) == 62
    assert all(0 <= r < 9 and 0 <= c < 9 for r, c in cells)
    assert SEED_GRID["FPZ"] == (0, 4)
    assert SEED_GRID["AF4"] == (1, 5)
    assert SEED_GRID["FT7"] == (3, 0)
    assert SEED_GRID["PO7"] == (7, 1)
    assert SEED_GRID["CB1"] == (8, 2) and SEED_GRID["CB2"] == (8, 6)


def test_required_regions_exist_and_match_the_authors_sets():
    for name in ("prefrontal", "frontal_left", "frontal_right", "frontal", "temporal",
                 "central", "parietal", "occipital"):
        assert name in REGIONS
        assert region_mask(name, DEAP_CHANNELS).any()
        assert region_mask(name, SEED_CHANNELS).any()
    picked = lambda region: {DEAP_CHANNELS[i] for i in np.flatnonzero(  # noqa: E731
        region_mask(region, DEAP_CHANNELS))}
    assert picked("frontal_left") == {"Fp1", "AF3", "F7", "F3"}
    assert picked("frontal_right") == {"Fp2", "AF4", "F4", "F8"}
    assert picked("frontal") == {"Fp1", "Fp2", "AF3", "AF4", "F7", "F3", "Fz", "F4", "F8"}
    assert picked("prefrontal") == {"Fp1", "Fp2", "AF3", "AF4"}
    seed_prefrontal = {SEED_CHANNELS[i] for i in np.flatnonzero(
        region_mask("prefrontal", SEED_CHANNELS))}
    assert seed_prefrontal == {"FP1", "FPZ", "FP2", "AF3", "AF4"}
    assert layout.DEFAULT_REGION == "frontal_left"


def test_region_mask_is_case_insensitive_and_accepts_lists():
    upper = [c.upper() for c in DEAP_CHANNELS]
    np.testing.assert_array_equal(region_mask("FRONTAL_LEFT", upper),
                                  region_mask("frontal_left", DEAP_CHANNELS))
    mask = region_mask(["fp1", "O2"], DEAP_CHANNELS)
    assert mask.dtype == bool and mask.shape == (32,)
    assert mask.sum() == 2 and mask[0] and mask[-1]


@pytest.mark.parametrize(
    ("region", "ch_names", "match"),
    [
        ("limbic", DEAP_CHANNELS, "Unknown region 'limbic'"),
        (["Fp1", "XYZ"], DEAP_CHANNELS, "XYZ"),
        ("temporal", ["Fp1", "Fp2"], "No electrode of region 'temporal'"),
        ([], DEAP_CHANNELS, "at least one electrode"),
        ("frontal", ["Fp1", "FP1"], "more than once"),
    ],
)
def test_region_mask_errors_name_the_problem(region, ch_names, match):
    with pytest.raises(ValueError, match=match):
        region_mask(region, ch_names)


def test_grid_cells_for_builtin_and_custom_layouts():
    cells = grid_cells(DEAP_CHANNELS)
    assert cells.shape == (32, 2) and np.issubdtype(cells.dtype, np.integer)
    assert cells[0].tolist() == [0, 3]  # Fp1
    assert grid_cells(["cb1", "fpz"], "seed").tolist() == [[8, 2], [0, 4]]
    custom = {"C3": (0, 0), "C4": (0, 2), "Cz": (1, 1)}
    assert grid_cells(["cz", "C3"], custom).tolist() == [[1, 1], [0, 0]]
    assert grid_shape(custom) == (9, 9)
    assert grid_shape({"A": (10, 2)}) == (11, 9)


def test_grid_cells_errors():
    with pytest.raises(ValueError, match="Foo"):
        grid_cells(["Fp1", "Foo"])
    with pytest.raises(ValueError, match="Unknown layout 'biosemi'"):
        grid_cells(["Fp1"], "biosemi")
    with pytest.raises(ValueError, match="same cell"):
        get_layout({"A": (0, 0), "B": (0, 0)})
    with pytest.raises(ValueError, match="non-negative"):
        get_layout({"A": (-1, 0)})


def test_region_grid_mask_marks_the_region_cells():
    mask = layout.region_grid_mask("frontal_left")
    assert mask.shape == (9, 9) and mask.dtype == bool
    assert sorted(zip(*np.nonzero(mask), strict=True)) == [(0, 3), (1, 3), (2, 0), (2, 2)]
    assert layout.region_grid_mask("prefrontal", "seed").sum() == 5
    subset = layout.region_grid_mask("frontal", ch_names=["Fp1", "O1"])
    assert subset.sum() == 1 and subset[0, 3]


def test_electrode_positions_follow_the_head():
    positions = electrode_positions(["Fp1", "Fp2", "O1", "T7", "T8", "CB1"])
    assert positions.shape == (6, 3) and np.isfinite(positions).all()
    fp1, fp2, o1, t7, t8, _ = positions
    assert fp1[1] > 0 > o1[1]  # front is +y
    assert t7[0] < 0 < t8[0]  # left is -x
    assert fp1[0] < 0 < fp2[0]
    with pytest.raises(ValueError, match="Nope"):
        electrode_positions(["Fp1", "Nope"])


def test_make_info_plots_a_topomap_for_both_layouts():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mne

    for ch_names in (DEAP_CHANNELS, SEED_CHANNELS):
        info = make_info(ch_names, sfreq=128.0)
        assert info["sfreq"] == 128.0 and info.ch_names == list(ch_names)
        image, _ = mne.viz.plot_topomap(np.arange(len(ch_names), dtype=float), info,
                                        show=False)
        assert image is not None
    plt.close("all")


@pytest.mark.parametrize("cell", [(1.7, 2), (1.0, 2), ("1", 2), (True, 2), (1, 2, 3), 5])
def test_layout_cells_must_be_integer_pairs(cell):
    with pytest.raises(ValueError, match=r"cell of 'A' must be a \(row, col\) pair of"):
        get_layout({"A": cell})


def test_layout_cells_accept_numpy_integers():
    assert get_layout({"a": (np.int64(1), np.int32(2))}) == {"A": (1, 2)}
    assert all(type(c) is int for c in get_layout({"a": np.array([1, 2])})["A"])


def test_old_and_new_names_of_one_site_share_a_region():
    # 10-20's T3/T4/T5/T6 are 10-10's T7/T8/P7/P8: one place on the head, one region.
    assert [region_mask("temporal", ["T3", "T7", "O1"]).tolist(),
            region_mask("parietal", ["T5", "P7", "O1"]).tolist(),
            region_mask("parietal", ["T6", "P8", "O1"]).tolist()] == [[True, True, False]] * 3
    members = {name: region for region, names in REGIONS.items() if region not in (
        "frontal_left", "frontal_right", "frontal") for name in names}
    by_place = {}
    for name in members:
        try:
            place = tuple(np.round(electrode_positions([name])[0], 6))
        except ValueError:  # no standard position (CB1/CB2 stand at O9/O10 on plots only)
            continue
        by_place.setdefault(place, set()).add(name)
    shared = [names for names in by_place.values() if len(names) > 1]
    assert {frozenset(names) for names in shared} >= {frozenset({"T3", "T7"}),
                                                       frozenset({"T5", "P7"})}
    for names in shared:
        assert len({members[name] for name in names}) == 1, names
    # The DEAP electrodes of these regions are as they were.
    picked = lambda region: {DEAP_CHANNELS[i] for i in np.flatnonzero(  # noqa: E731
        region_mask(region, DEAP_CHANNELS))}
    assert picked("temporal") == {"T7", "T8"}
    assert picked("parietal") == {"P7", "P3", "Pz", "P4", "P8"}
