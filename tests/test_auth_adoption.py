"""Upgrade from the single-user app (utils/auth/adoption.py): the first admin adopts the
old conversations and OCR runs; killed at any step and run again, every file ends up
exactly once in their folder; a second run is a no-op; only admins may; two adopters
at once do it once."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from models.chat.types import GenerationParams
from models.config import REPO_ROOT
from utils.auth.adoption import (
    adopt_single_user_data,
    journal_path,
    legacy_data_present,
    read_journal,
)
from utils.auth.adoption_moves import CONFLICTS_DIR_NAME
from utils.auth.audit import AuditLog
from utils.auth.identity import LOCAL_USER, User, user_id_for
from utils.auth.permissions import PermissionDenied
from utils.auth.personal import read_personal_settings, save_personal_settings
from utils.auth.user_data import user_root
from utils.chat.service import save_question
from utils.chat.store import ChatStore
from utils.documents.limits import DocumentLimits
from utils.errors import BadInput, StorageError
from utils.storage import atomic_write_json

ISSUER = "https://idp.example"


def person(subject: str, role: str) -> User:
    return User(user_id=user_id_for(ISSUER, subject), role=role, email=f"{subject}@example.com")


ADMIN = person("alice", "admin")
OTHER_ADMIN = person("carol", "admin")
MEMBER = person("bob", "member")
VIEWER = person("vic", "viewer")


# --------------------------------------------------------------------------- helpers


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(buffer, format="PNG")
    return buffer.getvalue()


def make_legacy(data_dir: Path, ocr_runs: int = 2) -> dict[str, bytes]:
    """A single-user data folder as the app wrote it: conversations with images (one
    image shared by two of them), OCR runs, lock files; returns its data files."""
    store = ChatStore(data_dir / "chats", DocumentLimits())
    for number, colors in enumerate([[(200, 0, 0)], [(200, 0, 0), (0, 0, 200)], []]):
        conversation = store.new("some_model", GenerationParams())
        images = [store.images.add(png(color), f"{number}.png") for color in colors]
        save_question(store, conversation, f"question {number}", images)
    for number in range(ocr_runs):
        run = {"run_id": f"20250101T00000{number % 10}Z-{number:06x}", "documents": []}
        atomic_write_json(data_dir / "ocr" / f"{run['run_id']}.json", run)
    (data_dir / "uploads").mkdir(parents=True, exist_ok=True)
    (data_dir / "uploads" / ("0" * 64)).write_bytes(b"shared upload")
    return data_files(data_dir)


def data_files(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every data file under root/chats and root/ocr."""
    found = {}
    for name in ("chats", "ocr"):
        for path in sorted((root / name).rglob("*")):
            if path.is_file() and not path.is_symlink() and ".locks" not in path.parts:
                found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def assert_adopted_once(data_dir: Path, owner: User, before: dict[str, bytes]) -> None:
    """Every file exactly once in the owner's folder, byte for byte; none left behind."""
    owner_root = user_root(data_dir, owner)
    assert data_files(owner_root) == before
    assert not (owner_root / CONFLICTS_DIR_NAME).exists()
    assert not legacy_data_present(data_dir)
    assert not (data_dir / "chats").exists() and not (data_dir / "ocr").exists()
    assert (data_dir / "uploads" / ("0" * 64)).read_bytes() == b"shared upload"
    journal = read_journal(data_dir)
    assert journal is not None and journal.finished_at and journal.owner_id == owner.user_id


def adopt_events(data_dir: Path) -> list:
    return [e for e in AuditLog(data_dir).recent() if e.event == "adopt single-user data"]


class Killed(BaseException):
    """Stands in for a kill: no ``except Exception`` or ``except OSError`` catches it."""


def kill_after(monkeypatch: pytest.MonkeyPatch, steps: int) -> list[int]:
    """Make the ``steps``-th rename or unlink (counted from 1) the last one that happens."""
    done = [0]
    for name in ("rename", "unlink"):
        real = getattr(os, name)

        def step(*args, _real=real, **kwargs):
            if done[0] == steps:
                done[0] += 1
                raise Killed
            done[0] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(os, name, step)
    return done


# --------------------------------------------------------------------------- the normal path


