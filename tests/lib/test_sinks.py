"""Output safety without Spark: whose target it is, one writer at a time, atomic publish.

The job's rule: it writes only to a new target or its own earlier output, never to or
inside its input, one run per target at a time, and cleanup never removes the live version.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest

from lib.errors import InvalidInputError
from lib.sinks import MARKER_NAME, LocalTarget, OutputBusyError


def write_version(target: LocalTarget, label: str, rows: int = 3) -> Path:
    """What Spark leaves in a staging folder: part files and _SUCCESS."""
    staging = target.new_staging(label)
    staging.mkdir()
    for i in range(rows):
        (staging / f"part-{i:05d}.parquet").write_text(f"{label}:{i}")
    (staging / "_SUCCESS").write_text("")
    return staging


def publish(target: LocalTarget, label: str) -> Path:
    with target.lock():
        return target.publish(write_version(target, label), marker={"label": label})


def live_label(path: Path) -> str:
    return json.loads((path / MARKER_NAME).read_text())["label"]


def test_new_target_is_published_as_a_link_to_a_marked_version(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path / "out.parquet")
    target.check(str(tmp_path / "users.parquet"))
    publish(target, "first")
    assert target.path.is_symlink() and target.is_own_output()
    assert live_label(target.path) == "first"
    assert sorted(p.name for p in target.path.iterdir()) == [
        "_PREDICTIONS.json",
        "_SUCCESS",
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]


def test_existing_folder_of_other_files_is_refused_and_left_untouched(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "q3.xlsx").write_text("precious")
    target = LocalTarget(folder)
    with pytest.raises(InvalidInputError, match="not this job's output"):
        target.check(str(tmp_path / "users.parquet"))
    assert (folder / "q3.xlsx").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]


def test_existing_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.parquet").write_text("mine")
    with pytest.raises(InvalidInputError, match="a file of other data"):
        LocalTarget(tmp_path / "notes.parquet").check(None)


def test_symlink_to_somewhere_else_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out.parquet").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InvalidInputError, match="not this job's output"):
        LocalTarget(tmp_path / "out.parquet").check(None)


def test_output_equal_to_the_input_is_refused(tmp_path: Path) -> None:
    users = tmp_path / "users.parquet"
    users.write_text("users")
    with pytest.raises(InvalidInputError, match="not this job's output"):
        LocalTarget(users).check(str(users))
    assert users.read_text() == "users"


def test_output_inside_an_input_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "users").mkdir()
    with pytest.raises(InvalidInputError, match="inside the input"):
        LocalTarget(tmp_path / "users" / "scores.parquet").check(str(tmp_path / "users"))


def test_input_inside_the_output_is_refused(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path / "out.parquet")
    publish(target, "first")
    with pytest.raises(InvalidInputError, match="is the input"):
        target.check(str(tmp_path / "out.parquet"))  # scoring the predictions themselves
    with pytest.raises(InvalidInputError, match="inside the output"):
        target.check(str(target.path.resolve() / "part-00000.parquet"))


def test_own_output_of_an_older_release_without_marker_is_accepted(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path / "out.parquet")
    publish(target, "old")
    (target.path.resolve() / MARKER_NAME).unlink()  # what the previous release wrote
    target.check(None)
    (target.path.resolve() / "my-notes.txt").write_text("not Spark's")
    with pytest.raises(InvalidInputError):
        target.check(None)


def test_a_second_run_for_the_same_target_refuses_at_once(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path / "out.parquet")
    busy = pytest.raises(OutputBusyError, match=rf"another run \(pid {os.getpid()}\)")
    with target.lock(), busy, LocalTarget(tmp_path / "out.parquet").lock():
        pass
    with target.lock():  # released: the next run goes ahead
        pass


def test_leftovers_of_dead_runs_are_removed_under_the_lock(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path / "out.parquet")
    publish(target, "first")
    debris = write_version(target, "killed")
    stray = tmp_path / ".out.parquet.link-deadbeef"
    stray.symlink_to("nowhere")
    publish(target, "second")
    assert not debris.exists() and not stray.is_symlink()
    assert live_label(target.path) == "second"


def test_cleanup_keeps_the_live_version_and_one_before_it(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path / "out.parquet")
    for label in ["a", "b", "c", "d"]:
        publish(target, label)
    versions = sorted(live_label(v) for v in target.versions.iterdir())
    assert versions == ["c", "d"] and live_label(target.path) == "d"


def test_cleanup_never_removes_the_live_version_even_when_it_is_the_oldest(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path / "out.parquet")
    publish(target, "a")
    live = publish(target, "b")
    os.utime(live, (1, 1))  # the live version now looks the oldest of all
    publish_target = LocalTarget(tmp_path / "out.parquet", keep=1)
    with publish_target.lock():
        # simulate a publish whose prune runs while "b" is still live (keep=1)
        publish_target._prune(live=live)
    assert target.path.resolve() == live and live.exists()


# ---- many publishers at once, some killed ----------------------------------------------------
def _publisher(path: str, worker: int, rounds: int) -> None:
    target = LocalTarget(path)
    done = 0
    while done < rounds:
        try:
            publish(target, f"w{worker}-{done}")
            done += 1
        except OutputBusyError:
            time.sleep(random.uniform(0, 0.01))


def test_concurrent_publishers_and_kills_never_break_the_target(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    publish(LocalTarget(path), "seed")
    (tmp_path / "neighbour.txt").write_text("keep me")
    problems: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        # The invariant: the link always resolves to a complete, marked version. A version
        # may vanish under a slow reader only after two newer ones were published (the
        # live one and the one before it are kept), never while it is live.
        while not stop.is_set():
            pointed = None
            try:
                pointed = os.readlink(path)
                live = path.resolve(strict=True)
            except OSError as err:
                if os.readlink(path) == pointed:  # the link itself points nowhere: a bug
                    problems.append(f"link broken: {err}")
                continue
            try:
                parts = sorted(p.name for p in live.iterdir() if p.name.startswith("part-"))
                label = live_label(live)
                complete = len(parts) == 3 and all(
                    (live / p).read_text().startswith(label) for p in parts
                )
            except (OSError, ValueError) as err:
                if path.resolve() == live:  # still live, yet unreadable: that is a bug
                    problems.append(f"live version unreadable: {type(err).__name__}: {err}")
                continue
            if not complete:
                problems.append(f"incomplete or mixed version {live.name}")

    context = multiprocessing.get_context("fork")
    watcher = threading.Thread(target=reader)
    watcher.start()
    try:
        workers = [context.Process(target=_publisher, args=(str(path), i, 15)) for i in range(6)]
        for process in workers:
            process.start()
        rng = random.Random(7)
        victims = rng.sample(workers, 2)  # two publishers die mid-way, lock held or not
        for victim in victims:
            time.sleep(rng.uniform(0.05, 0.2))
            with contextlib.suppress(ProcessLookupError):  # it may have finished already
                os.kill(victim.pid, signal.SIGKILL)
        for process in workers:
            process.join(timeout=60)
            assert not process.is_alive()
    finally:
        stop.set()
        watcher.join()
    assert problems == []
    # A victim may have finished its rounds before the signal came; every other one did.
    assert all(p.exitcode == 0 for p in workers if p not in victims)
    assert all(p.exitcode in (0, -signal.SIGKILL) for p in victims)
    target = LocalTarget(path)
    assert target.is_own_output()
    publish(target, "after")  # a later run cleans the dead runs' debris and publishes
    assert live_label(path) == "after"
    assert list(target.staging_root.iterdir()) == []
    assert len(list(target.versions.iterdir())) <= 2
    assert (tmp_path / "neighbour.txt").read_text() == "keep me"


# ---- the hidden siblings are ours only: links and foreign data there are refused or kept ------
def test_versions_folder_that_is_a_link_is_refused_and_its_files_kept(tmp_path: Path) -> None:
    elsewhere = tmp_path / "big-disk"
    elsewhere.mkdir()
    (elsewhere / "thesis.docx").write_text("precious")
    (tmp_path / ".out.parquet.versions").symlink_to(elsewhere)
    with pytest.raises(InvalidInputError, match="not a link"):
        LocalTarget(tmp_path / "out.parquet").check(None)
    assert (elsewhere / "thesis.docx").read_text() == "precious"


def test_staging_folder_that_is_a_link_is_refused_and_its_files_kept(tmp_path: Path) -> None:
    elsewhere = tmp_path / "photos"
    elsewhere.mkdir()
    (elsewhere / "cat.jpg").write_text("meow")
    (tmp_path / ".out.parquet.staging").symlink_to(elsewhere)
    target = LocalTarget(tmp_path / "out.parquet")
    with pytest.raises(InvalidInputError, match="not a link"):
        target.check(None)
    with target.lock():  # even if someone skips the check, cleanup does not follow the link
        pass
    assert (elsewhere / "cat.jpg").read_text() == "meow"


def test_foreign_files_in_our_hidden_folders_are_never_removed(tmp_path: Path) -> None:
    versions = tmp_path / ".out.parquet.versions"
    versions.mkdir()
    (versions / "notes.txt").write_text("mine")
    (versions / "20260101T000000-run1-0badf00d").mkdir()  # our name, but not our content
    (versions / "20260101T000000-run1-0badf00d" / "report.pdf").write_text("mine too")
    (versions / "20260101T000000-run2-0badf00d").mkdir()  # an empty folder is not a version
    staging = tmp_path / ".out.parquet.staging"
    staging.mkdir()
    (staging / "draft.csv").write_text("mine as well")
    target = LocalTarget(tmp_path / "out.parquet")
    for label in ["a", "b", "c"]:
        publish(target, label)
    assert (versions / "notes.txt").read_text() == "mine"
    assert (versions / "20260101T000000-run1-0badf00d" / "report.pdf").exists()
    assert (versions / "20260101T000000-run2-0badf00d").is_dir()
    assert (staging / "draft.csv").read_text() == "mine as well"
    assert live_label(target.path) == "c"


def test_lock_file_that_is_a_link_does_not_truncate_its_target(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("do not truncate me")
    (tmp_path / ".out.parquet.lock").symlink_to(notes)
    target = LocalTarget(tmp_path / "out.parquet")
    with pytest.raises(InvalidInputError, match="plain file"):
        target.check(None)
    with pytest.raises(InvalidInputError, match="lock file"), target.lock():
        pass
    assert notes.read_text() == "do not truncate me"


def test_another_campaigns_output_is_refused(tmp_path: Path) -> None:
    first = LocalTarget(tmp_path / "out.parquet", campaign_id=1)
    with first.lock():
        first.publish(write_version(first, "run1"))
    with pytest.raises(InvalidInputError, match="holds campaign 1's predictions"):
        LocalTarget(tmp_path / "out.parquet", campaign_id=2).check(None)
    LocalTarget(tmp_path / "out.parquet", campaign_id=1).check(None)


def test_a_failed_rename_is_one_error_and_the_old_output_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    target = LocalTarget(tmp_path / "out.parquet")
    publish(target, "old")

    def cross_device(self: Path, other: Path) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    with target.lock():
        staging = write_version(target, "new")
        monkeypatch.setattr(Path, "rename", cross_device)
        with pytest.raises(InvalidInputError, match=r"cross-device.*unchanged"):
            target.publish(staging)
    assert live_label(target.path) == "old"


def test_dangling_link_at_the_target_is_named_as_a_link(tmp_path: Path) -> None:
    (tmp_path / "out.parquet").symlink_to(tmp_path / "gone")
    with pytest.raises(InvalidInputError, match="a link to"):
        LocalTarget(tmp_path / "out.parquet").check(None)


def test_file_uris_are_local_targets(tmp_path: Path) -> None:
    from lib.sinks import LocalParquetSink, ObjectStoreSink, sink_for

    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "thesis.docx").write_text("x")
    sink = sink_for(f"file://{folder}")
    assert isinstance(sink, LocalParquetSink) and sink.location == str(folder)
    with pytest.raises(InvalidInputError, match="not this job's output"):
        sink.check(str(tmp_path / "users.parquet"))
    assert isinstance(sink_for("gs://bucket/out.parquet"), ObjectStoreSink)
    with pytest.raises(InvalidInputError, match="local path"):
        sink_for("file://otherhost/data/out")
