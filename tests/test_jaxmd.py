"""jax-md interop (the optional extra ``jaxinfo[md]``): skipped when jax_md is not installed."""

import runpy
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "jaxmd_langevin.py"


@pytest.mark.slow
@pytest.mark.float32_only
def test_the_jaxmd_langevin_example_runs(capsys):
    pytest.importorskip("jax_md")
    namespace = runpy.run_path(str(EXAMPLE))
    assert "eV/atom" in capsys.readouterr().out
    e_pot = np.asarray(namespace["e_pot"]) / 32
    assert np.all(np.isfinite(e_pot)) and np.all(e_pot < -3.0)  # still a bound crystal
    assert np.ptp(np.asarray(namespace["e_bias"])) > 0  # the bias acts


@pytest.mark.float64_only
def test_jaxmd_pair_function_on_the_explicit_image_table():
    pytest.importorskip("jax_md")
    from jax_md import energy

    from jaxinfo.potentials import Morse, energy_and_forces

    class JaxMDMorse(Morse):  # the example of docs/design.md (section jax-md)
        def pair_energy(self, r):
            return energy.morse(r, sigma=self.r0, epsilon=self.depth, alpha=self.alpha)

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    atoms.rattle(0.02, seed=0)
    ours, forces = energy_and_forces(Morse(), atoms)
    theirs, forces_jaxmd = energy_and_forces(JaxMDMorse(), atoms)
    assert theirs == pytest.approx(ours, rel=1e-12)
    np.testing.assert_allclose(forces_jaxmd, forces, atol=1e-10)
    assert ours / len(atoms) < -3.1  # bound fcc Cu (the minimum image would give ~ -2.3)
