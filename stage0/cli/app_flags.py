"""The flags that follow an image in ``nspod run|prepare|app add`` and apply to its app alone
(rkt's positional syntax), and the parser that splits ``IMAGE [APP FLAGS] [-- ARGS ---] …``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stage0.pods.requests import AppRequest

# Flags that follow an image and apply to its app only (rkt's syntax), with what they do.
APP_FLAG_HELP = {
    "--name": "the app's name (default: from the image name)",
    "--exec": "the program to run instead of the image's (absolute, or looked up on PATH)",
    "--environment": "NAME=VALUE for this app, over everything else (repeatable)",
    "--user": "user name or UID to run as (resolved in the image)",
    "--group": "group name or GID to run as (resolved in the image)",
    "--working-dir": "the app's working directory",
    "--signature": "the image's detached signature file",
    "--mount": "volume=NAME,target=/path[,readOnly=true]: a pod volume in this app (repeatable)",
    "--stop-timeout": "seconds from SIGTERM to SIGKILL when the app stops (default 10)",
    "--memory": "memory limit, e.g. 512M (appc resource/memory)",
    "--cpu": "CPU limit, e.g. 500m for half a CPU (appc resource/cpu)",
    "--cpu-shares": "relative CPU weight, 2-262144 (os/linux/cpu-shares)",
    "--oom-score-adj": "the app's OOM score adjustment, -1000-1000",
    "--caps-retain": "CAP_A,CAP_B: exactly these capabilities (instead of the default 14)",
    "--caps-remove": "CAP_A,CAP_B: the default capabilities but these",
    "--seccomp": "mode=retain|remove[,errno=E],CALL|@SET,…: the app's system call filter",
    "--supplementary-gids": "G1,G2: the app's supplementary groups (instead of the image's)",
    "--readonly-rootfs": "[=true|false]: the app's root read-only (its writable volumes stay writable)",
    "--health-cmd": "the app's health check: a shell command, a JSON array, or none (podman's)",
    "--health-interval": "time between checks, e.g. 30s (default), 1m, 500ms",
    "--health-timeout": "a check's time limit (default 30s)",
    "--health-retries": "failures in a row that make the app unhealthy (default 3)",
    "--health-start-period": "time after the app's start whose failures do not count (default 0s)",
    "--health-on-failure": "none|restart|kill: what an unhealthy app gets (default none)",
}
SWITCHES = ("--readonly-rootfs",)  # app flags that need no value
APP_FLAGS = tuple(APP_FLAG_HELP)
# podman's spellings of app flags, after an image as before it (stage0/cli/podman_flags.py)
PODMAN_APP_FLAGS = {"-e": "--environment", "--env": "--environment", "-u": "--user",
                    "-w": "--working-dir", "--workdir": "--working-dir"}  # fmt: skip
APP_EPILOG = (
    "app flags (after an image, for its app only; '--' starts the app's arguments, '---' ends them):\n"
    + "\n".join(f"  {flag:<22}{text}" for flag, text in APP_FLAG_HELP.items())
    + "\n  -e, -u USER[:GROUP], -w: podman's --environment, --user (and --group), --working-dir"
    + "\n\npodman's IMAGE COMMAND ARGS: after an image, a word starting with '/' that is not an image"
    + "\nfile (*.aci, or an existing archive) is the app's command and every word after it (up to"
    + "\n'---') an argument; a bare word there (no '/', '.' or ':') is refused as ambiguous."
)
ARCHIVES = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")  # gzip, bzip2, xz, zstd


def is_image_file(word: str) -> bool:
    """Whether ``/word`` names an image (rkt's) rather than a command (podman's): an ``.aci``, or an
    existing file that is an archive (an ACI, compressed or a plain tar), never a program or script."""
    if word.endswith(".aci"):
        return True
    try:
        with open(word, "rb") as file:
            head = file.read(512)
    except OSError:  # missing, a directory, unreadable: a path inside the image
        return False
    return head.startswith(ARCHIVES) or head[257:262] == b"ustar"


def command_word(word: str, is_image: Callable[[str], bool]) -> bool:
    """After an image with no command yet: whether ``word`` is its command (podman's IMAGE CMD ARGS)
    and not a second image (rkt's IMAGE IMAGE); a bare word could be either, so it is refused."""
    from stage0.errors import UsageError

    if word.startswith("/"):
        return not word.endswith(".aci") and not is_image(word)
    if not any(c in word for c in "/.:,") and not word.startswith("sha512-"):
        raise UsageError(
            f"{word!r} after an image: a command or another image?",
            hint=f"a command by its absolute path (/bin/{word}) or --exec={word};"
            f" another image after '---' (IMAGE --- {word})",
        )
    return False


def parse_apps(tokens: list[str], is_image: Callable[[str], bool] = is_image_file) -> list[AppRequest]:
    """Split ``IMAGE [APP FLAGS] [-- ARGS ---] …`` (or ``IMAGE [APP FLAGS] /COMMAND ARGS… [---] …``)
    into AppRequests."""
    from stage0.errors import UsageError
    from stage0.pods.health import checked
    from stage0.pods.podman import split_user
    from stage0.pods.requests import (
        PROFILE_FLAGS,
        AppRequest,
        parse_env,
        parse_mount,
        parse_seconds,
        profile_option,
    )

    apps: list[dict[str, Any]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--":
            if not apps:
                raise UsageError("'--' before any image", hint="nspod run IMAGE -- ARGS")
            end = tokens.index("---", i + 1) if "---" in tokens[i + 1 :] else len(tokens)
            apps[-1]["args"] = tuple(tokens[i + 1 : end])
            i = end + 1
            continue
        if token == "---" and apps and "args" not in apps[-1]:
            apps[-1]["args"] = None  # IMAGE --- IMAGE: the app ends here, with the image's arguments
            i += 1
            continue
        no_command = bool(apps) and "args" not in apps[-1] and "exec" not in apps[-1]
        if no_command and not token.startswith("-") and command_word(token, is_image):
            end = tokens.index("---", i + 1) if "---" in tokens[i + 1 :] else len(tokens)
            apps[-1]["exec"], apps[-1]["args"] = token, tuple(tokens[i + 1 : end])  # podman's IMAGE CMD ARGS
            i = end + 1
            continue
        if token.startswith("-") and token != "-":
            key, equals, value = token.partition("=")
            user_group, key = key == "-u", PODMAN_APP_FLAGS.get(key, key)  # -u USER[:GROUP] is podman's
            if key not in APP_FLAGS:
                raise UsageError(
                    f"unknown option {key} after an image",
                    hint=f"app options: {', '.join(APP_FLAGS)}; pod options come first",
                )
            if not equals and key in SWITCHES:
                value = "true"  # rkt's --readonly-rootfs alone is --readonly-rootfs=true
            elif not equals:
                if i + 1 >= len(tokens):
                    raise UsageError(f"{key} needs a value")
                i += 1
                value = tokens[i]
            if not apps:
                raise UsageError(
                    f"{key} before any image", hint="app options follow the image they apply to"
                )
            field = key[2:].replace("-", "_")
            if field == "environment":
                apps[-1]["environment"] = (
                    *apps[-1].get("environment", ()),
                    parse_env(value, "--environment"),
                )
            elif field == "mount":
                apps[-1]["mounts"] = (*apps[-1].get("mounts", ()), parse_mount(value))
            elif field == "stop_timeout":
                apps[-1]["stop_timeout"] = parse_seconds(value, key)
            elif field.startswith("health_"):
                health = (key[len("--health-") :], checked(key[len("--health-") :], value))
                apps[-1]["health"] = (*apps[-1].get("health", ()), health)
            elif key in PROFILE_FLAGS:
                profile_option(apps[-1], key, value)
            elif user_group:
                apps[-1]["user"], group = split_user(value)
                apps[-1].update({"group": group} if group else {})
            else:
                apps[-1][field] = value
        else:
            apps.append({"image": token})
        i += 1
    return [AppRequest(**app) for app in apps]


# podman's habit: the health flags before the image (``nspod run --health-cmd=… IMAGE``), for every
# app of the command line; an app's own flag after its image wins, key by key
HEALTH_FLAGS = tuple(flag for flag in APP_FLAGS if flag.startswith("--health-"))


def add_health_arguments(parser: Any) -> None:
    for flag in HEALTH_FLAGS:
        parser.add_argument(flag, metavar="VALUE", help=APP_FLAG_HELP[flag] + " (every app; podman's)")


def with_pod_health(apps: list[AppRequest], args: Any) -> list[AppRequest]:
    """``apps`` with the health flags given before the images under each app's own."""
    import dataclasses

    from stage0.pods.health import checked

    given = [(f[len("--health-") :], getattr(args, f[2:].replace("-", "_"), None)) for f in HEALTH_FLAGS]
    pod = tuple((key, checked(key, value)) for key, value in given if value is not None)
    return [dataclasses.replace(app, health=tuple((dict(pod) | dict(app.health)).items())) for app in apps]
