"""Configuration layers, strictness about unknown keys, and value checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecoder.config import load_config, systemd_env
from edgecoder.errors import ConfigError


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    path = tmp_path / "etc"
    (path / "conf.d").mkdir(parents=True)
    return path


def _load(etc: Path, environ: dict[str, str] | None = None, **kwargs: object) -> object:
    return load_config(etc_dir=etc, environ={"HOME": "/home/u", **(environ or {})}, **kwargs)  # type: ignore[arg-type]


def test_defaults_without_any_file(etc: Path) -> None:
    config = load_config(etc_dir=etc, environ={"STATE_DIRECTORY": "/var/lib/edgecoder"})
    assert config.mesh.port == 4301
    assert config.api.port == 4304
    assert config.mesh.bind == "0.0.0.0"
    assert config.inference.backend == "auto"
    assert config.node.data_dir == Path("/var/lib/edgecoder")
    assert config.sources == ()


def test_layers_apply_in_order(etc: Path) -> None:
    (etc / "edgecoder.toml").write_text('[mesh]\nport = 5001\nbootstrap = ["http://a:4301"]\n')
    (etc / "conf.d" / "10-api.toml").write_text("[api]\nport = 5004\n[mesh]\nport = 5002\n")
    (etc / "conf.d" / "20-mesh.toml").write_text("[mesh]\nport = 5003\n")
    config = load_config(
        etc_dir=etc,
        environ={"EDGECODER_API_PORT": "6004", "EDGECODER_MESH_MDNS": "off"},
        overrides=[("api.port", "7004", "--api-port")],
    )
    assert config.mesh.port == 5003
    assert config.mesh.bootstrap == ("http://a:4301",)
    assert config.mesh.mdns is False
    assert config.api.port == 7004
    assert [Path(p).name for p in config.sources] == [
        "edgecoder.toml",
        "10-api.toml",
        "20-mesh.toml",
    ]


def test_explicit_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*missing\.toml"):
        load_config(config_file=tmp_path / "missing.toml", environ={})


def test_config_file_from_environment(tmp_path: Path) -> None:
    file = tmp_path / "my.toml"
    file.write_text('[node]\nnetwork = "lab"\n')
    config = load_config(environ={"EDGECODER_CONFIG": str(file)})
    assert config.node.network == "lab"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[mesh]\nprot = 1\n", r"unknown key mesh\.prot in .*edgecoder\.toml"),
        ("[meshh]\nport = 1\n", r"unknown section \[meshh\] in .*edgecoder\.toml"),
        ("[mesh]\nport = 'x'\n", r"mesh\.port \(from .*edgecoder\.toml\) must be a whole number"),
        ("[mesh]\nport = 70000\n", r"mesh\.port .* must be a port number"),
        ("[mesh]\nbind = 'localhost'\n", r"mesh\.bind .* must be an IP address"),
        ("[mesh]\nbootstrap = ['ftp://x']\n", r"mesh\.bootstrap .* not an http"),
        ("[mesh]\nmdns = 'sometimes'\n", r"mesh\.mdns .* must be true or false"),
        ("[inference]\nbackend = 'gpu'\n", r"inference\.backend .* must be one of auto"),
        ("[node]\nnetwork = 'a b'\n", r"node\.network .* must be 1-63"),
        ("mesh = 3\n", r"mesh in .* must be a table"),
        ("[mesh\n", r"is not valid TOML"),
    ],
)
def test_bad_files_are_refused_by_name(etc: Path, content: str, message: str) -> None:
    (etc / "edgecoder.toml").write_text(content)
    with pytest.raises(ConfigError, match=message):
        _load(etc)


def test_unknown_key_in_conf_d_names_that_file(etc: Path) -> None:
    (etc / "conf.d" / "50-local.toml").write_text("[api]\nbnd = '127.0.0.1'\n")
    with pytest.raises(ConfigError, match=r"unknown key api\.bnd in .*50-local\.toml"):
        _load(etc)


def test_unknown_environment_setting_is_refused(etc: Path) -> None:
    with pytest.raises(ConfigError, match="EDGECODER_MESH_PROT"):
        _load(etc, {"EDGECODER_MESH_PROT": "1"})
    # Build switches are not settings.
    _load(etc, {"EDGECODER_NO_EXTENSIONS": "1", "EDGECODER_REQUIRE_EXTENSIONS": "1"})


def test_bad_flag_value_names_the_flag(etc: Path) -> None:
    with pytest.raises(ConfigError, match=r"api\.port \(from --api-port\) must be a whole number"):
        _load(etc, overrides=[("api.port", "eighty", "--api-port")])


def test_data_dir_defaults(etc: Path) -> None:
    state = load_config(etc_dir=etc, environ={"STATE_DIRECTORY": "/srv/ec:/other"})
    assert state.node.data_dir == Path("/srv/ec")
    relative = _load(etc, overrides=[("node.data_dir", "rel/dir", "--data-dir")])
    assert relative.node.data_dir == Path.cwd() / "rel/dir"  # type: ignore[attr-defined]


def test_config_is_frozen(etc: Path) -> None:
    config = load_config(etc_dir=etc, environ={})
    with pytest.raises(AttributeError):
        config.mesh.port = 1  # type: ignore[misc]


def test_systemd_environment() -> None:
    env = systemd_env(
        {
            "NOTIFY_SOCKET": "@sd",
            "WATCHDOG_USEC": "2000000",
            "WATCHDOG_PID": "x",
            "JOURNAL_STREAM": "8:9",
        }
    )
    assert (env.notify_socket, env.watchdog_usec, env.watchdog_pid, env.journal_stream) == (
        "@sd",
        2_000_000,
        0,
        True,
    )
