"""A cached, verified download of one file: what `tsm weights get` and published weights use.

`fetch_file` puts a file in a cache folder (the torch hub cache by default,
``torch.hub.get_dir()/checkpoints``, i.e. ``$TORCH_HOME/hub/checkpoints``, as torchvision does):

- with a progress bar (tqdm, on stderr);
- one download per file at a time: a lock next to it (``FILE.lock``, removed after) makes a
  second process (or thread) that wants the same file wait, then use the first one's;
- a broken transfer is retried, resuming where it stopped (HTTP ``Range``) only when the
  server named the file's version (a strong ``ETag`` or a ``Last-Modified`` date, kept in
  ``FILE.part.json``) and confirms it is unchanged (``If-Range``); otherwise, or from another
  URL (a mirror), the file is fetched from the start: a file is never stitched from two
  versions. Then the mirrors are tried; a file shorter than the server announced is never kept;
- a file longer than ``max_bytes`` (the caller's bound, e.g. what a published checkpoint
  can weigh) or than the server announced is refused as soon as it gets there;
- the file must pass the caller's ``verify`` (e.g. a checkpoint of the expected layout and
  checksum) before it takes its name in the cache;
- the sha256 of the first verified download is recorded next to it (``FILE.sha256``) and
  every later use checks the cached file against it.

Nothing here knows what the file is: `published.PublishedWeights.fetch` says.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from temporal_shift.checkpoint.format import CheckpointError

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


class DownloadError(OSError):
    """A file could not be downloaded; the message says how to get it otherwise."""


def default_cache_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``), as torchvision uses."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def safe_file_name(url: str, *, fallback: str) -> str:
    """A file name for what ``url`` points at, safe to put in a cache folder: the last part of
    its path, decoded, with anything but letters, digits, ``.``, ``-`` and ``_`` replaced by
    ``_`` and no leading dot; ``fallback`` (made safe the same way) when nothing is left (a URL
    ending in ``/``, or naming ``.`` or ``..``)."""

    def clean(text: str) -> str:
        return _SAFE_NAME.sub("_", text).lstrip(".")

    last = urllib.parse.unquote(urllib.parse.urlparse(url).path.rsplit("/", 1)[-1])
    return clean(last) or clean(fallback) or "download"


def fetch_file(
    path: Path,
    *,
    urls: Sequence[str],
    verify: Callable[[Path, str], None],
    name: str,
    otherwise: str,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 30.0,
    backoff: float = 1.0,
    max_bytes: int | None = None,
) -> Path:
    """The verified file at ``path``, downloaded from the first of ``urls`` that works if absent.

    ``verify(file, source)`` raises (naming ``source``) for a file that is not the one
    wanted. A cached file is checked against the sha256 recorded at its first use; a file
    without a record (a first download, or one put there by hand) is verified, then
    recorded. ``name`` names the file in messages, ``otherwise`` says how to get it by
    other means when every URL fails; a transfer past ``max_bytes`` is stopped (see the
    module docstring). ``path.name`` must be a plain file name (`safe_file_name`).
    """
    if safe_file_name(path.name, fallback="") != path.name:
        raise ValueError(f"{path}: not a plain file name for a cache ({path.name!r}); see safe_file_name")
    path.parent.mkdir(parents=True, exist_ok=True)
    waiting = (
        (lambda: print(f"{name}: waiting for another download of {path} to finish", file=sys.stderr, flush=True))
        if progress
        else (lambda: None)
    )
    with _exclusive(path, waiting=waiting):
        return _fetch_locked(
            path,
            urls=urls,
            verify=verify,
            name=name,
            otherwise=otherwise,
            progress=progress,
            retries=retries,
            timeout=timeout,
            backoff=backoff,
            max_bytes=max_bytes,
        )


@contextlib.contextmanager
def _exclusive(path: Path, *, waiting: Callable[[], None]) -> Iterator[None]:
    """Hold ``FILE.lock`` (an advisory lock: `fcntl.flock`, `msvcrt.locking` on Windows) while
    the file is fetched; calls ``waiting()`` once if another holder makes it wait. The lock
    file is removed by its holder on the way out; a waiter that then gets the lock of a
    removed file takes the new one instead."""
    lock = path.with_name(path.name + ".lock")
    told = False
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_lock(fd):
                if not told:
                    waiting()
                    told = True
                _lock(fd)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock))
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)  # the previous holder removed that file: lock the one there now
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)  # still holding it: a waiter finds its file gone and retries
        os.close(fd)


try:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)
except ImportError:  # Windows
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            return True
        except OSError:
            return False

    def _lock(fd: int) -> None:
        while not _try_lock(fd):
            time.sleep(0.1)


def _fetch_locked(
    path: Path,
    *,
    urls: Sequence[str],
    verify: Callable[[Path, str], None],
    name: str,
    otherwise: str,
    progress: bool,
    retries: int,
    timeout: float,
    backoff: float,
    max_bytes: int | None,
) -> Path:
    record = path.with_name(path.name + ".sha256")
    if path.is_file():
        if record.is_file():
            recorded = record.read_text(encoding="utf-8").strip()
            actual = sha256_file(path)
            if actual != recorded:
                raise CheckpointError(
                    f"{path}: cached file changed since it was first verified (sha256 {actual}, recorded "
                    f"{recorded}); delete it and run `tsm weights get {name}` to download it again"
                )
            return path
        verify(path, str(path))
        record.write_text(sha256_file(path) + "\n", encoding="utf-8")
        return path
    part = path.with_name(path.name + ".part")
    url = _download(
        urls,
        part,
        name=name,
        otherwise=otherwise,
        progress=progress,
        retries=retries,
        timeout=timeout,
        backoff=backoff,
        max_bytes=max_bytes,
    )
    try:
        verify(part, url)
    except (CheckpointError, ValueError):
        _discard(part)
        raise
    os.replace(part, path)
    _meta_path(part).unlink(missing_ok=True)
    record.write_text(sha256_file(path) + "\n", encoding="utf-8")
    return path


def _download(
    urls: Sequence[str],
    part: Path,
    *,
    name: str,
    otherwise: str,
    progress: bool,
    retries: int,
    timeout: float,
    backoff: float,
    max_bytes: int | None,
) -> str:
    """Fetch into ``part`` (resuming a partial file of the same URL and version), trying
    each URL with retries."""
    failures: list[str] = []
    meta = _meta_path(part)
    try:
        for url in urls:
            for attempt in range(retries + 1):
                try:
                    _transfer(
                        url,
                        part,
                        desc=part.with_suffix("").name,
                        progress=progress,
                        timeout=timeout,
                        max_bytes=max_bytes,
                        name=name,
                    )
                    return url
                except _TooBig as exc:
                    failures.append(f"{url}: {exc}")
                    _discard(part)
                    break  # the same bytes again would be refused again
                except urllib.error.HTTPError as exc:
                    failures.append(f"{url}: HTTP {exc.code} {exc.reason}")
                    if exc.code == 416:  # a stale partial file the server cannot resume
                        _discard(part)
                    elif exc.code < 500 and exc.code != 429:
                        break  # not found, forbidden...: retrying will not help
                except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                    failures.append(f"{url}: {_reason(exc)}")
                if attempt < retries:
                    time.sleep(backoff * 2**attempt)
        _discard(part)
    finally:
        if not part.is_file():
            meta.unlink(missing_ok=True)
    last = failures[-1] if failures else "no URL"
    raise DownloadError(
        f"cannot download {name} from {urls[0] if urls else '(no URL)'} ({last}; {len(failures)} attempts); "
        f"{otherwise}, or put it at {part.with_suffix('')}"
    )


class _Truncated(OSError):
    pass


class _TooBig(OSError):
    """More bytes than the file may have, or than the server announced."""


def _meta_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    _meta_path(part).unlink(missing_ok=True)


def _validator(headers) -> str | None:
    """What names this version of the file, for ``If-Range``: a strong ETag, else Last-Modified."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified") or None


