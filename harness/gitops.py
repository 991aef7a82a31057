"""Git is the record: a worktree on branch `overnight/<tag>`, one commit per candidate, guarded resets.

The user's checkout and other branches are never touched. Only `train.py` is ever committed.
Every command runs with hooks switched off, so nothing in the repository runs on our behalf.
Each discarded candidate keeps a ref, `refs/overnight/<tag>/discarded/<n>`, so its diff stays
inspectable after the branch moves back to the best commit.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness import untrusted
from harness.errors import GitError
from harness.task import CONFIG, DOCKERFILE, TASK_FILES

_SAFE = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "commit.gpgsign=false",
    # Objects and refs reach the disk before git says a commit or reset is done.
    "-c",
    "core.fsync=committed",
    "-c",
    "core.fsyncMethod=fsync",
)
_IDENTITY = {
    "GIT_AUTHOR_NAME": "overnight",
    "GIT_AUTHOR_EMAIL": "overnight@localhost",
    "GIT_COMMITTER_NAME": "overnight",
    "GIT_COMMITTER_EMAIL": "overnight@localhost",
}


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    import git

    runner = git.Git(str(cwd))
    try:
        return runner.execute(
            ["git", *_SAFE, *args], env={**os.environ, **(env or {})}, strip_newline_in_stdout=True
        )
    except git.GitCommandError as err:
        stderr = (err.stderr or "").strip().replace("\n", " ")
        raise GitError(f"git {' '.join(args)} failed in {cwd}: {stderr}") from err


def _identity(cwd: Path) -> dict[str, str]:
    """Commit as the user when git knows who they are, else as `overnight`."""
    import git

    try:
        git.Git(str(cwd)).execute(["git", "config", "user.email"])
        git.Git(str(cwd)).execute(["git", "config", "user.name"])
    except git.GitCommandError:
        return _IDENTITY
    return {}


@dataclass(frozen=True)
class RepoPlace:
    """Where the task sits: the repository's top level and the task's path inside it."""

    top: Path
    task_rel: Path
    created: bool


def locate_repo(task_dir: Path) -> RepoPlace:
    """The repository holding the task, creating one with the task files when there is none."""
    import git

    try:
        top = Path(_git(task_dir, "rev-parse", "--show-toplevel"))
    except GitError:
        top = None
    except git.GitCommandNotFound as err:
        raise GitError("git is not installed: install git, then run overnight again") from err
    if top is None:
        _git(task_dir, "init", "-q")
        names = [n for n in (*TASK_FILES, CONFIG, DOCKERFILE) if (task_dir / n).is_file()]
        _git(task_dir, "add", "--", *names)
        _git(
            task_dir,
            "commit",
            "-q",
            "--no-verify",
            "-m",
            "overnight: initial task files",
            env=_identity(task_dir),
        )
        return RepoPlace(top=task_dir.resolve(), task_rel=Path("."), created=True)
    top = top.resolve()
    try:
        _git(top, "rev-parse", "--verify", "-q", "HEAD")
    except GitError as err:
        raise GitError(
            f"{top}: the repository has no commits yet; commit the task files first"
        ) from err
    return RepoPlace(top=top, task_rel=task_dir.resolve().relative_to(top), created=False)


def uncommitted_task_files(place: RepoPlace) -> list[str]:
    """The task files that differ from HEAD (modified, staged, deleted or untracked)."""
    paths = [str(place.task_rel / name) for name in TASK_FILES]
    status = _git(place.top, "status", "--porcelain", "--untracked-files=all", "--", *paths)
    return [line[3:] for line in status.splitlines() if line.strip()]


class Worktree:
    """The branch `overnight/<tag>` checked out in its own folder."""

    def __init__(self, place: RepoPlace, tag: str, path: Path) -> None:
        self.place = place
        self.tag = tag
        self.path = path
        self.branch = f"overnight/{tag}"

    @property
    def train_path(self) -> Path:
        return self.path / self.place.task_rel / "train.py"

    @property
    def train_rel(self) -> str:
        return str(self.place.task_rel / "train.py")

    def open(self) -> None:
        """Create the branch from HEAD and check it out here, or reuse both."""
        top = self.place.top
        branch_exists = bool(_git(top, "branch", "--list", self.branch))
        if (self.path / ".git").exists():
            if _git(self.path, "rev-parse", "--abbrev-ref", "HEAD") != self.branch:
                raise GitError(
                    f"{self.path}: not on {self.branch}; remove that folder and run again"
                )
            return
        _git(top, "worktree", "prune")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if branch_exists:
            _git(top, "worktree", "add", "-q", str(self.path), self.branch)
        else:
            _git(top, "worktree", "add", "-q", "-b", self.branch, str(self.path), "HEAD")

    def restart(self) -> bool:
        """Move the branch to the repository's HEAD (the user's fixed train.py) when nothing on it
        was kept yet; True if it moved. Its old head keeps a ref."""
        top_head = _git(self.place.top, "rev-parse", "HEAD")
        head = self.head()
        if head == top_head:
            return False
        _git(self.path, "update-ref", f"refs/overnight/{self.tag}/restarted/{head[:12]}", head)
        self.reset_to(top_head)
        return True

    def resolve(self, commit: str) -> str:
        """The full id of a (possibly abbreviated) commit."""
        return _git(self.path, "rev-parse", "--verify", "-q", f"{commit}^{{commit}}")

    def is_dirty(self) -> bool:
        return bool(_git(self.path, "status", "--porcelain", "--untracked-files=no"))

    def clear_stale_locks(self) -> list[Path]:
        """Remove git lock files left by a process that died mid-command (no process holds them)."""
        candidates = [
            Path(_git(self.path, "rev-parse", "--path-format=absolute", "--git-path", name))
            for name in ("index.lock", "HEAD.lock", f"refs/heads/{self.branch}.lock")
        ]
        removed = []
        for lock in candidates:
            if lock.exists() and not _held_open(lock):
                lock.unlink()
                removed.append(lock)
        return removed

    def check_integrity(self) -> None:
        """After an unclean stop: refuse to build on a damaged repository."""
        try:
            _git(self.path, "fsck", "--connectivity-only", "--no-progress", "--no-dangling")
        except GitError as err:
            raise GitError(
                f"{self.place.top}: `git fsck` found problems after the last run stopped uncleanly "
                f"({err}); repair the repository before resuming"
            ) from err

    def head(self) -> str:
        return _git(self.path, "rev-parse", "HEAD")

    def read_train(self) -> str:
        return self.train_path.read_text(encoding="utf-8")

    def commit_candidate(self, source: str, message: str) -> str:
        """Commit a new `train.py` (and nothing else) on the branch; returns the commit.

        The message goes through a file, not argv (no length limit, no NUL or encoding to
        trip over), kept verbatim (a leading `#` is not a comment) and printable."""
        self.train_path.write_text(source, encoding="utf-8")
        _git(self.path, "add", "--", self.train_rel)
        with tempfile.NamedTemporaryFile("wb", prefix="overnight-msg-") as text:
            text.write(untrusted.printable(message).encode("utf-8"))
            text.flush()
            _git(
                self.path,
                "commit",
                "-q",
                "--no-verify",
                "--allow-empty-message",
                "--cleanup=verbatim",
                "-F",
                text.name,
                "--",
                self.train_rel,
                env=_identity(self.path),
            )
        return self.head()

    def discard(self, candidate: str, best: str, experiment: int) -> None:
        """Keep a ref to the candidate, then move the branch back to the best commit."""
        if self.head() != candidate:
            raise GitError(
                f"{self.path}: HEAD is {self.head()[:12]}, expected candidate {candidate[:12]}; "
                "something else moved the branch, so overnight will not reset it"
            )
        self.keep_ref(candidate, experiment)
        self.reset_to(best)

    def keep_ref(self, commit: str, experiment: int, kind: str = "discarded") -> None:
        """A ref that keeps a commit the branch moved away from: refs/overnight/TAG/KIND/N
        (KIND "crashed/1": the candidate as it was before its first repair)."""
        ref = f"refs/overnight/{self.tag}/{kind}/{experiment}"
        _git(self.path, "update-ref", ref, commit)

    def reset_to(self, commit: str) -> None:
        _git(self.path, "reset", "-q", "--hard", commit)

    def diff(self, old: str, new: str) -> str:
        return _git(self.path, "diff", old, new, "--", self.train_rel)

    def files_changed(self, commit: str) -> list[str]:
        out = _git(self.path, "diff-tree", "--no-commit-id", "--name-only", "-r", commit)
        return out.splitlines()


def _held_open(path: Path) -> bool:
    """Whether any process on this machine has the file open (Linux: /proc/*/fd).

    Compared by device and inode, so a symlinked temp dir or a path spelled differently still
    matches; an fd that closes while we look is skipped alone, not its whole process."""
    try:
        wanted = os.stat(path)
    except OSError:
        return False
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            fds = list(fd_dir.iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                opened = os.stat(fd)
            except OSError:
                continue
            if (opened.st_dev, opened.st_ino) == (wanted.st_dev, wanted.st_ino):
                return True
    return False
