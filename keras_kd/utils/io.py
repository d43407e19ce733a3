"""Atomic file writes: a temporary file in the target folder, then rename."""

import contextlib
import os
import tempfile


def check_writable_folder(path, argument):
    """Raises a clear error unless `path`'s folder exists and is writable."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(
            f"The folder of `{argument}` does not exist. Received: "
            f"{argument}={str(path)!r} (missing folder {folder!r})"
        )
    if not os.access(folder, os.W_OK):
        raise PermissionError(
            f"The folder of `{argument}` is not writable. Received: "
            f"{argument}={str(path)!r}"
        )
    return folder


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it to `path` on success.

    Nothing is left behind when the body raises.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
    )
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; use the default
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_bytes_atomic(path, data):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return path


def write_text_atomic(path, text):
    return write_bytes_atomic(path, text.encode("utf-8"))
