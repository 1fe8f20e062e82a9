"""nspod's man pages and shell completions, made from its own parser, pod-file schema and default
confinement, so that they say what the code does (tests/unit/test_docs.py compares the committed
pages with a fresh run).

    python3 packaging/gendocs.py man DIR          nspod(1), nspod-VERB(1), nspod.pod(5), nspod-security(7)
    python3 packaging/gendocs.py completions DIR  nspod (bash) and _nspod (zsh), with shtab

Run from the checkout (or with it on PYTHONPATH); the Debian build runs both (packaging/debian/rules).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stage0 import __version__
from stage0.cli import build_parser, subparsers
from stage0.options import InsecureOption
from stage0.pods import podfile
from stage1.app_unit import DEFAULT_CAPABILITIES, HIDDEN, KERNEL_PROTECTION
from stage1.nat import GUARD, LOOPBACK, SHARED_TABLE
from stage1.seccomp import DEFAULT_DENIED
from stage1.volumes import DOC as VOLUMES

SEE_ALSO = ("systemd-nspawn(1)", "machinectl(1)", "systemctl(1)", "journalctl(1)")
SECURITY = (
    "Secure by default: an app reaches nothing of the host it was not given. Each app runs as a systemd "
    "unit inside its pod (a systemd-nspawn container with its own PID, mount, IPC and UTS namespaces), "
    "with the confinement below. Images are verified against trusted keys before they run."
)
NAMESPACES = (
    "RestrictNamespaces=yes in every app's unit: no app makes a namespace of any kind (user, mount, "
    "network, PID, IPC, UTS, cgroup, time), by clone, clone3, unshare or setns, so none gets the "
    "capabilities a user namespace of its own would give it. clone3 fails with ENOSYS (its flags are out "
    "of a filter's reach): libc falls back to clone. The apps of one pod share its PID namespace: an app "
    "sees the pod's other processes, may signal those of its own user, and a root app (CAP_KILL) all of "
    "them, the pod's systemd included (SIGRTMIN+3 halts the pod); it reads another app's files through "
    "/proc/PID/root when both run as the same user with the same capabilities. So it was in rkt: apps "
    "that must not reach each other belong in pods of their own."
)
# Completion of stored images and pods: what the read-only verbs print (members of group nspod may)
IMAGES = "nspod image list --no-legend --fields=name 2>/dev/null"
PODS = "nspod list -q 2>/dev/null"  # each pod's name (its UUID when it has none)
PODFILES = "nspod pod list 2>/dev/null | awk 'NR > 1 {print $1}'"
PREAMBLE = {
    "bash": f'_nspod_images() {{ compgen -W "$({IMAGES})" -- "$1"; }}\n'
    f'_nspod_pods() {{ compgen -W "$({PODS})" -- "$1"; }}\n'
    f'_nspod_podfiles() {{ compgen -W "$({PODFILES})" -- "$1"; }}\n',
    "zsh": f'_nspod_images() {{ compadd -- ${{(f)"$({IMAGES})"}}; }}\n'
    f'_nspod_pods() {{ compadd -- ${{(f)"$({PODS})"}}; }}\n'
    f'_nspod_podfiles() {{ compadd -- ${{(f)"$({PODFILES})"}}; }}\n',
}
SHTAB_155_CHOICES = 'current_action_choices="${!current_action_choices_var}"'
FILES = (
    ("/var/lib/nspod", "images (the content-addressed store) and pods; root's, readable by group nspod"),
    ("/etc/nspod/nspod.conf", "settings ([pool] size = N spare pods for nspod run, [cri] spares = N)"),
    ("/etc/nspod/pods/NAME.toml", "pod files, run by systemctl start pod@NAME (see nspod.pod(5))"),
    ("/etc/nspod/trustedkeys", "keys trusted to sign images (nspod trust)"),
    ("/run/nspod", "run-time state: pod files from elsewhere, the pool's socket, networks"),
)


def roff(text: str) -> str:
    """Text as roff prints it: backslashes and minus signs escaped, no line read as a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)  # groff's own names
    return "\n".join("\\&" + line if line[:1] in (".", "'") else line for line in text.splitlines())


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def header(name: str, section: int, summary: str) -> list[str]:
    return [
        f'.TH "{name.upper()}" "{section}" "" "nspod {__version__}" "nspod manual"',
        ".SH NAME",
        f"{roff(name)} \\- {roff(summary)}",
    ]


