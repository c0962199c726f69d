"""The nginx configs sioctl writes: what they say, that nginx accepts them (``nginx -t``), that
the templates in nginx/ are what ``sioctl nginx`` prints, and the command's errors."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from sioctl.cli import nginx
from sioctl.cli.nginx import Address, LocalRun, NginxConfigError, Tls
from tests.support.paths import REPO_ROOT

TEMPLATES = REPO_ROOT / "nginx"
TWO_NODES = [Address("10.0.0.11", 7001), Address("10.0.0.12", 7001)]
ONE_NODE = [Address("127.0.0.1", 7001)]


def nginx_binary() -> str:
    """The nginx executable; skips the test when there is none."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                      else None)
    if found is None:
        pytest.skip("nginx is not installed (scripts/setup.sh installs it)")
    return found


def stream_module() -> str:
    """Path of the stream module to load; skips when nginx has no stream module here."""
    if os.path.exists(nginx.DEBIAN_STREAM_MODULE):
        return nginx.DEBIAN_STREAM_MODULE
    out = subprocess.run([nginx_binary(), "-V"], capture_output=True, text=True).stderr
    if re.search(r"--with-stream(\s|$)", out):
        return ""  # built in
    pytest.skip("nginx has no stream module (Debian: apt-get install libnginx-mod-stream)")


def nginx_test(text: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on ``text`` written to ``directory``/nginx.conf, prefix ``directory``."""
    conf = directory / "nginx.conf"
    conf.write_text(text)
    return subprocess.run(
        [nginx_binary(), "-t", "-p", str(directory), "-e", str(directory / "error.log"),
         "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def assert_valid(text: str, directory: Path) -> None:
    result = nginx_test(text, directory)
    assert result.returncode == 0, f"nginx -t failed:\n{result.stderr}\n--- config ---\n{text}"


def directives(text: str) -> list[str]:
    """The config's lines without comments and indentation."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A self-signed certificate for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (scripts/setup.sh installs it)")
    directory = tmp_path_factory.mktemp("nginx-tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return Tls(str(cert), str(key))


# ---- parsing ----

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1:7001", Address("10.0.0.1", 7001)),
        ("node-a.example.com:80", Address("node-a.example.com", 80)),
        ("[::1]:7001", Address("::1", 7001)),
        (" localhost:1 ", Address("localhost", 1)),
    ],
)
def test_parse_address(text: str, expected: Address) -> None:
    assert nginx.parse_address(text) == expected


def test_ipv6_addresses_are_bracketed() -> None:
    assert str(Address("::1", 7001)) == "[::1]:7001"
    assert str(Address("10.0.0.1", 7001)) == "10.0.0.1:7001"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("7001", "expected HOST:PORT"),
        (":7001", "expected HOST:PORT"),
        ("::1:7001", "write IPv6 addresses as [ADDRESS]:PORT"),
        ("[::1]7001", "expected [ADDRESS]:PORT"),
        ("host:http", "is not a number"),
        ("host:0", "out of range"),
        ("host:70000", "out of range"),
        ("a;b:80", "neither an IP address nor a host name"),
        ("a b:80", "neither an IP address nor a host name"),
    ],
)
def test_bad_addresses_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(NginxConfigError, match=re.escape(message)):
        nginx.parse_address(text)


def test_listen_takes_a_bare_port_or_an_address() -> None:
    assert nginx.parse_listen("8080") == Address("*", 8080)
    assert nginx.parse_listen("127.0.0.1:8080") == Address("127.0.0.1", 8080)
    assert nginx.parse_listen("[::]:8080") == Address("::", 8080)


# ---- what the configs say ----

def test_single_node_proxies_http_and_websockets() -> None:
    lines = directives(nginx.http_config(ONE_NODE))
    for expected in [
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_buffering off;",
        "server 127.0.0.1:7001 max_fails=1 fail_timeout=10s;",
        "listen 80;",
        "server_name _;",
    ]:
        assert expected in lines, expected
    assert not any(line.startswith("hash") for line in lines)


def test_forwarded_for_is_set_never_appended() -> None:
    text = nginx.http_config(TWO_NODES)
    assert "$proxy_add_x_forwarded_for" not in text


