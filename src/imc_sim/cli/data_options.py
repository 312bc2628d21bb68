"""Data options shared by ``imc-sim train``, ``deploy`` and ``compare``: GLUE's layout, own files,
or a hub dataset (see :mod:`imc_sim.data`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imc_sim.data import DataSource


def add_data_options(p: argparse.ArgumentParser, training: bool, data_dir: bool = True) -> None:
    """--data-dir (when ``data_dir``), --train-file (when ``training``), --validation-file,
    --file-format, --header/--no-header, --text-column, --label-column, --dataset,
    --dataset-config."""
    g = p.add_argument_group(
        "data", "GLUE's layout (--data-dir, default $IMC_SIM_DATA, else the datasets hub), your own "
        "files (CSV, TSV, JSON lines), or a hub dataset")
    if data_dir:
        g.add_argument("--data-dir", help="GLUE layout folder (DIR/SST-2/train.tsv); "
                       "default $IMC_SIM_DATA, else the datasets hub")
    if training:
        g.add_argument("--train-file", metavar="FILE",
                       help="your own training data (.csv, .tsv, .jsonl); needs --validation-file")
    g.add_argument("--validation-file", metavar="FILE",
                   help="your own dev data, scored with the labels training found"
                   if training else "your own data to evaluate on (labels as in training)")
    g.add_argument("--file-format", choices=["csv", "tsv", "jsonl"],
                   help="format of the files (default: from the extension)")
    g.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                   help="whether the files' first row names the columns (default: "
                   + ("yes" if training else "as in training")
                   + "); with --no-header, give columns as 0-based indices")
    g.add_argument("--text-column", nargs="+", metavar="COLUMN",
                   help="text column name or 0-based index; two for sentence pairs (default: "
                   + ("the one or two columns besides the label" if training else "training's") + ")")
    g.add_argument("--label-column", metavar="COLUMN",
                   help="label column name or index (default: "
                   + ("'label'" if training else "training's") + "); labels are names or integers")
    g.add_argument("--dataset", metavar="NAME",
                   help="a Hugging Face hub dataset (needs `pip install datasets` and a network)")
    g.add_argument("--dataset-config", metavar="CONFIG", help="the hub dataset's configuration")


def data_source(args: argparse.Namespace) -> DataSource:
    """The :class:`~imc_sim.data.DataSource` that the parsed options describe, checked before any
    model is loaded."""
    from imc_sim.data import DataSource

    source = DataSource(
        data_dir=args.data_dir, train_file=getattr(args, "train_file", None),
        validation_file=args.validation_file, file_format=args.file_format, header=args.header,
        text_columns=tuple(args.text_column or ()), label_column=args.label_column,
        dataset=args.dataset, dataset_config=args.dataset_config,
    )
    source.check(training=hasattr(args, "train_file"))
    return source
