"""The help a user reads first: every sub-command's description is its module's whole first line."""

import argparse

from imc_sim.cli import COMMANDS, build_parser


def test_every_command_describes_itself_in_one_whole_sentence():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(sub.choices) == sorted(COMMANDS)
    for name, parser in sub.choices.items():
        text = parser.description
        assert text.startswith(f"``imc-sim {name}``: ") and text.endswith("."), (name, text)
