"""Hub datasets (``--dataset NAME [--dataset-config CONFIG]``) through the optional ``datasets``."""

from __future__ import annotations

from types import ModuleType

from imc_sim.data.files import Table, file_options
from imc_sim.errors import ImcSimError

DEV_SPLITS = ("validation", "test")
"""The first of these that a dataset has is its dev split."""


def import_datasets(why: str) -> ModuleType:
    """The ``datasets`` package, or ``why`` as a one-line error when it is not installed."""
    try:
        import datasets
    except ImportError:
        raise ImcSimError(why) from None
    return datasets


def hub_table(name: str, config: str | None, split: str) -> Table:
    """``split`` ('train' or 'dev') of hub dataset ``name`` as a :class:`Table`; class-label columns
    hold their names, so the label set is the dataset's own. Without ``datasets``, the error names
    training's file options for 'train', evaluation's for 'dev' (:func:`~imc_sim.data.files.file_options`)."""
    datasets = import_datasets(
        f"--dataset {name} needs the datasets package (pip install 'imc-sim[hub]') and a network; "
        f"or give your own {file_options(split == 'train')}")
    try:
        splits = datasets.load_dataset(name, config)
    except Exception as exc:  # the hub's errors are many and unstructured (network, name, config)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImcSimError(f"could not load {name!r} from the hub: {first[:200]}") from None
    wanted = ["train"] if split == "train" else list(DEV_SPLITS)
    chosen = next((s for s in wanted if s in splits), None)
    if chosen is None:
        raise ImcSimError(f"hub dataset {name!r} has no {' or '.join(wanted)} split "
                          f"(it has {', '.join(splits)})")
    ds = splits[chosen]
    names = list(ds.column_names)
    class_names = {c: f.names for c, f in ds.features.items() if hasattr(f, "names")}
    rows = [[class_names[c][r[c]] if c in class_names and r[c] >= 0 else r[c] for c in names]
            for r in ds]
    return Table(f"{name}:{chosen}", names, rows, list(range(1, len(rows) + 1)))
