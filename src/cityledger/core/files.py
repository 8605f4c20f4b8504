"""Files that hold secrets: written owner-only and replaced atomically."""

import os
import tempfile
from pathlib import Path

SECRET_FILE_MODE = 0o600


def write_secret_file(path: Path | str, data: bytes | str) -> None:
    """Replace `path` with `data`, readable by the owner only at every moment; a crash leaves old or new."""
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else bytes(data)
    # mkstemp opens with O_CREAT|O_EXCL and mode 0600 under a fresh name, so the secret never lands
    # in a file someone else created or could open; fchmod makes the mode exact whatever the umask.
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, SECRET_FILE_MODE)
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        # The rename swaps in the new inode, so an existing file's wider mode goes with the old one.
        os.replace(temp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Make a rename or a new file's name in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
