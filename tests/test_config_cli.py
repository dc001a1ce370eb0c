"""Configuration is read once from the environment; a bad value stops start-up with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import resources

import pytest

from engine.config import Config, ConfigError
from engine.scripts import SCRIPT_NAMES, script_source
from tests.support import BOXOFFICE, ROOT, TEST_SECRET


def test_defaults_and_the_originals_variable_names():
    config = Config.from_env({"JWT_SECRET": TEST_SECRET, "PORT": "4000"})
    assert config.port == 4000 and config.shard_count == 16
    assert config.redis_url.startswith("redis://")
    names = {s.env for s in Config.reference()}
    assert {"DATABASE_URL", "REDIS_URL", "JWT_SECRET", "PORT"} <= names
    assert all(
        n in {"DATABASE_URL", "REDIS_URL", "JWT_SECRET", "PORT"} or n.startswith("BOXOFFICE_")
        for n in names
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "JWT_SECRET is not set"),
        ({"JWT_SECRET": "short"}, "shorter than 32 bytes"),
        ({"JWT_SECRET": TEST_SECRET, "PORT": "eighty"}, "PORT must be an integer"),
        ({"JWT_SECRET": TEST_SECRET, "PORT": "70000"}, "PORT must be 1..65535"),
        ({"JWT_SECRET": TEST_SECRET, "BOXOFFICE_SHARDS": "0"}, "BOXOFFICE_SHARDS"),
        ({"JWT_SECRET": TEST_SECRET, "BOXOFFICE_KEY_PREFIX": "a{b}"}, "BOXOFFICE_KEY_PREFIX"),
    ],
)
def test_bad_values_raise_one_clear_line(env, message):
    with pytest.raises(ConfigError) as err:
        Config.from_env(env)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_dev_env_allows_a_short_secret():
    assert Config.from_env({"JWT_SECRET": "short", "BOXOFFICE_ENV": "dev"}).jwt_secret == "short"


def test_cli_reports_a_bad_config_in_one_line_without_a_traceback():
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT), "PORT": "x", "JWT_SECRET": TEST_SECRET}
    done = subprocess.run(
        [*BOXOFFICE, "serve"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "boxoffice: configuration error: PORT must be an integer, got 'x'"
    ]


def test_cli_help_lists_every_command():
    done = subprocess.run(
        [*BOXOFFICE, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    for command in ("serve", "persist", "migrate", "create-admin", "run"):
        assert command in done.stdout


def test_lua_scripts_ship_as_package_data():
    """An installed wheel finds the scripts through importlib.resources, not the source tree."""
    package = resources.files("boxoffice_lua")
    for name in SCRIPT_NAMES:
        assert package.joinpath(f"{name}.lua").is_file()
        assert script_source(name).startswith(f"-- {name}.lua")


def test_an_installed_wheel_finds_its_scripts_and_migrations(tmp_path):
    """Build the wheel, install it into a bare folder, import from there (not the tree)."""
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)]
    subprocess.run(build, check=True, capture_output=True, timeout=120)
    [wheel] = wheels.glob("boxoffice-*.whl")
    install = [*pip, "install", "--no-deps", "--target", str(site), str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=120)
    probe = (
        "import engine.scripts as s, persistence.db as d;"
        f"assert s.__file__.startswith({str(site)!r}), s.__file__;"
        "import api.views.admin, api.pages.console as c;"  # subpackages and the console's files
        f"assert c.__file__.startswith({str(site)!r}), c.__file__;"
        "assert (c.CONSOLE / 'index.html').is_file();"
        "print(len([s.script_source(n) for n in s.SCRIPT_NAMES]), len(d.migration_files()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(site)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    scripts, migrations = map(int, done.stdout.split())
    assert scripts == len(SCRIPT_NAMES) and migrations >= 2


def test_every_config_variable_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [s.env for s in Config.reference() if f"`{s.env}`" not in readme]
    assert missing == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [("none", None), ("wait:1", (1, 100)), ("wait:2:250", (2, 250))],
)
def test_durability_modes_parse(value, expected):
    config = Config.from_env({"JWT_SECRET": TEST_SECRET, "BOXOFFICE_DURABILITY": value})
    assert config.wait_replicas == expected


@pytest.mark.parametrize(
    "value", ["wait", "wait:0", "wait:x", "fsync", "wait:1:2:3", "wait:1:0", "wait:1:501"]
)
def test_bad_durability_modes_are_refused(value):
    with pytest.raises(ConfigError, match="BOXOFFICE_DURABILITY"):
        Config.from_env({"JWT_SECRET": TEST_SECRET, "BOXOFFICE_DURABILITY": value})


def test_the_documented_placeholder_secret_is_refused_outside_dev():
    placeholder = "replace-with-a-long-random-string-of-32-bytes-or-more"
    with pytest.raises(ConfigError, match="placeholder"):
        Config.from_env({"JWT_SECRET": placeholder})
    assert Config.from_env({"JWT_SECRET": placeholder, "BOXOFFICE_ENV": "dev"})


async def test_seed_creates_events_with_inventory_and_a_progress_bar(config, engine, pool):
    import asyncio as _asyncio

    from tests.support import env_of

    done = await _asyncio.to_thread(
        subprocess.run,
        [*BOXOFFICE, "seed", "--events", "3", "--capacity", "25"],
        env=env_of(config),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "created 3 events" in done.stdout and "seed" in done.stderr
    ids = [r["id"] for r in await pool.fetch("SELECT id FROM events ORDER BY id")]
    inventories = await engine.inventories(ids)
    assert [(i.capacity, i.available) for i in inventories.values()] == [(25, 25)] * 3
