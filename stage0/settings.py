"""Every setting a user gives nspod, in one table: its command-line flag, where argparse keeps it,
its pod-file key (and so its key in the pod file's JSON Schema, stage0/schema/schemas/
pod-file.json), whether it takes a value, and whether a warm-pool spare can serve a run that
gives it. The lists other modules need are derived from here, never kept by hand: the global
flags that take a value (the CLI finds the verb past them), the options that make a run cold
(stage0/pool/spares.py), the pod file's keys. tests/unit/test_settings.py checks the table against
the parser and the schema, so a new flag cannot be forgotten in one of them."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Pooling(enum.StrEnum):
    """What a setting does to a run the warm pool could serve (stage0/pool/spares.py cold_reason)."""

    SAFE = "safe"  # a spare serves it, whatever its value
    COLD = "cold"  # given at all, the run starts cold (a spare was booted without it)
    SAME = "same"  # must be the keeper's own (its store and configuration), else cold
    CHECKED = "checked"  # cold unless its default; cold_reason says which value (net, pull policy…)


class Scope(enum.StrEnum):
    GLOBAL = "global"  # before the verb (GlobalOptions)
    POD = "pod"  # a pod's, after run / prepare / app sandbox


@dataclass(frozen=True, slots=True)
class Setting:
    flag: str
    dest: str  # argparse's attribute (for a global: GlobalOptions' field is ``field``)
    scope: Scope
    takes_value: bool
    pool: Pooling
    podfile: str | None = None  # the pod file's top-level key, None: not in pod files
    field: str | None = None  # GlobalOptions' field when it is not ``dest``

    @property
    def attribute(self) -> str:
        return self.field or self.dest


G, P = Scope.GLOBAL, Scope.POD
SAFE, COLD, SAME, CHECKED = Pooling.SAFE, Pooling.COLD, Pooling.SAME, Pooling.CHECKED

SETTINGS: tuple[Setting, ...] = (
    Setting("--dir", "dir", G, True, SAME),
    Setting("--local-config", "local_config", G, True, SAME),
    Setting("--system-config", "system_config", G, True, SAME),
    Setting("--debug", "debug", G, False, COLD),
    Setting("--insecure-options", "insecure_options", G, True, SAFE, field="insecure"),
    Setting("--stage1", "stage1", G, True, COLD, "stage1"),
    Setting("--platform", "platform", G, True, SAFE),
    Setting("--trust-keys-from-https", "trust_keys_from_https", G, False, SAFE),
    # after the verb: what a pod is
    Setting("--insecure-options", "insecure_options_after_verb", P, True, SAFE, "insecure-options"),
    Setting("--name", "pod_name", P, True, COLD),
    Setting("--hostname", "hostname", P, True, COLD, "hostname"),
    Setting("--set-env", "set_env", P, True, SAFE, "environment"),
    Setting("--set-env-file", "set_env_file", P, True, COLD),
    Setting("--inherit-env", "inherit_env", P, False, COLD),
    Setting("--uuid-file-save", "uuid_file_save", P, True, COLD),
    Setting("--pull-policy", "pull_policy", P, True, CHECKED),
    Setting("--volume", "volume", P, True, COLD, "volume"),
    Setting("--mount", "mount", P, True, COLD),
    Setting("--private-users", "private_users", P, False, COLD, "private-users"),
    Setting("--dns", "dns", P, True, COLD),
    Setting("--dns-search", "dns_search", P, True, COLD),
    Setting("--dns-opt", "dns_opt", P, True, COLD),
    Setting("--dns-domain", "dns_domain", P, True, COLD),
    Setting("--hosts-entry", "hosts_entry", P, True, COLD),
    Setting("--net", "net", P, True, CHECKED, "net"),
    Setting("--port", "port", P, True, COLD, "port"),
    Setting("--mds-register", "mds_register", P, False, CHECKED, "mds-register"),
    Setting("--pod-manifest", "pod_manifest", P, True, COLD),
    # podman's own (stage0/cli/podman_flags.py); its aliases of rkt's flags are rkt's settings
    Setting("--publish", "publish", P, True, COLD, "publish"),
    Setting("--user", "user", P, True, SAFE),  # app flags, as those after the image
    Setting("--workdir", "workdir", P, True, SAFE),
    # podman's health flags before the image, for every app (stage0/cli/app_flags.py): a spare has no check
    *(
        Setting(f"--health-{k}", f"health_{k.replace('-', '_')}", P, True, COLD)
        for k in ("cmd", "interval", "timeout", "retries", "start-period", "on-failure")
    ),
    # how the command runs it (run only)
    Setting("--detach", "detach", P, False, SAFE),
    Setting("--interactive", "interactive", P, False, COLD),
    Setting("--tty", "tty", P, False, COLD),
    Setting("--rm", "rm", P, False, COLD),
    Setting("--save-as", "save_as", P, True, COLD),
    Setting("--quiet", "quiet", P, False, SAFE),  # prepare's: only the UUID
)

# pod-file keys that are tables of their own, not flags: the apps (IMAGE …) and the unit's settings
PODFILE_TABLES = ("app", "service")
# pod-file keys no flag has: how nspod auto-update treats the pod
PODFILE_ONLY = ("auto-update", "auto-update-timeout")


def global_flags_with_values() -> tuple[str, ...]:
    """The global flags whose value is the next word (the CLI skips them to find the verb)."""
    return tuple(s.flag for s in SETTINGS if s.scope is Scope.GLOBAL and s.takes_value)


def cold_pod_options() -> tuple[str, ...]:
    """The pod options (argparse attributes) that make a run cold whenever they are given."""
    return tuple(s.dest for s in SETTINGS if s.scope is Scope.POD and s.pool is Pooling.COLD)


def global_fields(pool: Pooling) -> tuple[str, ...]:
    """The GlobalOptions fields with that pooling."""
    return tuple(s.attribute for s in SETTINGS if s.scope is Scope.GLOBAL and s.pool is pool)


def podfile_keys() -> tuple[str, ...]:
    """The pod file's top-level keys: the settings' own, then its tables."""
    return tuple(s.podfile for s in SETTINGS if s.podfile) + PODFILE_TABLES + PODFILE_ONLY
