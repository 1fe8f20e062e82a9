"""The settings table (stage0/settings.py) against what it describes: every flag of the global
parser and of the pod verbs is in it (with its value-taking right), the pod file's schema has
exactly its keys, and the lists derived from it are what the CLI and the pool use."""

from __future__ import annotations

import argparse
import json

import pytest

from stage0.cli import _TAKES_VALUE, build_parser, requested_verb
from stage0.settings import SETTINGS, Pooling, Scope, cold_pod_options, global_fields, podfile_keys
from tests.conftest import REPO


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.dest not in ("help", "version")]


def verb_parser(*path: str) -> argparse.ArgumentParser:
    parser = build_parser(list(path))
    for word in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return parser


def check(actions: list[argparse.Action], scope: Scope) -> None:
    table = {s.dest: s for s in SETTINGS if s.scope is scope}
    for action in actions:
        setting = table.get(action.dest)
        assert setting is not None, f"{action.option_strings} is not in stage0/settings.py"
        assert setting.flag in action.option_strings, (setting.flag, action.option_strings)
        assert setting.takes_value == (action.nargs != 0), setting.flag


def test_every_global_flag_is_in_the_table() -> None:
    actions = options(build_parser(["version"]))
    check(actions, Scope.GLOBAL)
    assert {a.dest for a in actions} == {s.dest for s in SETTINGS if s.scope is Scope.GLOBAL}


@pytest.mark.parametrize("verb", [("run",), ("prepare",), ("app", "sandbox")], ids=" ".join)
def test_every_pod_flag_is_in_the_table(verb: tuple[str, ...]) -> None:
    check(options(verb_parser(*verb)), Scope.POD)


def test_no_pod_setting_is_left_over() -> None:
    verbs = [("run",), ("prepare",), ("app", "sandbox")]
    given = {a.dest for verb in verbs for a in options(verb_parser(*verb))}
    assert given == {s.dest for s in SETTINGS if s.scope is Scope.POD}


def test_the_pod_file_schema_has_the_tables_keys() -> None:
    schema = json.loads((REPO / "stage0/schema/schemas/pod-file.json").read_text())
    assert set(schema["properties"]) == set(podfile_keys())


def test_derived_lists() -> None:
    assert set(_TAKES_VALUE) == {"--dir", "--local-config", "--system-config", "--insecure-options",
                                 "--stage1", "--platform"}  # fmt: skip
    assert requested_verb(["--stage1", "/bin/x", "run", "img"]) == "run"
    assert requested_verb(["--platform", "linux/arm64", "fetch", "img"]) == "fetch"
    assert {"pod_name", "volume", "port", "rm", "tty"} <= set(cold_pod_options())
    assert "set_env" not in cold_pod_options() and "detach" not in cold_pod_options()
    assert set(global_fields(Pooling.SAME)) == {"dir", "local_config", "system_config"}
    assert set(global_fields(Pooling.COLD)) == {"stage1", "debug"}
