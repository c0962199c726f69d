"""Building a master's settings again on HUP (cli/rebuild.py): the file is read again, the
start's options still win, and a broken file is one line naming the error and its line."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from sioctl.cli.rebuild import RebuildError, Recipe, rebuild
from tests.support.paths import REPO_ROOT


def test_the_file_is_read_again_and_options_still_win(tmp_path: Path) -> None:
    config = tmp_path / "gunicorn.conf.py"
    config.write_text("workers = 3\ntimeout = 5\n")
    recipe = Recipe.of("gunicorn.conf.py", {"app": "tests.apps.chat:sio", "workers": 2,
                                            "bind": ("127.0.0.1:7001",)}, str(tmp_path))
    recipe = Recipe.from_json(recipe.to_json())  # as a background master gets it
    assert recipe.config_file == str(config)
    first = rebuild(recipe)
    assert (first.workers, first.timeout) == (2, 5.0)
    config.write_text("workers = 3\ntimeout = 7\n")
    assert rebuild(recipe).timeout == 7.0


def test_a_broken_file_is_one_line_with_the_error_and_its_line(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]
                                                              ) -> None:
    config = tmp_path / "gunicorn.conf.py"
    config.write_text("import os\nsecret = os.environ['SIOCTL_TEST_NOT_SET_ANYWHERE']\n")
    with pytest.raises(RebuildError) as caught:
        rebuild(Recipe.of(str(config), {"app": "tests.apps.chat:sio"}, str(tmp_path)))
    message = str(caught.value)
    assert "\n" not in message
    assert "KeyError: 'SIOCTL_TEST_NOT_SET_ANYWHERE' (line 2)" in message, message
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err + printed.out


def test_an_app_directory_config_is_read_again(tmp_path: Path) -> None:
    app_dir = tmp_path / "eggapp"
    shutil.copytree(REPO_ROOT / "tests" / "apps" / "eggapp", app_dir)
    recipe = Recipe.of(None, {"app": str(app_dir)}, str(tmp_path))
    assert rebuild(recipe).allow_eio3 is True
    default = app_dir / "config" / "config_default.py"
    default.write_text(default.read_text().replace('"allowEIO3": True', '"allowEIO3": False'))
    assert rebuild(recipe).allow_eio3 is False
    default.write_text(default.read_text() + "\nraise RuntimeError('half-edited')\n")
    with pytest.raises(RebuildError) as caught:
        rebuild(recipe)
    assert "half-edited" in str(caught.value) and "\n" not in str(caught.value)


def test_a_python_module_config_is_imported_again(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sig17_reload_conf.py").write_text("timeout = 5\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    recipe = Recipe.of("python:sig17_reload_conf", {"app": "tests.apps.chat:sio"},
                       str(tmp_path))
    assert rebuild(recipe).timeout == 5.0
    # Another size: a .pyc of the same size and mtime second would be taken for it.
    (tmp_path / "sig17_reload_conf.py").write_text("timeout = 19\n")
    assert rebuild(recipe).timeout == 19.0
    monkeypatch.delitem(sys.modules, "sig17_reload_conf", raising=False)
