"""User-facing errors: one clear sentence, exit code 2, no traceback."""


class UserError(Exception):
    """Bad input from the user (config, data, weights). The CLI prints the message alone and exits 2.

    The message is one sentence that names the file/field and says what to do.
    """

    exit_code = 2


class SampleError(Exception):
    """A problem with one sample (unreadable image, malformed line). The sample is
    recorded with ``status`` and the message as its reason; the run goes on."""

    def __init__(self, message: str, status: str = "invalid_input"):
        super().__init__(message)
        self.status = status
