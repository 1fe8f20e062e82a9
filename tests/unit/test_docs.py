"""The man pages and completions say what the parser and the pod-file schema say: the committed pages
are what packaging/gendocs.py makes now, they render without groff warnings, and the bash completion
completes options, verbs and stored images."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO, tool

MAN = REPO / "packaging" / "man"


def gendocs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gendocs", REPO / "packaging" / "gendocs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_man_pages_are_current() -> None:
    pages: dict[str, str] = gendocs().man_pages()
    committed = {p.name: p.read_text() for p in MAN.iterdir()}
    stale = sorted(n for n in pages.keys() | committed.keys() if pages.get(n) != committed.get(n))
    assert stale == [], f"out of date: {stale}; run: python3 packaging/gendocs.py man packaging/man"


def test_a_page_for_every_verb_and_the_pod_file_keys() -> None:
    names = {p.name for p in MAN.iterdir()}
    assert {
        "nspod.1",
        "nspod-run.1",
        "nspod-image.1",
        "nspod-app.1",
        "nspod.pod.5",
        "nspod-security.7",
    } <= names
    run = (MAN / "nspod-run.1").read_text()
    assert "\\fB\\-\\-pull\\-policy\\fR" in run and "\\-\\-caps\\-retain" in run  # options and app flags
    pod = (MAN / "nspod.pod.5").read_text()
    assert "working\\-directory" in pod and "Restart" in pod and ".SH EXAMPLE" in pod


@pytest.mark.parametrize("page", sorted(p.name for p in MAN.iterdir()))
def test_pages_render_without_warnings(page: str) -> None:
    groff = tool("groff")
    done = subprocess.run(
        [groff, "-man", "-Tutf8", "-ww", "-z", str(MAN / page)], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr


def complete(script: Path, *words: str) -> list[str]:
    """What bash offers for the last of ``words``, with an ``nspod`` that knows one image."""
    program = (
        f"source {script}; nspod() {{ echo example.com/hello:1.0; }}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        'COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}\n'
        '_shtab_nspod; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_bash_completion(tmp_path: Path) -> None:
    pytest.importorskip("shtab")
    gendocs().write(str(tmp_path), gendocs().completions())
    script = tmp_path / "nspod"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert {"--pull-policy", "--detach", "--net"} <= set(complete(script, "nspod", "run", "--"))
    assert "cat-manifest" in complete(script, "nspod", "c")
    assert complete(script, "nspod", "image", "rm", "exa") == ["example.com/hello:1.0"]
    assert complete(script, "nspod", "run", "") == ["example.com/hello:1.0"]
    assert "_nspod_images" in (tmp_path / "_nspod").read_text()  # zsh's, with the same helpers
