"""The README's concrete `nspod …` examples are command lines nspod takes as meant (issue #9: the
--save-as example, written after the image, was read as an app argument)."""

from __future__ import annotations

import re
import shlex

import pytest

from stage0.cli import build_parser, requested_verb, subparsers
from stage0.cli.app_flags import parse_apps
from tests.conftest import REPO


def examples() -> list[str]:
    """Lines of the README's sh blocks that are one whole, concrete nspod command (no synopsis
    brackets, alternatives or ellipses)."""
    blocks = re.findall(r"```sh\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [
        line
        for line in lines
        if line.startswith("nspod ") and not any(mark in line for mark in ("[", "|", "…", "\\", "  /  "))
    ]


def test_there_are_examples() -> None:
    assert len(examples()) >= 12


@pytest.mark.parametrize("line", examples())
def test_example_means_what_it_says(line: str) -> None:
    words = shlex.split(line)[1:]
    # the shell's redirections are not nspod's words
    argv = words[: next((i for i, w in enumerate(words) if w in ("<", ">", "|")), len(words))]
    parser = build_parser(argv)
    verbs = subparsers(parser)
    assert verbs is not None
    verb = requested_verb(argv)  # after any global options
    assert verb is not None, line
    pod_flags = {flag for action in verbs.choices[verb]._actions for flag in action.option_strings}
    args, extra = parser.parse_known_args(argv)
    assert extra == [], f"{line}: nspod would not take {extra}"
    if verb in ("run", "prepare") and not args.pod_manifest:
        apps = parse_apps(args.images)
        assert apps, line
        for app in apps:  # a pod flag among an app's arguments was meant for the pod
            stray = [a for a in app.args or () if a.split("=")[0] in pod_flags - {"--name", "--mount", "-h"}]
            assert stray == [], f"{line}: {stray} would reach the app, not nspod"
