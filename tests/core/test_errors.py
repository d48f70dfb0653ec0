"""One error hierarchy (issue 17, point 4): user errors print one line and exit 2; anything else is a bug and
keeps its traceback (exit 1)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import medvision
from medvision.cli import main
from medvision.core import errors
from medvision.core.errors import ConfigError, MedvisionError, NotFoundError, UserError


def test_every_exception_class_of_the_package_lives_in_one_hierarchy():
    defined = {}
    for info in pkgutil.walk_packages(medvision.__path__, "medvision."):
        if info.name in ("medvision.app", "medvision.book.__main__"):  # the [app] extra; a script that runs on import
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__.startswith("medvision"):
                defined[name] = obj
    assert defined, "no exception classes found"
    assert {obj.__module__ for obj in defined.values()} == {"medvision.core.errors"}
    assert all(issubclass(obj, MedvisionError) for obj in defined.values())
    assert all(issubclass(obj, UserError) for name, obj in vars(errors).items()
               if inspect.isclass(obj) and issubclass(obj, MedvisionError) and obj not in (MedvisionError, UserError))


def test_user_errors_keep_the_builtin_bases_callers_catch():
    from medvision.data.errors import DataNotFoundError, ImageLoadError
    from medvision.deploy.bundle import BundleError
    from medvision.train.loop import RunConfigMismatchError, TrainingDivergedError

    assert issubclass(ImageLoadError, ValueError) and issubclass(DataNotFoundError, FileNotFoundError)
    assert issubclass(BundleError, ValueError) and issubclass(RunConfigMismatchError, ValueError)
    assert issubclass(TrainingDivergedError, RuntimeError) and issubclass(errors.MissingExtraError, ImportError)
    with pytest.raises(ConfigError, match="unknown strategy"):
        from medvision.config import parse_strategy
        from medvision.models.backbones import create_model
        from medvision.train.strategies import param_groups

        param_groups(create_model("test_efficientnet", 2, pretrained="none"), parse_strategy("half"))


def test_cli_user_error_is_one_line_with_exit_2(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "no-bundle"), str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("medvision predict: ") and "\n" not in err and "Traceback" not in err


def test_an_unwritable_output_is_a_user_error_in_one_line(shared_data, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["data", "split", "breastmnist", "--data-root", str(shared_data), "--out",
                 str(blocker / "split.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("medvision data: cannot write ") and "split.csv" in err and "\n" not in err


BUG = """
import sys
import medvision.cli as cli
def broken(args):
    raise ValueError("an internal bug, not a user error")
cli._evaluate = broken
parser_build = cli.build_parser
def build():
    parser = parser_build()
    for action in parser._subparsers._group_actions:
        action.choices["evaluate"].set_defaults(func=broken)
    return parser
cli.build_parser = build
sys.exit(cli.main(["evaluate", "somewhere"]))
"""


def test_a_bug_keeps_its_traceback_and_exits_1():
    proc = subprocess.run([sys.executable, "-c", BUG], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "ValueError: an internal bug, not a user error" in proc.stderr


def test_missing_input_is_a_user_error(tmp_path):
    from medvision.deploy.inference import image_files

    with pytest.raises(NotFoundError, match="does not exist"):
        image_files([tmp_path / "missing"])
