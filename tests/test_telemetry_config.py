"""The [telemetry] section of config.toml: defaults, values read, bad values named."""

from __future__ import annotations

import pytest

from cityledger.node.home import TelemetryConfig, init_home, load_config


@pytest.fixture
def home(tmp_path):
    init_home(tmp_path, members=1)
    return tmp_path


def _set_telemetry(home, body: str) -> None:
    text = (home / "config.toml").read_text()
    head = text[:text.index("[telemetry]")]
    (home / "config.toml").write_text(head + "[telemetry]\n" + body)


def test_a_new_home_has_telemetry_off_with_the_defaults(home):
    config = load_config(home)
    assert config.telemetry == TelemetryConfig(enabled=False, host="127.0.0.1", port=0, interval_s=60)
    assert config.telemetry_path == home / "telemetry"


def test_telemetry_settings_are_read(home):
    _set_telemetry(home, 'enabled = true\nhost = "10.0.0.5"\nport = 18830\ninterval_s = 30\n')
    assert load_config(home).telemetry == TelemetryConfig(True, "10.0.0.5", 18830, 30)


@pytest.mark.parametrize("body, named", [
    ("enabled = 1\n", "telemetry.enabled"),
    ("port = 70000\n", "telemetry.port"),
    ("port = -1\n", "telemetry.port"),
    ("interval_s = 0\n", "telemetry.interval_s"),
    ("interval_s = 86401\n", "telemetry.interval_s"),
    ('host = 5\n', "telemetry.host"),
])
def test_bad_telemetry_settings_are_named(home, body, named):
    _set_telemetry(home, body)
    with pytest.raises(ValueError, match=named):
        load_config(home)
