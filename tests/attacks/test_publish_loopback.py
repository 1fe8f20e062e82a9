"""podman's ``-p HOSTPORT:PORT`` opens the same forward as ``--port`` (issue #27, item 5), and to a
port the image may not declare (one made up for it): a pod so published still cannot reach the
host's loopback services (the CVE-2020-8558 pattern of test_host_loopback.py, the same attack)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.attacks.conftest import Nspod
from tests.attacks.test_host_loopback import Host, assert_held, attack, host, image  # noqa: F401 (fixtures)

pytestmark = pytest.mark.systemd


def test_a_pod_published_on_a_made_up_port_cannot_reach_the_hosts_loopback(
    nspod: Nspod,
    image: Path,  # noqa: F811
    host: Host,  # noqa: F811
) -> None:
    # (-p 18196:80 is the image's port http: the very forward of --port=http:18090, tested there)
    tries = attack(nspod, image, host, "-p", "127.0.0.1:18196:8080")
    assert len(tries) >= 20, tries  # every try ran
    assert_held(tries, host)
