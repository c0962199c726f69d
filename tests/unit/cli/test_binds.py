"""Bind values as the CLI reads them: bare ports, Unix sockets, the title they give."""

from __future__ import annotations

import pytest

from sioctl.cli import config
from sioctl.cluster import identity
from sioctl.cluster.settings import check_bind, check_tcp_bind, unix_path


@pytest.mark.parametrize(
    ("given", "hostless"),
    [(("7341",), ["7341"]), ((":7341",), [":7341"]), (("127.0.0.1:7341",), []),
     (("0.0.0.0:7341",), []), (("[::1]:7341 7342",), ["7342"]), (("unix:/run/a.sock",), [])],
)
def test_hostless_binds(given: tuple[str, ...], hostless: list[str]) -> None:
    assert config.hostless_binds({"bind": given}) == hostless


def test_unix_binds_are_checked_and_name_the_default_title() -> None:
    assert unix_path("unix:/run/sioctl/app.sock") == "/run/sioctl/app.sock"
    assert unix_path("127.0.0.1:80") is None
    assert check_bind("unix:/run/sioctl/app.sock") is None
    assert "give the socket's path" in (check_bind("unix:") or "")
    assert "at most 107 bytes" in (check_bind("unix:/" + "x" * 120) or "")
    # Metrics are served over TCP only.
    assert "not supported here" in (check_tcp_bind("unix:/run/m.sock") or "")
    assert config.default_title("unix:/run/sioctl/app.sock") == "sioctl-app.sock"
    assert config.default_title("unix:/run/my app/") == "sioctl-my_app"
    assert config.default_title("127.0.0.1:7341") == "sioctl-7341"


def test_unix_socket_path_is_made_absolute() -> None:
    settings = config.build_settings({"app": "a:b", "bind": ("unix:run/app.sock",)},
                                     config.FileConfig(), cwd="/srv/app", environ={},
                                     cpu_count=1)
    assert settings.binds == ["unix:/srv/app/run/app.sock"]
    assert config.listen_urls(settings) == ["unix:/srv/app/run/app.sock"]


def test_identity_names_what_does_not_exist() -> None:
    assert identity.resolve("0", None) == (0, 0)
    with pytest.raises(LookupError, match="no user 'nosuchuser'"):
        identity.resolve("nosuchuser", None)
    with pytest.raises(LookupError, match="no group 'nosuchgroup'"):
        identity.resolve(None, "nosuchgroup")
