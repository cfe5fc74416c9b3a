"""Helpers shared by the tests."""

import subprocess
from pathlib import Path


def chain(error: BaseException) -> str:
    """Every message of an exception and its causes: MONAI wraps errors raised inside config expressions."""
    messages = []
    while error is not None:
        messages.append(str(error))
        error = error.__cause__
    return "\n".join(messages)


def checkout_mismatch(python, checkout) -> str | None:
    """None if ``python`` (run outside any checkout, as a script or a console command runs) imports the ``bundle``
    package of ``checkout``, else a sentence saying which one it imports: an editable install made in another clone
    or folder would have the subprocess tests test that code, not this checkout's."""
    found = subprocess.run([str(python), "-c", "import bundle; print(bundle.__file__)"], capture_output=True,
                           text=True, cwd="/")
    package = Path(checkout).resolve() / "bundle"
    if found.returncode == 0 and Path(found.stdout.strip()).resolve().parent == package:
        return None
    if found.returncode == 0:
        return f"{python} imports bundle from {found.stdout.strip()}, not from this checkout's {package}"
    return f"{python} cannot import bundle ({(found.stderr.strip().splitlines() or ['no message'])[-1]})"
