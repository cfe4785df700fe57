"""What a user sees when an event handler fails: a generic message with an
error id, never the exception's text; the detail goes to the log under that id."""

import logging
import secrets

from reflex_base.event import EventSpec
from reflex_components_sonner.toast import toast

log = logging.getLogger("chatdash.errors")


def backend_exception_handler(exception: Exception) -> EventSpec:
    error_id = secrets.token_hex(4)
    log.error("error %s in an event handler", error_id, exc_info=exception)
    return toast(
        "Something went wrong.",
        level="error",
        fallback_to_alert=True,
        description=f"Please try again. If it keeps happening, tell us error id {error_id}.",
        position="top-center",
    )