def _read_meta(part: Path) -> dict:
    try:
        meta = json.loads(_meta_path(part).read_text(encoding="utf-8"))
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError):
        return {}


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return str(exc.reason)
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed after {len(exc.partial)} more bytes, {exc.expected} missing"
    return str(exc) or type(exc).__name__


def _transfer(
    url: str, part: Path, *, desc: str, progress: bool, timeout: float, max_bytes: int | None, name: str
) -> None:
    """One request: append to ``part`` from its current size when the server confirms the
    version it was started from (``Range`` + ``If-Range``), else write it from the start."""
    size = part.stat().st_size if part.is_file() else 0
    meta = _read_meta(part)
    scheme = urllib.parse.urlparse(url).scheme
    resumable = bool(size and scheme in ("http", "https") and meta.get("url") == url and meta.get("validator"))
    headers = {"User-Agent": "temporal-shift (python urllib)"}
    if resumable:
        headers["Range"] = f"bytes={size}-"
        headers["If-Range"] = meta["validator"]
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if response.getcode() != 206:  # the whole file (a changed one, when If-Range did not match)
            _write(
                response,
                part,
                url=url,
                offset=0,
                validator=_validator(response.headers),
                desc=desc,
                progress=progress,
                max_bytes=max_bytes,
                name=name,
            )
            return
        if not resumable:
            raise OSError("the server answered a request for the whole file with a part of it")
        if _continues(response, meta, size):
            _write(
                response,
                part,
                url=url,
                offset=size,
                validator=meta["validator"],
                desc=desc,
                progress=progress,
                max_bytes=max_bytes,
                name=name,
            )
            return
    _discard(part)  # a part of another version: start over
    _transfer(url, part, desc=desc, progress=progress, timeout=timeout, max_bytes=max_bytes, name=name)


