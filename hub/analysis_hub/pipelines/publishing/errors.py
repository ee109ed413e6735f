"""The one error a publishing request is refused with.

Contract: `SpecError` is a request the service refuses (HTTP 400); its message
names the field and what is allowed. Its own module, because both the pure
checks (`specs`) and the cron words they use (`cron_words`) raise it.
"""


class SpecError(ValueError):
    """A request the service refuses; the message names the field and what is allowed."""