def see_also(pages: tuple[str, ...]) -> list[str]:
    links = [re.sub(r"^(.*)\((\d)\)$", r".BR \1 (\2)", roff(p)) for p in pages]
    return [".SH SEE ALSO", *[f"{link}{',' if i < len(links) - 1 else ''}" for i, link in enumerate(links)]]


def usage(parser: argparse.ArgumentParser) -> str:
    return " ".join(parser.format_usage().removeprefix("usage: ").split())


def expanded_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    return parser._get_formatter()._expand_help(action)


def options(parser: argparse.ArgumentParser, *, with_help: bool = True) -> Iterator[str]:
    """Each option as a tagged paragraph: its flags and value, then its help."""
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._HelpAction) and not with_help:
            continue
        value = ""
        if action.nargs != 0:
            value = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
            if action.choices and action.metavar is None:
                value = "{" + ",".join(str(c) for c in action.choices) + "}"
        flags = ", ".join(f"\\fB{roff(flag)}\\fR" + (f" \\fI{roff(value)}\\fR" if value else "")
                          for flag in action.option_strings)  # fmt: skip
        yield ".TP"
        yield flags
        yield roff(expanded_help(parser, action) or "(no description)")


def verbs(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each verb under ``parser``, in --help's order."""
    sub = subparsers(parser)
    if sub is None:
        return []
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    return [(name, helps.get(name, ""), p) for name, p in sub.choices.items()]


def verb_page(name: str, summary: str, parser: argparse.ArgumentParser) -> str:
    lines = header(f"nspod-{name}", 1, summary)
    lines += [".SH SYNOPSIS", f"\\fB{roff(usage(parser))}\\fR", ".SH DESCRIPTION"]
    lines += [roff(parser.description or sentence(summary))]
    if parser.epilog:  # a table, as --help shows it
        lines += [".PP", ".nf", roff(parser.epilog), ".fi"]
    own = list(options(parser))
    if own:
        lines += [".SH OPTIONS", *own]
    children = verbs(parser)
    if children:
        lines += [".SH COMMANDS"]
        for child, help_text, child_parser in children:
            lines += [f".SS nspod {roff(name)} {roff(child)}", roff(sentence(help_text))]
            lines += [".PP", f"\\fB{roff(usage(child_parser))}\\fR"]
            if child_parser.description:
                lines += [".PP", roff(child_parser.description)]
            child_options = list(options(child_parser, with_help=False))
            lines += [".RS", *child_options, ".RE"] if child_options else []
    lines += [".PP", "The global options of \\fBnspod\\fR(1) come before the verb."]
    lines += see_also(("nspod(1)", "nspod.pod(5)", "nspod-security(7)"))
    return "\n".join(lines) + "\n"


def main_page(parser: argparse.ArgumentParser) -> str:
    lines = header("nspod", 1, "run App Container pods as native systemd services")
    lines += [".SH SYNOPSIS", "\\fBnspod\\fR [\\fIGLOBAL OPTIONS\\fR] \\fIVERB\\fR [\\fIARGS\\fR]"]
    lines += [".SH DESCRIPTION", roff(parser.description or "")]
    lines += [".PP", roff("Each pod is a systemd service whose main process is systemd-nspawn, registered "
                          "with systemd-machined and logging to journald: systemctl, machinectl and "
                          "journalctl see every pod. Images are verified by default.")]  # fmt: skip
    lines += [".SH GLOBAL OPTIONS", *options(parser), ".SH COMMANDS"]
    for name, help_text, _ in verbs(parser):
        lines += [".TP", f".BR nspod\\-{roff(name)} (1)", roff(sentence(help_text))]
    lines += [".SH EXIT STATUS", roff(parser.epilog or ""), ".SH FILES"]
    for path, what in FILES:
        lines += [".TP", f"\\fI{roff(path)}\\fR", roff(what)]
    lines += see_also(("nspod.pod(5)", "nspod-security(7)", *SEE_ALSO))
    return "\n".join(lines) + "\n"


def schema_keys(schema: Any, node: Any) -> Iterator[tuple[str, str, str]]:
    """(key, type, description) of each property of a schema object, ``$ref`` followed."""
    for key, spec in node.get("properties", {}).items():
        target = schema["$defs"][spec["$ref"].rsplit("/", 1)[1]] if "$ref" in spec else spec
        kind = str(target.get("type", "value"))
        if kind == "array":
            items = target.get("items", {})
            enum = " | ".join(f'"{e}"' for e in items.get("enum", []))
            kind = "array of " + (enum or str(items.get("type", "tables")))
        required = ", required" if key in node.get("required", []) else ""
        yield key, kind + required, str(spec.get("description") or target.get("description") or "")


def pod_file_page() -> str:
    schema = json.loads(resources.files("stage0.schema").joinpath("schemas", "pod-file.json").read_text())
    lines = header("nspod.pod", 5, "pod files, run by systemctl start pod@NAME")
    lines += [
        ".SH SYNOPSIS",
        roff("/etc/nspod/pods/NAME.toml, /run/nspod/pods/NAME.toml, /usr/lib/nspod/pods/NAME.toml"),
    ]
    lines += [".SH DESCRIPTION", roff(str(schema.get("description", "")))]
    prose = (podfile.__doc__ or "").split("::")[0].strip().replace("``", "'")
    lines += [".PP", roff(prose + ".")]
    sections = (("TOP-LEVEL KEYS", schema), ("[[app]] KEYS", schema["$defs"]["app"]),
                ("[[volume]] KEYS", schema["$defs"]["volume"]))  # fmt: skip
    for title, node in sections:
        lines += [f".SH {roff(title)}"]
        for key, kind, note in schema_keys(schema, node):
            lines += [".TP", f"\\fB{roff(key)}\\fR (\\fI{roff(kind)}\\fR)", roff(note or "See the example.")]
    service = "systemd settings of pod@NAME.service, written by 'nspod pod install NAME' as a drop-in."
    lines += [
        ".SH [service] KEYS",
        roff(service),
        ".PP",
        roff("[Unit] keys: " + ", ".join(podfile.UNIT_KEYS) + "."),
        ".PP",
        roff("[Service] keys: " + ", ".join(podfile.SERVICE_KEYS) + "."),
        ".PP",
        roff(
            "systemd reads the unit before nspod runs: a pod file copied in or edited takes effect with "
            "'nspod pod install NAME' and a restart; until then each start warns."
        ),
    ]
    example = podfile.__doc__.split("::", 1)[1] if podfile.__doc__ else ""
    lines += [".SH EXAMPLE", ".nf", roff(re.sub(r"(?m)^    ", "", example.strip("\n"))), ".fi"]
    lines += see_also(("nspod(1)", "nspod-pod(1)", "systemd.service(5)"))
    return "\n".join(lines) + "\n"


def security_page() -> str:
    lines = header("nspod-security", 7, "what an app in a pod can reach, and what relaxes it")
    lines += [".SH DESCRIPTION", roff(SECURITY)]
    lines += [".SH KERNEL PROTECTION"]
    for setting, value in KERNEL_PROTECTION:
        done = "for every app: this setting, or binds doing the same (stage1/kernel_binds.py)"
        lines += [".TP", f"\\fB{roff(setting)}={roff(value)}\\fR", roff(done)]
    capabilities = f"The bounding set an app keeps ({len(DEFAULT_CAPABILITIES)}, rkt's): "
    capabilities += ", ".join(DEFAULT_CAPABILITIES) + "; an os/linux/capabilities-* isolator changes it."
    lines += [".SH CAPABILITIES", roff(capabilities)]
    hidden = "Covered in every app (those the host's kernel has), empty or refused by every path to them: "
    lines += [".SH HIDDEN PATHS", roff(hidden + ", ".join(HIDDEN) + ".")]
    lines += [".SH VOLUMES", roff(VOLUMES)]
    calls = "Denied with EPERM unless an os/linux/seccomp-* isolator says otherwise: "
    lines += [".SH SYSTEM CALLS", roff(calls + ", ".join(DEFAULT_DENIED) + ".")]
    lines += [".SH NAMESPACES", roff(NAMESPACES)]
    *others, last = ", ".join(a.strip("{ }") for a in LOOPBACK.values()).split(", ")
    loopback = f"{', '.join(others)} or {last}"
    network = (
        "A pod has a network namespace of its own (unless --net=host) and reaches the host's addresses"
        " as any other machine on its net does. It reaches nothing bound to the host's loopback, even"
        " with CAP_NET_RAW: forwarding a port from 127.0.0.1 sets route_localnet on the pod's host"
        f" interface, and the table inet {SHARED_TABLE} (chain {GUARD}) drops, before connection tracking,"
        f" whatever arrives on another interface than lo addressed to or from {loopback}."
    )
    lines += [".SH NETWORK", roff(network)]
    lines += [
        ".SH RELAXING IT",
        roff("--insecure-options (or a pod file's insecure-options) lifts parts of it:"),
    ]
    meanings = {
        "image": "run images without a verified signature",
        "tls": "accept any TLS certificate and host name",
        "http": "allow plain HTTP",
        "pubkey": "fetch public keys over insecure transports",
        "ondisk": "accepted for compatibility; nothing to skip",
        "capabilities": "apps keep every capability the pod has",
        "paths": "the kernel protection and hidden paths above are lifted",
        "seccomp": "no system call filter",
        "namespaces": "apps may make namespaces with clone and clone3 (no RestrictNamespaces=; unshare and "
        "setns stay in the system call filter, which seccomp or an isolator lifts)",
    }
    for option in InsecureOption:
        expands = sorted(o.value for o in option.expand())
        meaning = meanings.get(option.value) or ("the default: nothing lifted" if not expands else
                                                 "all of: " + ", ".join(expands))  # fmt: skip
        lines += [".TP", f"\\fB{roff(option.value)}\\fR", roff(meaning)]
    lines += see_also(("nspod(1)", "nspod-run(1)", "systemd.exec(5)", "capabilities(7)"))
    return "\n".join(lines) + "\n"


def man_pages() -> dict[str, str]:
    parser = build_parser()
    pages = {
        "nspod.1": main_page(parser),
        "nspod.pod.5": pod_file_page(),
        "nspod-security.7": security_page(),
    }
    for name, help_text, verb_parser in verbs(parser):
        pages[f"nspod-{name}.1"] = verb_page(name, help_text, verb_parser)
    return pages


def helper(action: argparse.Action, verb: str) -> str | None:
    """The completion function for an argument, by what it takes (its metavar)."""
    metavar = str(action.metavar or "")
    if metavar == "NAME" and verb == "nspod pod":
        return "_nspod_podfiles"
    if metavar in ("UUID", "POD"):
        return "_nspod_pods"
    if metavar.startswith("IMAGE"):
        return "_nspod_images"
    return None


def completions() -> dict[str, str]:
    import shtab  # only here: the build and the tests have it, nspod does not need it

    parser = build_parser()
    for _, _, verb_parser in verbs(parser):
        for action in [a for p in [verb_parser, *(c for _, _, c in verbs(verb_parser))] for a in p._actions]:
            name = helper(action, verb_parser.prog)
            if name:
                action.complete = {"bash": name, "zsh": name}  # type: ignore[attr-defined]
            elif str(action.metavar or "").endswith(("FILE", ".aci", "MANIFEST", "DIR")):
                action.complete = shtab.FILE  # type: ignore[attr-defined]
    bash = shtab.complete(parser, shell="bash", preamble=PREAMBLE["bash"])
    # Debian 12's shtab (1.5.5) keeps choices in arrays but reads them as ${!name}, the first only;
    # read whole, one a line, as the completion splits them
    fixed = 'local IFS=$\'\\n\'; eval "current_action_choices=\\"\\${${current_action_choices_var}[*]}\\""'
    bash = bash.replace(SHTAB_155_CHOICES, fixed)
    return {"nspod": bash, "_nspod": shtab.complete(parser, shell="zsh", preamble=PREAMBLE["zsh"])}


def write(directory: str, files: dict[str, str]) -> None:
    os.makedirs(directory, exist_ok=True)
    for name, text in files.items():
        Path(directory, name).write_text(text)


if __name__ == "__main__":
    what, target = sys.argv[1:3] if len(sys.argv) == 3 else ("", "")
    if what not in ("man", "completions"):
        sys.exit("usage: gendocs.py man|completions DIR")
    write(target, man_pages() if what == "man" else completions())
