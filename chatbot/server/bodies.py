"""The base of every JSON request body: text that is not valid Unicode is refused before a route runs.

JSON's ``"\\ud800"`` escape decodes to a Python ``str`` holding half of a surrogate pair, which no
database, log line or response can encode as UTF-8. Checked here, once, for every field of every
body (a message, an agent's note, a feedback comment, a login name, an OpenAI ``messages`` list), it
becomes a 422 ``invalid_text`` — the code ``clean_text`` gives message texts — instead of a 500
from deep inside the store. The WebSockets apply the same check to their frames (server/websocket.py).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator
from pydantic_core import PydanticCustomError

from chatbot.conversations.text import INVALID_UNICODE, lone_surrogate

INVALID_TEXT = "invalid_text"  # the pydantic error type; server/errors.py answers it with this code


class RequestBody(BaseModel):
    """A request body model; subclasses add their fields as usual."""

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        if lone_surrogate(data):
            raise PydanticCustomError(INVALID_TEXT, INVALID_UNICODE)
        return data