def test_timeouts_exceed_ping_interval_plus_timeout() -> None:
    lines = directives(nginx.http_config(ONE_NODE)) + directives(nginx.stream_config(ONE_NODE))
    limit = nginx.PING_INTERVAL + nginx.PING_TIMEOUT
    found = {}
    for line in lines:
        match = re.match(r"(proxy_read_timeout|proxy_send_timeout|proxy_timeout) (\d+)s;", line)
        if match:
            found[match.group(1)] = int(match.group(2))
    assert set(found) == {"proxy_read_timeout", "proxy_send_timeout", "proxy_timeout"}
    assert all(seconds > limit for seconds in found.values()), found


def test_several_nodes_hash_the_client_address_and_keep_no_upstream_connections() -> None:
    for text in (nginx.http_config(TWO_NODES), nginx.stream_config(TWO_NODES)):
        lines = directives(text)
        assert "hash $remote_addr consistent;" in lines
        assert "server 10.0.0.11:7001 max_fails=1 fail_timeout=10s;" in lines
        assert "server 10.0.0.12:7001 max_fails=1 fail_timeout=10s;" in lines
        assert not any(line.startswith(("keepalive", "ip_hash")) for line in lines)
    # ... and the config says why, for whoever is tempted to add keepalive.
    assert "a kept-alive upstream connection would carry" in nginx.http_config(TWO_NODES)


def test_stream_sends_the_proxy_protocol() -> None:
    lines = directives(nginx.stream_config(TWO_NODES))
    assert "proxy_protocol on;" in lines
    assert "proxy_pass sioctl;" in lines
    assert f'load_module "{nginx.DEBIAN_STREAM_MODULE}";' in lines
    assert not any(
        line.startswith("load_module") for line in directives(
            nginx.stream_config(TWO_NODES, stream_module=None))
    )


def test_tls_listens_with_ssl_on_443(certificate: Tls) -> None:
    for text in (nginx.http_config(ONE_NODE, tls=certificate),
                 nginx.stream_config(ONE_NODE, tls=certificate)):
        lines = directives(text)
        assert "listen 443 ssl;" in lines
        assert f'ssl_certificate "{certificate.certfile}";' in lines
        assert f'ssl_certificate_key "{certificate.keyfile}";' in lines


def test_listen_address_and_server_name() -> None:
    lines = directives(nginx.http_config(
        ONE_NODE, listen=Address("127.0.0.1", 8080), server_name="chat.example.com *.example.org"))
    assert "listen 127.0.0.1:8080;" in lines
    assert "server_name chat.example.com *.example.org;" in lines
    assert "listen [::1]:8080;" in directives(
        nginx.stream_config(ONE_NODE, listen=Address("::1", 8080)))


@pytest.mark.parametrize(
    ("render", "message"),
    [
        (lambda: nginx.http_config([]), "at least one node"),
        (lambda: nginx.http_config(ONE_NODE * 2), "given twice"),
        (lambda: nginx.http_config(ONE_NODE, server_name="a;b"), "server name"),
        (lambda: nginx.http_config(ONE_NODE, server_name="a{"), "server name"),
        (lambda: nginx.http_config(ONE_NODE, tls=Tls('/x"y', "/k")), "certificate file"),
        (lambda: nginx.stream_config(ONE_NODE, tls=Tls("/c", "/k;\n")), "key file"),
        (lambda: nginx.stream_config(ONE_NODE, local=LocalRun("/tmp/$x")), "run directory"),
    ],
)
def test_unusable_values_are_refused(render: Callable[[], str], message: str) -> None:
    with pytest.raises(NginxConfigError, match=re.escape(message)):
        render()


# ---- nginx accepts them ----

@pytest.mark.parametrize("nodes", [ONE_NODE, TWO_NODES], ids=["one-node", "two-nodes"])
def test_nginx_accepts_the_http_config(nodes: list[Address], tmp_path: Path) -> None:
    assert_valid(nginx.http_config(nodes, local=LocalRun(str(tmp_path))), tmp_path)


def test_nginx_accepts_the_http_config_with_tls(certificate: Tls, tmp_path: Path) -> None:
    text = nginx.http_config(TWO_NODES, tls=certificate, server_name="chat.example.com",
                             listen=Address("127.0.0.1", 8443), local=LocalRun(str(tmp_path)))
    assert_valid(text, tmp_path)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_nginx_accepts_the_stream_config(tls: bool, certificate: Tls, tmp_path: Path) -> None:
    module = stream_module()
    text = nginx.stream_config(TWO_NODES, tls=certificate if tls else None,
                               stream_module=module or None, local=LocalRun(str(tmp_path)))
    assert_valid(text, tmp_path)


