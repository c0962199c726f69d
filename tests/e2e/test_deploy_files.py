"""The deployment files of deploy/ (docs/deployment.md) as far as this machine can run them.

No Docker engine runs here nor in CI, and systemd is not PID 1, so nothing is built or started
as production would: the systemd unit goes through ``systemd-analyze verify``, the compose file
through a YAML parser, nginx.conf through a real ``nginx -t``, logrotate.conf through
``logrotate -d`` (and a real rotation), and the Dockerfile's COPY lines are replayed into a
directory on which its pip install line must give a working sioctl. Every sioctl command line
in these files (ExecStart, the Dockerfile's CMD, the compose command with its environment) is
resolved by the real ``sioctl start --print-config``, so a flag or SIOCTL_* name sioctl does
not know fails here, and the files are checked against each other (pid and log paths, ports,
the trusted proxy address).
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.support.clients import wait_until
from tests.support.cluster import sioctl_command
from tests.support.paths import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
# The app the unit's WorkingDirectory and the image's /srv/app stand for: the demo.
DEMO = REPO_ROOT / "examples" / "chat"


def print_config(argv: list[str], env: dict[str, str], cwd: Path = DEMO) -> dict[str, Any]:
    """The settings ``sioctl start`` resolves from a deployment file's command line and
    environment (``argv[0]`` is the file's own sioctl; the venv's runs instead)."""
    assert Path(argv[0]).name == "sioctl" and argv[1] == "start", argv
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SIOCTL_")}
    result = subprocess.run(
        [*sioctl_command(*argv[1:]), "--print-config"], cwd=cwd, env={**environ, **env},
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{shlex.join(argv)}:\n{result.stderr}"
    return dict(json.loads(result.stdout))


# --- systemd ------------------------------------------------------------------------------

def unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, delimiters=("=",),
                                          comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read_string((DEPLOY / "sioctl.service").read_text().replace("\\\n", " "))
    return parser


def unit_start() -> tuple[list[str], dict[str, str]]:
    service = unit()["Service"]
    env = dict(item.split("=", 1) for item in shlex.split(service["Environment"]))
    return shlex.split(service["ExecStart"]), env


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: the systemd package)")
    # verify checks that ExecStart's program exists: point it at this checkout's sioctl.
    argv, _ = unit_start()
    text = (DEPLOY / "sioctl.service").read_text().replace(
        argv[0], str(Path(sys.executable).with_name("sioctl")))
    copy = tmp_path / "sioctl.service"
    copy.write_text(text)
    result = subprocess.run([analyze, "verify", "--man=no", str(copy)], capture_output=True,
                            text=True, timeout=60)
    # An unknown key or a bad value is only a warning: the output must be empty too.
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr


def test_systemd_unit_runs_sioctl_in_the_foreground_and_drains_on_stop() -> None:
    service = unit()["Service"]
    argv, env = unit_start()
    settings = print_config(argv, env)
    assert "--daemon" not in argv and service["Type"] == "simple"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillSignal"] == "SIGTERM" and service["KillMode"] == "mixed"
    assert float(service["TimeoutStopSec"]) > settings["graceful_timeout"]
    assert int(service["LimitNOFILE"]) > settings["worker_connections"]
    assert service["Restart"] == "on-failure"
    # The run directory is the one systemd makes for the service; logs are in LogsDirectory.
    assert settings["run_dir"] == f"/run/{service['RuntimeDirectory']}/{settings['title']}"
    logs = f"/var/log/{service['LogsDirectory']}/"
    assert settings["errorlog"].startswith(logs) and settings["accesslog"].startswith(logs)
    assert settings["binds"] == ["127.0.0.1:7001"]
    assert settings["forwarded_allow_ips"] == ["127.0.0.1"]


# --- logrotate ------------------------------------------------------------------------------

def logrotate_binary() -> str:
    found = shutil.which("logrotate") or shutil.which("logrotate", path="/usr/sbin")
    if found is None:
        pytest.skip("logrotate is not installed (scripts/setup.sh installs it)")
    return found


def logged(path: Path, *lines: str) -> bool:
    """Whether ``path`` exists and holds every one of ``lines``."""
    text = path.read_text(errors="replace") if path.exists() else ""
    return all(line in text for line in lines)


def test_logrotate_config_names_the_units_logs_and_master(tmp_path: Path) -> None:
    argv, env = unit_start()
    settings = print_config(argv, env)
    text = (DEPLOY / "logrotate.conf").read_text()
    pattern = re.search(r"^(/\S+)\s*\{", text, re.M)
    assert pattern is not None
    for log in (settings["errorlog"], settings["accesslog"]):
        assert Path(log).match(pattern.group(1)), (log, pattern.group(1))
    assert f"kill -USR1 \"$(cat {settings['run_dir']}/master.pid)\"" in text
    result = subprocess.run([logrotate_binary(), "-d", "-s", str(tmp_path / "state"),
                             str(DEPLOY / "logrotate.conf")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "error" not in result.stderr.lower(), result.stderr


def test_logrotate_then_usr1_sends_new_lines_to_new_files(start_cluster: Any,
                                                          tmp_path: Path) -> None:
    logrotate = logrotate_binary()
    logs = tmp_path / "logs"
    logs.mkdir()
    access, errors = logs / "access.log", logs / "error.log"
    cluster = start_cluster(extra_args=["--access-logfile", str(access),
                                        "--error-logfile", str(errors)])
    probe = cluster.url + "/socket.io/?EIO=4&transport=polling&t="
    requests.get(probe + "before", timeout=10)
    wait_until(lambda: logged(access, "t=before"), what="the first access line")
    # deploy/logrotate.conf, pointed at this cluster's log files and master.
    conf = (DEPLOY / "logrotate.conf").read_text()
    conf = conf.replace("/var/log/sioctl/*.log", f"{logs}/*.log").replace(
        "/run/sioctl/chat/master.pid", f"{cluster.run_dir}/master.pid")
    (tmp_path / "logrotate.conf").write_text(conf)
    rotated = subprocess.run([logrotate, "-f", "-s", str(tmp_path / "state"),
                              str(tmp_path / "logrotate.conf")],
                             capture_output=True, text=True, timeout=60)
    assert rotated.returncode == 0, rotated.stderr
    assert "t=before" in (logs / "access.log.1").read_text()
    # kill -USR1 returns before the workers act on it, and a line logged in between goes, by
    # design, to the renamed file. Each worker says in the new error log once it has reopened.
    pids = cluster.worker_pids()
    assert len(pids) == 2, pids
    wait_until(lambda: logged(errors, *(f"[worker {slot} pid {pid}] INFO USR1: reopened"
                                        for slot, pid in pids.items())),
               what="every worker reopening its logs")
    requests.get(probe + "after", timeout=10)
    wait_until(lambda: logged(access, "t=after"), what="the access line in the new file")
    assert "t=after" not in (logs / "access.log.1").read_text()
    assert cluster.is_ready()


# --- Dockerfile -------------------------------------------------------------------------------

def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (NAME, arguments), continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in joined.splitlines() if line.strip()]


def docker_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for name, args in dockerfile():
        if name == "ENV":
            for item in shlex.split(args):
                key, value = item.split("=", 1)
                env[key] = value
    return env


def test_dockerfile_install_steps_give_a_working_sioctl(tmp_path: Path) -> None:
    """The Dockerfile's COPY lines replayed into an empty directory, its pip install line run
    on it as written (its paths moved under tmp_path), and the CMD run with the sioctl that
    this installed, from the app's directory: what `docker build` would do but the base image."""
    steps = dockerfile()
    names = [name for name, _ in steps]
    base = dict(steps)["FROM"]
    assert re.fullmatch(r"python:3\.(1[0-9])-slim", base), base
    copies = [shlex.split(args) for name, args in steps if name == "COPY"]
    install = next(i for i, (name, args) in enumerate(steps)
                   if name == "RUN" and "pip install" in args)
    # The COPY lines before the install go to the WORKDIR the install reads.
    workdir = [args for name, args in steps[:install] if name == "WORKDIR"][-1]
    source = tmp_path / "src"
    source.mkdir()
    for *sources, target in (shlex.split(args) for name, args in steps[:install]
                             if name == "COPY"):
        for item in sources:
            origin = REPO_ROOT / item
            assert origin.exists(), item
            destination = source / (item if target == "./" else target)
            if origin.is_dir():
                shutil.copytree(origin, destination,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(origin, destination)
    run = steps[install][1]
    venv = re.search(r"python -m venv (\S+)", run)
    assert venv is not None and workdir in run, run
    # This interpreter stands for the image's python (the same minor version in CI).
    command = (run.replace(venv.group(1), str(tmp_path / "venv")).replace(workdir, str(source))
               .replace("python -m venv", f"{shlex.quote(sys.executable)} -m venv", 1))
    installed = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                               timeout=600, stdin=subprocess.DEVNULL)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    sioctl = tmp_path / "venv" / "bin" / "sioctl"
    cmd = json.loads(dict(steps)["CMD"])
    result = subprocess.run([str(sioctl), *cmd[1:], "--print-config"], cwd=DEMO,
                            env={**os.environ, **docker_env(), "PATH": os.environ["PATH"]},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["binds"] == ["0.0.0.0:7001"]
    # Not this checkout's editable install: a regular one, in the new environment.
    where = subprocess.run([str(tmp_path / "venv" / "bin" / "python"), "-c",
                            "import sioctl.cluster, sioctl.worker; print(sioctl.__file__)"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert where.stdout.startswith(str(tmp_path / "venv")), where.stdout + where.stderr
    # The app is copied to the WORKDIR the CMD runs in; then an unprivileged USER.
    assert ["examples/chat", "/srv/app"] in copies
    assert names.index("USER") > install and dict(steps)["USER"] not in ("root", "0")
    assert dict(steps)["STOPSIGNAL"] == "SIGTERM"
    assert "HEALTHCHECK" in names
    # .dockerignore keeps the local virtualenvs and node_modules out of the build context.
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text()
    assert "**/.venv*" in ignored and "**/node_modules" in ignored


def test_dockerfile_cmd_is_a_valid_sioctl_start_in_exec_form() -> None:
    steps = dict(dockerfile())
    cmd = json.loads(steps["CMD"])  # exec form: signals reach sioctl, no shell in between
    settings = print_config(cmd, {**docker_env(), "PATH": os.environ["PATH"]})
    exposed = {int(port) for port in steps["EXPOSE"].split()}
    assert settings["binds"] == ["0.0.0.0:7001"] and 7001 in exposed
    assert settings["metrics_bind"] == "0.0.0.0:9100" and 9100 in exposed
    assert settings["run_dir"].startswith(docker_env()["SIOCTL_RUN_DIR"] + "/")
    assert "9100/metrics" in steps["HEALTHCHECK"]


# --- compose ------------------------------------------------------------------------------

def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def test_compose_runs_sioctl_behind_nginx_with_redis() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "sioctl", "nginx"}
    app = services["sioctl"]
    build = app["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    # The compose command is the image's CMD (one command line to keep up to date, not two).
    assert app["command"] == json.loads(dict(dockerfile())["CMD"])
    env = {k: str(v) for k, v in app["environment"].items()}
    assert env.pop("CHAT_KEYS").startswith("${CHAT_KEYS:?")  # required, never in the file
    settings = print_config(app["command"], {**docker_env(), **env})
    assert settings["workers"] == 2 and settings["title"] == "chat"
    assert settings["redis_url"] == "redis://redis:6379/0"
    assert app["depends_on"]["redis"]["condition"] == "service_healthy"
    # Only nginx reaches sioctl, and its address is the one sioctl trusts.
    assert "ports" not in app and "ports" not in services["redis"]
    nginx_address = services["nginx"]["networks"]["backend"]["ipv4_address"]
    assert settings["forwarded_allow_ips"] == [nginx_address]
    assert all(port.startswith("127.0.0.1:") for port in services["nginx"]["ports"])
    # Signals and limits: an init forwards them, docker stop waits out the drain.
    assert app["init"] is True
    assert float(app["stop_grace_period"].rstrip("s")) > settings["graceful_timeout"]
    assert app["ulimits"]["nofile"]["soft"] > settings["worker_connections"]


def test_compose_nginx_config_is_what_sioctl_nginx_writes_and_nginx_accepts(
        tmp_path: Path) -> None:
    services = compose()["services"]
    (volume,) = services["nginx"]["volumes"]
    local, inside, _ = volume.split(":")
    assert inside == "/etc/nginx/nginx.conf"
    text = (DEPLOY / local).read_text()
    node = "sioctl:7001"  # the compose service and the port its command binds
    written = subprocess.run(sioctl_command("nginx", "--node", node), capture_output=True,
                             text=True, timeout=60, check=True).stdout
    assert text == written, f"regenerate: sioctl nginx --node {node} > deploy/nginx.conf"
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                      else None)
    if nginx is None:
        pytest.skip("nginx is not installed (scripts/setup.sh installs it)")
    # nginx -t resolves upstream names: the compose service name only resolves inside compose.
    conf = tmp_path / "nginx.conf"
    conf.write_text(text.replace(f"server {node} ", "server 127.0.0.1:7001 "))
    assert conf.read_text() != text
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
                             "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