def _write(
    response,
    part: Path,
    *,
    url: str,
    offset: int,
    validator: str | None,
    desc: str,
    progress: bool,
    max_bytes: int | None,
    name: str,
) -> None:
    """Stream ``response`` into ``part`` after its first ``offset`` bytes, within the bounds;
    the URL, version and length are kept beside it (``FILE.part.json``) for a resume."""
    from tqdm import tqdm

    length = response.headers.get("Content-Length")
    total = offset + int(length) if length is not None and length.isdigit() else None
    if total is not None and max_bytes is not None and total > max_bytes:
        raise _TooBig(f"{total} bytes announced, more than the {max_bytes} bytes {name} can have")
    _meta_path(part).write_text(json.dumps({"url": url, "validator": validator, "length": total}), encoding="utf-8")
    written = offset
    with (
        open(part, "ab" if offset else "wb") as f,
        tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=desc,
            disable=not progress,
            file=sys.stderr,
            leave=True,
        ) as bar,
    ):
        while True:
            chunk = response.read(1 << 20)
            if not chunk:
                break
            written += len(chunk)
            if max_bytes is not None and written > max_bytes:
                raise _TooBig(f"more than the {max_bytes} bytes {name} can have")
            if total is not None and written > total:
                raise _TooBig(f"more than the {total} bytes announced")
            f.write(chunk)
            bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Truncated(f"transfer stopped at {size} of {total} bytes")


def _continues(response, meta: dict, size: int) -> bool:
    """A 206 answer continues the partial file: it starts where the file stops, the whole
    has the length first announced, and any validator it sends is the one kept."""
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range") or "")
    if match is None or int(match.group(1)) != size:
        return False
    whole = match.group(3)
    if meta.get("length") is not None and whole != "*" and int(whole) != meta["length"]:
        return False
    sent = _validator(response.headers)
    return sent is None or sent == meta.get("validator")
