"""A cached, verified download of one file: what `tsm weights get` and published weights use.

`fetch_file` puts a file in a cache folder (the torch hub cache by default,
``torch.hub.get_dir()/checkpoints``, i.e. ``$TORCH_HOME/hub/checkpoints``, as torchvision does):

- with a progress bar (tqdm, on stderr);
- a broken transfer is retried, resuming where it stopped (HTTP ``Range``), then the
  mirrors are tried; a file shorter than the server announced is never kept;
- the file must pass the caller's ``verify`` (e.g. a checkpoint of the expected layout and
  checksum) before it takes its name in the cache;
- the sha256 of the first verified download is recorded next to it (``FILE.sha256``) and
  every later use checks the cached file against it.

Nothing here knows what the file is: `published.PublishedWeights.fetch` says.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from temporal_shift.checkpoint.format import CheckpointError


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
) -> Path:
    """The verified file at ``path``, downloaded from the first of ``urls`` that works if absent.

    ``verify(file, source)`` raises (naming ``source``) for a file that is not the one
    wanted. A cached file is checked against the sha256 recorded at its first use; a file
    without a record (a first download, or one put there by hand) is verified, then
    recorded. ``name`` names the file in messages, ``otherwise`` says how to get it by
    other means when every URL fails.
    """
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
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    url = _download(
        urls, part, name=name, otherwise=otherwise, progress=progress, retries=retries, timeout=timeout, backoff=backoff
    )
    try:
        verify(part, url)
    except (CheckpointError, ValueError):
        part.unlink(missing_ok=True)
        raise
    os.replace(part, path)
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
) -> str:
    """Fetch into ``part`` (resuming a partial file), trying each URL with retries."""
    failures: list[str] = []
    for url in urls:
        for attempt in range(retries + 1):
            try:
                _transfer(url, part, desc=part.with_suffix("").name, progress=progress, timeout=timeout)
                return url
            except urllib.error.HTTPError as exc:
                failures.append(f"{url}: HTTP {exc.code} {exc.reason}")
                if exc.code == 416:  # a stale partial file the server cannot resume
                    part.unlink(missing_ok=True)
                elif exc.code < 500 and exc.code != 429:
                    break  # not found, forbidden...: retrying will not help
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                failures.append(f"{url}: {_reason(exc)}")
            if attempt < retries:
                time.sleep(backoff * 2**attempt)
    part.unlink(missing_ok=True)
    last = failures[-1] if failures else "no URL"
    raise DownloadError(
        f"cannot download {name} from {urls[0] if urls else '(no URL)'} ({last}; {len(failures)} attempts); "
        f"{otherwise}, or put it at {part.with_suffix('')}"
    )


class _Truncated(OSError):
    pass


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return str(exc.reason)
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed after {len(exc.partial)} more bytes, {exc.expected} missing"
    return str(exc) or type(exc).__name__


def _transfer(url: str, part: Path, *, desc: str, progress: bool, timeout: float) -> None:
    """One request: append to ``part`` from its current size (HTTP Range) or start over."""
    from tqdm import tqdm

    offset = part.stat().st_size if part.is_file() else 0
    scheme = urllib.parse.urlparse(url).scheme
    headers = {"User-Agent": "temporal-shift (python urllib)"}
    if offset and scheme in ("http", "https"):
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        status = response.getcode()
        if offset and status != 206:
            offset = 0  # the server sends the whole file: start over
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None and length.isdigit() else None
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
                f.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Truncated(f"transfer stopped at {size} of {total} bytes")
