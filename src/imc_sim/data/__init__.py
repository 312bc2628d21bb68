"""Data: GLUE's layout, users' own files (CSV, TSV, JSON lines) and hub datasets, tokenized once
and batched with dynamic padding.

Modules: :mod:`~imc_sim.data.source` (where a run's data comes from: ``DataSource``, ``load_train``,
``load_dev``), :mod:`~imc_sim.data.glue` (GLUE's folder layout), :mod:`~imc_sim.data.files`
(reading own files), :mod:`~imc_sim.data.columns` and :mod:`~imc_sim.data.labels` (which cells are
text and label, and the label set), :mod:`~imc_sim.data.hub` (hub datasets),
:mod:`~imc_sim.data.batching` (tokenizing and batching).
"""

from imc_sim.data.batching import (
    Encoded,
    collate,
    encode,
    endless_batches,
    eval_batches,
    length_grouped_order,
)
from imc_sim.data.examples import Examples
from imc_sim.data.glue import DATA_ENV, load_split, read_tsv, resolve_data_dir
from imc_sim.data.source import DataSource, load_dev, load_train

__all__ = [
    "DATA_ENV", "DataSource", "Encoded", "Examples", "batches", "collate", "encode",
    "endless_batches", "eval_batches", "length_grouped_order", "load_dev", "load_split",
    "load_train", "read_tsv", "resolve_data_dir",
]
