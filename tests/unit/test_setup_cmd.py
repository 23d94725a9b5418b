"""``edgecoder setup-code`` and ``edgecoder keys init``: the appliance's boot-time helpers,
run against temporary directories instead of /var/lib and /etc."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from edgecoder.cli import setup_cmd
from edgecoder.cli.main import main
from edgecoder.security.setup_codes import check_code, normalize_code
from edgecoder.storage import setup_state
from edgecoder.storage.datadir import remove_file
from edgecoder.storage.keystore import read_public


class Box:
    """The paths of one appliance, under a temporary root."""

    def __init__(self, root: Path) -> None:
        self.data = root / "var/lib/edgecoder"
        self.code = root / "var/lib/edgecoder-setup/code"
        self.issue = root / "etc/issue.d/50-edgecoder-setup.issue"

    def setup_code(self) -> int:
        return main(["setup-code", f"--data-dir={self.data}", f"--code-file={self.code}",
                     f"--issue-file={self.issue}"])  # fmt: skip

    def code_text(self) -> str:
        return self.code.read_text().strip()


@pytest.fixture
def box(tmp_path: Path, isolated_env: dict[str, str]) -> Box:
    return Box(tmp_path)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_run_opens_setup_with_a_root_only_code(
    box: Box, capsys: pytest.CaptureFixture[str]
) -> None:
    assert box.setup_code() == 0
    code = box.code_text()
    assert normalize_code(code) is not None
    assert mode(box.code) == mode(box.issue) == 0o600
    assert mode(box.code.parent) == 0o700
    verifier = setup_state.read_verifier(box.data)
    assert verifier is not None
    assert check_code(verifier, code)
    # The prompt shows it, with agetty's escapes for the host name and address.
    issue = box.issue.read_text()
    assert code in issue
    assert "http://\\n.local:4304/setup" in issue
    assert "\\4" in issue
    # What goes to the journal never holds the code.
    out = capsys.readouterr()
    assert "new setup code" in out.out
    assert code not in out.out + out.err


def test_a_second_run_keeps_the_code(box: Box) -> None:
    box.setup_code()
    first = box.code_text()
    box.setup_code()
    assert box.code_text() == first


def test_a_wiped_data_dir_gets_a_new_code(box: Box) -> None:
    box.setup_code()
    first = box.code_text()
    (box.data / setup_state.VERIFIER_FILE).unlink()
    box.setup_code()
    second = box.code_text()
    assert second != first
    verifier = setup_state.read_verifier(box.data)
    assert verifier is not None
    assert check_code(verifier, second)
    assert not check_code(verifier, first)


def test_once_claimed_the_code_and_its_prompt_are_deleted(box: Box) -> None:
    box.setup_code()
    setup_state.record_claim(box.data, setup_state.ClaimRecord("alice", 1, "10.0.0.2"))
    assert box.setup_code() == 0
    assert not box.code.exists()
    assert not box.issue.exists()
    assert not (box.data / setup_state.VERIFIER_FILE).exists()
    # And it stays closed: no new code appears on a later boot.
    box.setup_code()
    assert not box.code.exists()


def test_the_login_prompt_goes_before_the_code_file(
    box: Box, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whoever sees the code file gone must not find the code still on the login prompt.
    box.setup_code()
    setup_state.record_claim(box.data, setup_state.ClaimRecord("alice", 1, "10.0.0.2"))
    still_there: list[tuple[Path, bool]] = []

    def remove(path: Path) -> None:
        still_there.append((path, box.issue.exists()))
        remove_file(path)

    monkeypatch.setattr(setup_cmd, "remove_file", remove)
    assert box.setup_code() == 0
    assert [path for path, _ in still_there] == [box.issue, box.code]
    assert dict(still_there)[box.code] is False


def test_keys_init_makes_the_key_once_and_prints_the_id(
    box: Box, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "init", f"--data-dir={box.data}"]) == 0
    node_id = capsys.readouterr().out.strip()
    assert node_id == read_public(box.data).node_id
    assert mode(box.data) == 0o700
    assert main(["keys", "init", f"--data-dir={box.data}", "--json"]) == 0
    assert capsys.readouterr().out.strip() == f'{{"node_id": "{node_id}", "created": false}}'
