"""Helpers shared by the tests."""


def chain(error: BaseException) -> str:
    """Every message of an exception and its causes: MONAI wraps errors raised inside config expressions."""
    messages = []
    while error is not None:
        messages.append(str(error))
        error = error.__cause__
    return "\n".join(messages)
