"""jaxinfo: the information content of atomistic data (QUESTS entropy) in JAX.

Descriptors and estimators are pure JAX functions: jit- and vmap-compiled, differentiable with
respect to descriptors, atomic positions and cell. Results follow the input dtype (float32 by
default, float64 when JAX x64 is enabled).

Units: descriptors in 1/Angstrom, bandwidths h in 1/Angstrom, entropies in nats.
"""

from jaxinfo.bandwidth import atomic_volume, bandwidth_from_volume
from jaxinfo.batching import descriptors, species_descriptors
from jaxinfo.descriptor import environment_descriptor, structure_descriptors
from jaxinfo.estimators import (
    DatasetMetrics,
    dataset_metrics,
    delta_entropy,
    diversity,
    entropy,
    log_density,
    overlap,
)
from jaxinfo.kernels import PreparedReference, log_kernel_sums, prepare_reference
from jaxinfo.neighbours import NeighbourList, NeighbourTable, neighbour_list, neighbour_table
from jaxinfo.sampling import SampledEstimate, estimate_diversity, estimate_entropy
from jaxinfo.selection import select, selection_summary
from jaxinfo.sharding import data_mesh
from jaxinfo.streaming import DescriptorSource, delta_entropy_streamed, open_source

__version__ = "0.1.0"

__all__ = [
    "DatasetMetrics",
    "DescriptorSource",
    "NeighbourList",
    "NeighbourTable",
    "PreparedReference",
    "SampledEstimate",
    "atomic_volume",
    "bandwidth_from_volume",
    "data_mesh",
    "dataset_metrics",
    "delta_entropy",
    "delta_entropy_streamed",
    "descriptors",
    "diversity",
    "entropy",
    "environment_descriptor",
    "estimate_diversity",
    "estimate_entropy",
    "log_density",
    "log_kernel_sums",
    "neighbour_list",
    "neighbour_table",
    "open_source",
    "overlap",
    "prepare_reference",
    "select",
    "selection_summary",
    "species_descriptors",
    "structure_descriptors",
]