def test_the_first_admin_adopts_everything_and_sees_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    before = make_legacy(data_dir)
    assert legacy_data_present(data_dir)

    result = adopt_single_user_data(data_dir, ADMIN)

    assert not result.already_adopted and result.owner_id == ADMIN.user_id
    assert sorted(result.moved) == sorted(before)
    assert result.conflicts == () and result.already_there == ()
    assert_adopted_once(data_dir, ADMIN, before)
    store = ChatStore(user_root(data_dir, ADMIN) / "chats", DocumentLimits())
    conversations = [store.load(summary.id) for summary in store.list()]
    assert sorted(c.messages[0].text for c in conversations) == [f"question {n}" for n in range(3)]
    for conversation in conversations:
        for image in conversation.messages[0].images:
            assert store.images.load(image).size == (8, 6)
    [entry] = adopt_events(data_dir)
    assert entry.user_id == ADMIN.user_id and entry.target == ADMIN.user_id
    assert entry.detail.startswith(f"{len(before)} file(s) moved")


def test_the_single_user_defaults_are_copied_to_an_owner_without_their_own(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    make_legacy(data_dir)
    save_personal_settings(data_dir, LOCAL_USER, system_prompt="Be brief.", ocr_template="receipt")

    adopt_single_user_data(data_dir, ADMIN)

    adopted = read_personal_settings(data_dir, ADMIN)
    assert (adopted.system_prompt, adopted.ocr_template) == ("Be brief.", "receipt")
    assert read_personal_settings(data_dir, LOCAL_USER).system_prompt == "Be brief."  # kept


def test_an_owner_keeps_their_own_defaults(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    make_legacy(data_dir)
    save_personal_settings(data_dir, LOCAL_USER, system_prompt="Be brief.")
    save_personal_settings(data_dir, MEMBER, system_prompt="Mine.")

    adopt_single_user_data(data_dir, LOCAL_USER, owner=MEMBER)

    assert read_personal_settings(data_dir, MEMBER).system_prompt == "Mine."


def test_a_second_run_is_a_no_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "data"
    before = make_legacy(data_dir)
    adopt_single_user_data(data_dir, ADMIN)
    journal_before = journal_path(data_dir).read_bytes()

    with monkeypatch.context() as patch:  # every sign-in asks: it reads the journal only
        patch.setattr(os, "walk", lambda *a, **k: pytest.fail("walked a folder"))
        again = adopt_single_user_data(data_dir, OTHER_ADMIN)

    assert again.already_adopted and again.owner_id == ADMIN.user_id and again.moved == ()
    assert_adopted_once(data_dir, ADMIN, before)
    assert journal_path(data_dir).read_bytes() == journal_before
    assert len(adopt_events(data_dir)) == 1


def test_nothing_to_adopt_writes_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "chats" / ".locks").mkdir(parents=True)  # lock files are no data
    (data_dir / "chats" / ".locks" / "x.json.lock").touch()

    result = adopt_single_user_data(data_dir, ADMIN)

    assert result.moved == () and not result.already_adopted
    assert not (data_dir / "users").exists()
    assert adopt_events(data_dir) == []


def test_a_named_user_can_be_the_owner(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    before = make_legacy(data_dir)
    result = adopt_single_user_data(data_dir, LOCAL_USER, owner=MEMBER)
    assert result.owner_id == MEMBER.user_id
    assert_adopted_once(data_dir, MEMBER, before)
    assert adopt_events(data_dir)[0].user_id == LOCAL_USER.user_id


# --------------------------------------------------------------------------- who may


@pytest.mark.parametrize("user", [MEMBER, VIEWER], ids=["member", "viewer"])
def test_only_an_admin_may_adopt(tmp_path: Path, user: User) -> None:
    data_dir = tmp_path / "data"
    before = make_legacy(data_dir)
    with pytest.raises(PermissionDenied, match=f"your role \\({user.role}\\) may not adopt"):
        adopt_single_user_data(data_dir, user)
    assert data_files(data_dir) == before
    assert not journal_path(data_dir).exists()
    [refused] = AuditLog(data_dir).recent()
    assert refused.outcome == "denied" and refused.user_id == user.user_id


def test_the_local_operator_cannot_be_the_owner(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    before = make_legacy(data_dir)
    with pytest.raises(BadInput, match="already owns"):
        adopt_single_user_data(data_dir, LOCAL_USER)
    assert data_files(data_dir) == before


# --------------------------------------------------------------------------- killed mid-way


def test_killed_after_any_step_then_run_again_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    with pytest.MonkeyPatch.context() as counting:
        done = kill_after(counting, steps=-1)
        make_legacy(tmp_path / "count")
        adopt_single_user_data(tmp_path / "count", ADMIN)
        steps = done[0]
    assert steps > 10  # renames of every file, removals of the lock files
    for kill_at in range(steps):
        data_dir = tmp_path / f"kill{kill_at}"
        before = make_legacy(data_dir)
        with pytest.MonkeyPatch.context() as patch:
            kill_after(patch, kill_at)
            with pytest.raises(Killed):
                adopt_single_user_data(data_dir, ADMIN)
        journal = read_journal(data_dir)
        assert journal is not None and journal.finished_at is None, kill_at

        result = adopt_single_user_data(data_dir, ADMIN)

        assert not result.already_adopted and result.conflicts == (), kill_at
        assert_adopted_once(data_dir, ADMIN, before)
        assert adopt_single_user_data(data_dir, ADMIN).already_adopted


def test_a_resumed_adoption_keeps_the_first_owner(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    before = make_legacy(data_dir)
    with pytest.MonkeyPatch.context() as patch:
        kill_after(patch, 3)
        with pytest.raises(Killed):
            adopt_single_user_data(data_dir, ADMIN)

    result = adopt_single_user_data(data_dir, OTHER_ADMIN)  # another admin signs in first

    assert result.owner_id == ADMIN.user_id
    assert_adopted_once(data_dir, ADMIN, before)
    assert not user_root(data_dir, OTHER_ADMIN).exists()


_KILLING_ADOPTER = """
import os, signal, sys
from pathlib import Path
from utils.auth.adoption import adopt_single_user_data
from utils.auth.identity import User

real_rename, renames = os.rename, [0]
def rename(source, target):
    real_rename(source, target)
    renames[0] += 1
    if renames[0] == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
os.rename = rename
adopt_single_user_data(Path(sys.argv[1]), User(user_id=sys.argv[3], role="admin"))
"""


def test_a_real_kill_leaves_no_lock_held_and_the_rerun_finishes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    before = make_legacy(data_dir, ocr_runs=6)
    command = [sys.executable, "-c", _KILLING_ADOPTER, str(data_dir), "4", ADMIN.user_id]
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert len(data_files(user_root(data_dir, ADMIN))) == 4

    adopt_single_user_data(data_dir, ADMIN, lock_wait_s=2)

    assert_adopted_once(data_dir, ADMIN, before)


# --------------------------------------------------------------------------- hostile folders


def test_hostile_contents_are_kept_not_overwritten_or_followed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    before = make_legacy(data_dir)
    chats, owner_chats = data_dir / "chats", user_root(data_dir, ADMIN) / "chats"
    conversation = next(n for n in before if n.startswith("chats/") and n.count("/") == 1)
    image = next(name for name in before if "/images/" in name)
    # The owner already has the same image, and other bytes under a conversation's name.
    (owner_chats / "images").mkdir(parents=True)
    (owner_chats.parent / image).write_bytes(before[image])
    (owner_chats.parent / conversation).write_bytes(b'{"theirs": true}')
    # A link out of the data folder, a linked folder, a killed writer's temp file,
    # a name no app would write.
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    (chats / "link.json").symlink_to(secret)
    (chats / "linked").symlink_to(tmp_path, target_is_directory=True)
    (chats / f".x.json.{'ab' * 16}.tmp").write_bytes(b"half")
    (chats / "notes ü\n.txt").write_bytes(b"odd name")
    not_utf8 = os.fsdecode(b"raw\xffname.bin")
    (chats / not_utf8).write_bytes(b"name is not UTF-8")

    result = adopt_single_user_data(data_dir, ADMIN)

    assert result.already_there == (image,)
    assert result.conflicts == (f"{CONFLICTS_DIR_NAME}/{conversation}",)
    assert (owner_chats.parent / conversation).read_bytes() == b'{"theirs": true}'
    kept = user_root(data_dir, ADMIN) / CONFLICTS_DIR_NAME / conversation
    assert kept.read_bytes() == before[conversation]
    assert (owner_chats / "notes ü\n.txt").read_bytes() == b"odd name"
    assert sorted(result.left_in_place) == sorted(
        ["chats/link.json", "chats/linked", f"chats/.x.json.{'ab' * 16}.tmp"]
    )
    assert (chats / "link.json").is_symlink() and secret.read_text() == "outside"
    assert not legacy_data_present(data_dir)
    moved_or_kept = set(result.moved) | {image, conversation}
    assert moved_or_kept == set(before) | {"chats/notes ü\n.txt", f"chats/{not_utf8}"}
    assert (owner_chats / not_utf8).read_bytes() == b"name is not UTF-8"


def test_a_conflict_name_already_taken_gets_a_number(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "ocr").mkdir(parents=True)
    (data_dir / "ocr" / "run.json").write_bytes(b"mine")
    owner_root = user_root(data_dir, ADMIN)
    (owner_root / "ocr").mkdir(parents=True)
    (owner_root / "ocr" / "run.json").write_bytes(b"theirs")
    (owner_root / CONFLICTS_DIR_NAME / "ocr").mkdir(parents=True)
    (owner_root / CONFLICTS_DIR_NAME / "ocr" / "run.json").write_bytes(b"older conflict")

    result = adopt_single_user_data(data_dir, ADMIN)

    assert result.conflicts == (f"{CONFLICTS_DIR_NAME}/ocr/run.1.json",)
    assert (owner_root / CONFLICTS_DIR_NAME / "ocr" / "run.1.json").read_bytes() == b"mine"
    assert (owner_root / CONFLICTS_DIR_NAME / "ocr" / "run.json").read_bytes() == (
        b"older conflict"
    )


def test_a_folder_on_another_file_system_is_refused_before_anything_moves(
    tmp_path: Path,
) -> None:
    elsewhere = Path("/dev/shm")
    if not elsewhere.is_dir() or elsewhere.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a second file system (/dev/shm)")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    outside = Path(os.path.realpath(elsewhere)) / f"adoption-test-{os.getpid()}"
    outside.mkdir()
    try:
        (outside / "run.json").write_bytes(b"run")
        (data_dir / "ocr").symlink_to(outside, target_is_directory=True)
        with pytest.raises(StorageError, match="another file system"):
            adopt_single_user_data(data_dir, ADMIN)
        assert (outside / "run.json").read_bytes() == b"run"
        assert not journal_path(data_dir).exists()
    finally:
        (outside / "run.json").unlink(missing_ok=True)
        outside.rmdir()


# --------------------------------------------------------------------------- two at once


_WAITING_ADOPTER = """
import json, sys, time
from pathlib import Path
from utils.auth.adoption import adopt_single_user_data
from utils.auth.identity import User

data_dir, gate, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
(gate.parent / f"ready-{name}").touch()
while not gate.exists():
    time.sleep(0.001)
result = adopt_single_user_data(data_dir, User(user_id=sys.argv[4], role="admin"))
print(result.model_dump_json())
"""


def test_two_adopters_at_once_move_each_file_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    before = make_legacy(data_dir, ocr_runs=300)
    gate = tmp_path / "go"
    adopters = [
        subprocess.Popen(
            [sys.executable, "-c", _WAITING_ADOPTER, str(data_dir), str(gate), name, who],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name, who in (("a", ADMIN.user_id), ("b", OTHER_ADMIN.user_id))
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{n}").exists() for n in "ab"):
        assert time.monotonic() < deadline, "the adopters did not start"
        time.sleep(0.01)
    gate.touch()
    outputs = [adopter.communicate(timeout=120) for adopter in adopters]
    assert [adopter.returncode for adopter in adopters] == [0, 0], outputs
    results = [json.loads(out) for out, _ in outputs]

    done_first = [r for r in results if not r["already_adopted"]]
    assert len(done_first) == 1 and sorted(done_first[0]["moved"]) == sorted(before)
    owner = ADMIN if done_first[0]["owner_id"] == ADMIN.user_id else OTHER_ADMIN
    assert all(r["owner_id"] == owner.user_id for r in results)
    assert_adopted_once(data_dir, owner, before)
    assert len(adopt_events(data_dir)) == 1