def test_nginx_refuses_a_broken_config(tmp_path: Path) -> None:
    """The check above can fail: nginx -t does reject a bad config."""
    text = nginx.http_config(ONE_NODE, local=LocalRun(str(tmp_path)))
    result = nginx_test(text.replace("proxy_http_version 1.1;", "proxy_http_version;"), tmp_path)
    assert result.returncode != 0


# ---- templates and the command ----

TEMPLATE_COMMANDS = {
    "single-node.conf": ["--node", "127.0.0.1:7001"],
    "multi-node.conf": ["--node", "10.0.0.11:7001", "--node", "10.0.0.12:7001"],
    "stream-proxy-protocol.conf": [
        "--node", "10.0.0.11:7001", "--node", "10.0.0.12:7001", "--stream"],
}


def test_every_template_is_listed() -> None:
    assert sorted(p.name for p in TEMPLATES.glob("*.conf")) == sorted(TEMPLATE_COMMANDS)


@pytest.mark.parametrize("name", sorted(TEMPLATE_COMMANDS))
def test_templates_are_what_the_renderer_writes(name: str) -> None:
    args = TEMPLATE_COMMANDS[name]
    nodes = [nginx.parse_address(args[i + 1]) for i, a in enumerate(args) if a == "--node"]
    if "--stream" in args:
        expected = nginx.stream_config(nodes, stream_module=nginx.DEBIAN_STREAM_MODULE)
    else:
        expected = nginx.http_config(nodes)
    assert (TEMPLATES / name).read_text() == expected, (
        f"nginx/{name} is out of date: regenerate it with sioctl nginx {' '.join(args)}"
    )


@pytest.mark.parametrize("name", sorted(TEMPLATE_COMMANDS))
def test_nginx_accepts_the_templates_as_they_are(name: str, tmp_path: Path) -> None:
    """As root (as nginx normally starts): the templates use the system's log and temp paths."""
    if os.geteuid() != 0:
        pytest.skip("the templates write /var/log/nginx; the local variants are checked above")
    if "stream" in name:
        stream_module()
    text = (TEMPLATES / name).read_text()
    result = subprocess.run(
        [nginx_binary(), "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
         "-c", str(TEMPLATES / name), "-g", f"pid {tmp_path}/nginx.pid;"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, f"nginx -t failed:\n{result.stderr}\n{text}"


def test_command_prints_the_config(run_sioctl: Callable[..., subprocess.CompletedProcess[str]]
                                   ) -> None:
    result = run_sioctl("nginx", "--node", "10.0.0.11:7001", "--node", "10.0.0.12:7001",
                        "--listen", "127.0.0.1:8080", "--server-name", "chat.example.com")
    assert result.returncode == 0, result.stderr
    assert result.stdout == nginx.http_config(
        TWO_NODES, listen=Address("127.0.0.1", 8080), server_name="chat.example.com")
    assert result.stderr == ""


def test_command_prints_the_stream_config_with_tls(
    run_sioctl: Callable[..., subprocess.CompletedProcess[str]], certificate: Tls
) -> None:
    result = run_sioctl("nginx", "--node", "10.0.0.11:7001", "--stream", "--tls",
                        "--certfile", certificate.certfile, "--keyfile", certificate.keyfile)
    assert result.returncode == 0, result.stderr
    lines = directives(result.stdout)
    assert "proxy_protocol on;" in lines and "listen 443 ssl;" in lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--node", "10.0.0.1"], "node '10.0.0.1': expected HOST:PORT"),
        (["--node", "a:1", "--tls"], "--tls needs --certfile and --keyfile"),
        (["--node", "a:1", "--certfile", "c.pem", "--keyfile", "k.pem"], "go with --tls"),
        (["--node", "a:1", "--stream", "--server-name", "x"], "does not apply to --stream"),
        (["--node", "a:1", "--listen", "99999"], "out of range"),
        (["--node", "a:1", "--node", "a:1"], "given twice"),
    ],
)
def test_command_errors_are_one_line(
    run_sioctl: Callable[..., subprocess.CompletedProcess[str]], args: list[str], message: str
) -> None:
    result = run_sioctl("nginx", *args)
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_command_needs_a_node(run_sioctl: Callable[..., subprocess.CompletedProcess[str]]
                              ) -> None:
    result = run_sioctl("nginx")
    assert result.returncode != 0
    assert "--node" in result.stderr
