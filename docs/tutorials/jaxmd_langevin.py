"""δH-biased Langevin MD with jax-md's integrator (needs the extra: pip install "jaxinfo[md]").

Energies in eV, lengths in Å, masses in amu: jax-md's time unit is then Å·sqrt(amu/eV) = 10.18 fs.
The physical energy and the bias both use jaxinfo's explicit-image neighbour lists (jax-md's own
pair energies use the minimum image, wrong for this 32-atom cell, shorter than twice the
cutoff), so positions stay unwrapped and jax-md only integrates (``space.free``).
"""

import jax
import jax.numpy as jnp
import numpy as np
from ase import units
from ase.build import bulk
from jax_md import simulate, space

from jaxinfo.biased_md import DeltaEntropyBias, bias_descriptors, descriptor_neighbours, md_energy
from jaxinfo.objectives import reference_init
from jaxinfo.potentials import SuttonChen

atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)  # 32 atoms, 7.2 Å cell
atoms.rattle(0.05, seed=0)
potential = SuttonChen()
bias = DeltaEntropyBias(strength=0.5, k=8, cutoff=4.0, smooth=True)
cell = jnp.asarray(atoms.cell.array)
positions = jnp.asarray(atoms.positions)

# Host: allocate the neighbour lists; the visited set starts with the first frame.
pot_fns = potential.neighbour_list()
desc_fns = descriptor_neighbours(bias)


def allocate(R):
    R = np.asarray(R, dtype=np.float64)
    cell_, pbc = atoms.cell.array, atoms.pbc
    return pot_fns.allocate(R, cell_, pbc), desc_fns.allocate(R, cell_, pbc)


neighbours = allocate(positions)
table = desc_fns.update(positions, cell, neighbours[1]).table
reference = reference_init(bias_descriptors(positions, cell, table, bias), 10 * len(atoms), bias.h)

energy_with_aux = md_energy(potential, bias, cell)  # E_pot + U_bias, eV


def energy_fn(R, neighbours, reference, **unused):
    return energy_with_aux(R, neighbours, reference)[0]


time_unit = 1e-10 * np.sqrt(units._amu / units._e) / 1e-15  # fs
_, shift = space.free()
init_fn, apply_fn = simulate.nvt_langevin(
    energy_fn, shift, dt=2.0 / time_unit, kT=units.kB * 600.0, gamma=0.1
)
state = init_fn(
    jax.random.key(0), positions, mass=jnp.asarray(atoms.get_masses()),
    neighbours=neighbours, reference=reference,
)  # fmt: skip


@jax.jit
def run(state, neighbours, reference):
    """10 steps in one compiled scan; ``stale`` flags steps whose neighbour lists were stale."""

    def step(state, _):
        state = apply_fn(state, neighbours=neighbours, reference=reference)
        _, (e_pot, e_bias, stale) = energy_with_aux(state.position, neighbours, reference)
        return state, (e_pot, e_bias, stale)

    return jax.lax.scan(step, state, length=10)


for _ in range(4):
    new_state, (e_pot, e_bias, stale) = run(state, neighbours, reference)
    if stale.any():  # re-allocate at the last good state and redo the chunk
        neighbours = allocate(state.position)
        new_state, (e_pot, e_bias, stale) = run(state, neighbours, reference)
        assert not stale.any(), "an atom moved more than skin / 2 within one chunk"
    state = new_state
print(f"E_pot {e_pot[-1] / len(atoms):.3f} eV/atom, bias {e_bias[-1]:.3f} eV")
