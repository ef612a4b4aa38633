"""The paper reproductions (papers_reproduction/) run in quick mode and give the paper's numbers.

Each script runs in a subprocess exactly as a user runs it (``python papers_reproduction/<name>.py
--out DIR --quick``, default float32 precision), so these tests run once (``float32_only``).
Exact figures assert the paper's values; surrogate figures are smoke tests of their JSON plus the
robust part of the qualitative claim.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "papers_reproduction"
COMMON_KEYS = {"figure", "paper", "panel", "kind", "quick", "parameters", "runtime_s", "verdict"}


def run_figure(name: str, out: Path) -> dict:
    """Runs one script in quick mode; returns its JSON after checking both outputs exist."""
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / f"{name}.py"), "--out", str(out), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / f"{name}.png").stat().st_size > 1000
    report = json.loads((out / f"{name}.json").read_text())
    assert COMMON_KEYS <= set(report), COMMON_KEYS - set(report)
    assert report["figure"] == name and report["quick"] is True
    return report


def all_finite(values) -> bool:
    return all(v is not None and math.isfinite(v) for v in np.ravel(values))


@pytest.mark.float32_only
def test_toy_2d_entropies_match_the_paper(tmp_path):
    report = run_figure("toy_2d", tmp_path)
    rows = {row["scale"]: row for row in report["entropies"]}
    for scale, paper in {0.8: 3.66, 1.0: 3.91, 1.2: 4.08}.items():
        assert rows[scale]["H_paper"] == paper
        assert abs(rows[scale]["H_jaxinfo"] - paper) <= 0.005
        assert rows[scale]["H_jaxinfo"] == pytest.approx(rows[scale]["H_numpy_float64"], abs=1e-5)
    assert report["verdict"] == "EXACT"
    maps = {m["h"]: m for m in report["delta_entropy_maps"]}
    assert set(maps) == {0.1, 0.25, 0.5}
    # wider kernels cover more of the plane; data points are always covered (δH ≤ 0)
    covered = [maps[h]["fraction_grid_covered"] for h in (0.1, 0.25, 0.5)]
    assert covered == sorted(covered)
    assert all(m["max_dH_at_data_points"] <= 1e-5 for m in maps.values())


@pytest.mark.float64_only
def test_toy_2d_equals_the_peer_in_float64():
    """jaxinfo's H of the toy points equals the peer's to 1e-9 (float64)."""
    pytest.importorskip("quests")
    from quests.entropy import entropy as peer_entropy

    import jaxinfo

    x = np.random.default_rng(1).multivariate_normal([0.0, 0.0], np.eye(2), 100)
    for scale in (0.8, 1.0, 1.2):
        ours = float(jaxinfo.entropy(scale * x, h=0.15))
        assert ours == pytest.approx(float(peer_entropy(scale * x, h=0.15)), abs=1e-9)


@pytest.mark.float32_only
def test_descriptor_shells_fcc_x1_and_strain_v(tmp_path):
    report = run_figure("descriptor_shells", tmp_path)
    fcc = report["crystals"]["fcc"]["x1_shells"]
    assert fcc[0]["count"] == 12 and fcc[0]["x1"] == pytest.approx(0.2185, abs=5e-5)
    assert fcc[1]["count"] == 6 and fcc[1]["x1"] == pytest.approx(0.0663, abs=5e-5)
    assert report["fcc_v_shape"] is True
    assert report["verdict"] == "EXACT"
    d = report["strain_distance_to_fcc"]
    assert min(d["bcc"]) > max(d["fcc"])  # bcc never looks like fcc within ±5 % strain


@pytest.mark.float32_only
def test_perfect_diamond_has_zero_entropy():
    """Every environment of a perfect crystal is identical, so H = 0 (no tie at rc = 5 Å)."""
    from ase.build import bulk

    import jaxinfo

    x = jaxinfo.descriptors(bulk("Si", "diamond", a=5.43, cubic=True).repeat(2))
    assert float(jaxinfo.entropy(x, h=0.015)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.float32_only
def test_bandwidth_rule_matches_the_paper(tmp_path):
    report = run_figure("bandwidth_rule", tmp_path)
    points = {p["volume_A3"]: p for p in report["paper_points"]}
    for volume, paper in {5.0: 0.093, 11.5: 0.063, 40.0: 0.012}.items():
        assert abs(points[volume]["h_gaussian"] - paper) <= 1e-3
    assert report["verdict"] == "EXACT"


@pytest.mark.slow
@pytest.mark.float32_only
def test_lindemann_curves_collapse(tmp_path):
    report = run_figure("lindemann", tmp_path)
    h_max = report["H_at_largest_displacement"]["ours"]
    assert set(h_max) == {"fcc", "bcc", "hcp"}
    assert all(0.6 <= h <= 1.3 for h in h_max.values())  # paper: ~0.9 nats
    for curve in report["curves"].values():
        h = np.array(curve["H_mean"])
        assert all_finite(h) and h[0] < 0.01 and np.all(np.diff(h) > 0)
    assert report["max_spread_between_crystals_nats"] < 0.3


@pytest.mark.slow
@pytest.mark.float32_only
def test_learning_curves_smoke(tmp_path):
    pytest.importorskip("rdkit", reason="learning_curves needs rdkit (pip install '.[papers]')")
    report = run_figure("learning_curves", tmp_path)
    assert report["molecules"] and math.isfinite(report["pearson_gap_vs_log_error"])
    for molecule in report["molecules"].values():
        h = np.array(molecule["H"])
        assert all_finite(h)
        assert np.all(h <= np.array(molecule["log_n_environments"]) + 1e-4)  # H ≤ log N
        assert h[-1] > h[0]  # more frames, more information
        assert all_finite(list(molecule["fit"].values()))
        small, large = molecule["students"]
        assert small["information_gap"] > large["information_gap"]
        assert all_finite([small["force_norm_mae_kcal_mol_A"], large["force_norm_mae_kcal_mol_A"]])


@pytest.mark.slow
@pytest.mark.float32_only
def test_carbon_subsets_delta_entropy_asymmetry(tmp_path):
    report = run_figure("carbon_subsets", tmp_path)
    assert all(
        all_finite([s["H"]]) and s["H"] <= s["log_n"] + 1e-4 for s in report["subsets"].values()
    )
    matrix = np.array(report["overlap"]["matrix"])
    assert np.allclose(np.diag(matrix), 1.0)
    # graphene is (nearly) covered by nanotubes, and more than the reverse (paper Fig. 3)
    assert report["graphene_covered_by_nanotubes"] >= 0.9
    assert report["graphene_covered_by_nanotubes"] > report["nanotubes_covered_by_graphene"]


@pytest.mark.slow
@pytest.mark.float32_only
def test_compression_gap_msc_closes_the_gap_first(tmp_path):
    report = run_figure("compression_gap", tmp_path)
    for pool in report["pools"].values():
        methods = pool["methods"]
        assert all(
            all_finite([row["gap"], row["mae"]]) for rows in methods.values() for row in rows
        )
        assert all(rows[-1]["gap"] == pytest.approx(0.0, abs=1e-6) for rows in methods.values())
        assert methods["msc"][0]["gap"] <= methods["random"][0]["gap"]


@pytest.mark.slow
@pytest.mark.float32_only
def test_uncertainty_overlap_anticorrelates_with_error(tmp_path):
    report = run_figure("uncertainty", tmp_path)
    assert report["pearson_overlap_vs_log_mae"] < 0
    conditions = report["per_condition"]
    covered = conditions["bulk_300K"]  # the training condition (held-out frames)
    assert covered["overlap"] == max(v["overlap"] for v in conditions.values())
    assert covered["mae_eV_A"] == min(v["mae_eV_A"] for v in conditions.values())
    assert conditions["liquid"]["overlap"] < 0.05


@pytest.mark.slow
@pytest.mark.float32_only
def test_extrapolation_melt_is_less_covered_and_worse(tmp_path):
    report = run_figure("extrapolation", tmp_path)
    assert math.isfinite(report["pearson_overlap_vs_log_error_increase"])
    for entry in report["potentials"].values():
        warm, melt = entry["warm"], entry["melt"]
        assert melt["overlap_with_cold"] < warm["overlap_with_cold"]
        assert melt["error_increase"] > warm["error_increase"] > 1.0


@pytest.mark.slow
@pytest.mark.float32_only
def test_thermodynamics_entropy_rises_with_temperature(tmp_path):
    report = run_figure("thermodynamics", tmp_path)
    heating = report["branches"]["heating"]
    h = [row["H_fixed_h"] for row in heating]
    assert all_finite(h) and h[-1] > h[0]
    assert all(row["H_fixed_h"] <= math.log(row["n_environments"]) + 1e-4 for row in heating)
    # the liquid branch starts less ordered than the crystal at the lowest temperature
    assert report["branches"]["cooling"][0]["H_fixed_h"] > h[0]


@pytest.mark.slow
@pytest.mark.float32_only
def test_rare_events_information_signal_finds_the_crystallisation(tmp_path):
    report = run_figure("rare_events", tmp_path)
    window = report["parameters"]["window_frames"]
    order, entropy = np.array(report["solid_fraction"]), np.array(report["H"])
    assert all_finite(order) and all_finite(entropy)
    assert all_finite(report["mean_dH_window"][window:])
    assert np.all(entropy <= report["log_n_atoms"] + 1e-4)  # H ≤ log N
    # quick run: a crystal slab grows through the supercooled liquid
    assert order[0] < 0.5 and order[-1] > 0.9
    fits = report["fits"]
    for name in ("H", "mean_dH_window"):  # the crystal is less diverse and less novel
        fit = fits[name]
        noise = max(fit["before_std"], fit["after_std"])
        assert fit["after_mean"] < fit["before_mean"] - 3.0 * noise
    # the information signal alone dates the event where the order parameter does
    t_order = report["event_time_order_parameter_ps"]
    assert abs(report["event_time_H_ps"] - t_order) <= 0.3
    assert abs(report["event_time_dH_ps"] - t_order) <= 0.3


@pytest.mark.slow
@pytest.mark.float32_only
def test_outliers_at_scale_defects_are_outliers(tmp_path):
    report = run_figure("outliers_at_scale", tmp_path)
    regions = report["regions"]
    assert all_finite([r["median_dH"] for r in regions.values()])
    bulk = regions["bulk"]
    for name in ("molten pocket", "void surface"):
        assert regions[name]["median_dH"] > bulk["median_dH"] + 10.0
    # the rotated grain is fcc inside (the descriptor is rotation invariant): only its
    # boundaries are novel, so compare fractions rather than medians
    assert regions["grain"]["fraction_dH_above_0"] > bulk["fraction_dH_above_0"]
