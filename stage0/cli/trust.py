"""``nspod trust``: trust a public key for images under a name prefix (or for all images)."""

from __future__ import annotations

import argparse
import os
import sys

from stage0.options import GlobalOptions


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    trust = verbs.add_parser("trust", help="trust a key for signing images under a prefix")
    scope = trust.add_mutually_exclusive_group(required=True)
    scope.add_argument("--prefix", help="image name prefix the key may sign, e.g. example.com/app")
    scope.add_argument("--root", action="store_true", help="trust the key for every image (needs KEY)")
    trust.add_argument(
        "keys", nargs="*", metavar="KEY", help="key file or https:// URL (default: discovery)"
    )
    trust.add_argument("--skip-fingerprint-review", action="store_true", help="do not ask before trusting")
    trust.add_argument(
        "--cosign-key",
        metavar="KEY.pub",
        help="trust a cosign public key for OCI images under --prefix docker://REGISTRY/REPO",
    )
    trust.set_defaults(handler=run_trust)


def _fingerprint_groups(fingerprint: str) -> str:
    return " ".join(fingerprint[i : i + 4].upper() for i in range(0, len(fingerprint), 4))


def _ask(question: str) -> bool:
    from stage0.images.trust.keystore import TrustError

    while True:
        sys.stderr.write(question)
        sys.stderr.flush()
        answer = sys.stdin.readline()
        if not answer:
            raise TrustError(
                "no answer to the fingerprint review (stdin closed)",
                hint="check the fingerprint and pass --skip-fingerprint-review",
            )
        reply = answer.strip().lower()
        if reply in ("y", "yes", "n", "no"):
            return reply.startswith("y")
        sys.stderr.write("Please answer yes or no.\n")


def _key_sources(options: GlobalOptions, args: argparse.Namespace) -> list[tuple[str, bytes]]:
    from stage0.context import http
    from stage0.errors import InputError
    from stage0.images.fetch.discovery import discover
    from stage0.images.trust.keystore import TrustError
    from stage0.options import InsecureOption

    client = http(options)
    locations: list[str] = list(args.keys)
    if not locations:
        if args.root:
            raise TrustError(
                "--root needs a KEY", hint="give the key file or URL; root keys are never discovered"
            )

        locations = discover(args.prefix, {}, client.page, want_keys=True).keys
    found = []
    for location in locations:
        if location.startswith(("https://", "http://")):
            if location.startswith("http://") and not options.allows(InsecureOption.PUBKEY):
                raise TrustError(
                    f"refusing to fetch a key over plain HTTP: {location}",
                    hint="use https, or --insecure-options=pubkey,http",
                )
            response = client.get(location)
            if response.status != 200:
                raise TrustError(f"cannot fetch key {location}: HTTP {response.status}")
            found.append((location, response.body))
        else:
            try:
                with open(location, "rb") as file:
                    found.append((os.path.abspath(location), file.read()))
            except OSError as error:
                raise InputError(f"cannot read key {location}: {error.strerror}") from None
    return found


def run_trust(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.context import keystore
    from stage0.images.trust.keystore import TrustError, check_prefix
    from stage0.images.trust.verify import read_keys

    if args.cosign_key is not None:
        return _trust_cosign(options, args)
    prefix = None if args.root else check_prefix(args.prefix)
    store = keystore(options)
    scope = "all images (root key)" if prefix is None else f"prefix {prefix!r}"
    for location, data in _key_sources(options, args):
        for key in read_keys(data, location):
            if key.revoked:
                raise TrustError(
                    f"key {key.fingerprint} from {location} is revoked", hint="get the signer's new key"
                )
            print(
                f"Prefix: {prefix or '(root)'}\nKey: {location}\n"
                f"GPG key fingerprint is: {_fingerprint_groups(key.fingerprint)}",
                file=sys.stderr,
            )
            for user_id in key.user_ids:
                print(f"\t{user_id}", file=sys.stderr)
            if not args.skip_fingerprint_review and not _ask(
                "Are you sure you want to trust this key (yes/no)? "
            ):
                print(f"Not trusting {key.fingerprint}", file=sys.stderr)
                continue
            path, new = store.add(key.fingerprint, key.armored, prefix)
            state = "Added" if new else "Already trusted:"
            print(f"{state} key {key.fingerprint} for {scope} at {path}")
    return 0


def _trust_cosign(options: GlobalOptions, args: argparse.Namespace) -> int:
    """A cosign key for the OCI images of a registry prefix (stage0/images/trust/cosign.py)."""
    from stage0.context import keystore
    from stage0.errors import InputError, UsageError
    from stage0.images.trust.cosign import CosignKeys, load_key

    if args.root or args.keys or not (args.prefix or "").startswith("docker://"):
        raise UsageError(
            "--cosign-key needs --prefix docker://REGISTRY[/REPO] and no other KEY",
            hint="nspod trust --prefix docker://registry.example.com/team --cosign-key cosign.pub",
        )
    try:
        with open(args.cosign_key, "rb") as file:
            pem = file.read()
    except OSError as error:
        raise InputError(f"cannot read key {args.cosign_key}: {error.strerror}") from None
    fingerprint, _ = load_key(pem, args.cosign_key)
    print(f"Prefix: {args.prefix}\nCosign key: {args.cosign_key}\nSHA-256: {fingerprint}", file=sys.stderr)
    if not args.skip_fingerprint_review and not _ask("Are you sure you want to trust this key (yes/no)? "):
        print(f"Not trusting {fingerprint}", file=sys.stderr)
        return 0
    store = keystore(options)
    path, new = CosignKeys(store.system, store.local).add(args.prefix, pem, args.cosign_key)
    print(f"{'Added' if new else 'Already trusted:'} cosign key {fingerprint} for {args.prefix} at {path}")
    return 0
