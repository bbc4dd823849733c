"""Names the daemon reads and writes: conversation ids and the RESPONSE_/ERROR_ file names.

A tablet user cannot type an id, so the id travels in file names: every answer is named
``RESPONSE_<conversation>_exNNN_<stem>.pdf``, and any later input whose name contains that id continues the
conversation (rename the file on the tablet, or export a page under a name that keeps the id).
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from datetime import UTC, datetime
from typing import Literal

#: Where an answer PDF carries its conversation and exchange besides its name (written by render/metadata.py,
#: read by reader/origin.py): custom Info dictionary keys, and our XMP namespace.
INFO_CONVERSATION = "EinkLLMConversation"
INFO_EXCHANGE = "EinkLLMExchange"
#: Also in the Info dictionary of an answer or error page: the SHA-256 of the input it answers, and the file's
#: own digest (eink_llm.fingerprint), so that without the database the input is known to be answered and the
#: answer, if unchanged, not to be a question.
INFO_INPUT = "EinkLLMInput"
INFO_DIGEST = "EinkLLMDigest"
#: What a PDF of ours is when it is no answer: ``status`` for the daemon's status page (never a question).
INFO_KIND = "EinkLLMKind"
KIND_STATUS = "status"
XMP_NAMESPACE = "https://github.com/eink-llm/ns/1.0/"

CONVERSATION_ID = re.compile(r"conv_\d{8}_\d{6}_[0-9a-f]{8}")
MAX_STEM = 60
OutputKind = Literal["RESPONSE", "ERROR"]

# Characters that are unsafe in file names on some platform a sync client may carry the file to.
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]+')
_SPACES = re.compile(r"\s+")
# A stem that already carries our prefix and an id: keep only what the user wrote after it.
_OUR_PREFIX = re.compile(r"(?:RESPONSE|ERROR)_conv_\d{8}_\d{6}_[0-9a-f]{8}_ex\d{3,}_?")


def new_conversation_id(now: datetime | None = None) -> str:
    """``conv_YYYYMMDD_HHMMSS_<8 hex>`` in UTC: sortable by time, unique by its random tail."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"conv_{moment:%Y%m%d_%H%M%S}_{secrets.token_hex(4)}"


def find_conversation_id(name: str) -> str | None:
    """The conversation id a file name carries, if any (the last one wins: a renamed answer may hold two)."""
    found = CONVERSATION_ID.findall(name)
    return found[-1] if found else None


_ANSWER_REF = re.compile(r"(conv_\d{8}_\d{6}_[0-9a-f]{8})_ex(\d{3,})")


def find_answer_ref(name: str) -> tuple[str, int] | None:
    """The (conversation, exchange) of one of our answers a file name comes from — ``RESPONSE_<id>_ex002_…``
    itself, or a copy or export that kept that part (``Copy of RESPONSE_…``, ``…_ex002_q (1).pdf``)."""
    found = _ANSWER_REF.findall(name)
    return (found[-1][0], int(found[-1][1])) if found else None


def sanitize_stem(stem: str, max_length: int = MAX_STEM) -> str:
    """A file-name-safe, length-capped version of the input's stem.

    Path separators and control characters are removed, Unicode is normalised (NFC) and kept (tablets name
    notebooks in every language), and a follow-up of one of our answers drops the repeated prefix so names
    do not grow with every exchange.
    """
    stem = unicodedata.normalize("NFC", stem)
    stem = _OUR_PREFIX.sub("", stem)
    stem = CONVERSATION_ID.sub("", stem)
    stem = _UNSAFE.sub("_", stem)
    stem = _SPACES.sub(" ", stem).strip(" ._-")
    if len(stem) > max_length:
        stem = stem[:max_length].rstrip(" ._-")
    return stem or "page"


def output_name(kind: OutputKind, conversation_id: str, exchange: int, input_stem: str) -> str:
    """``RESPONSE_{conversation}_ex{NNN}_{stem}.pdf`` (or ``ERROR_…``)."""
    return f"{kind}_{conversation_id}_ex{exchange:03d}_{sanitize_stem(input_stem)}.pdf"


def answer_name_pattern(input_stem: str) -> re.Pattern[str]:
    """The names of our answers and error pages to an input with this stem, in any conversation and exchange."""
    stem = re.escape(sanitize_stem(input_stem))
    return re.compile(rf"(?:RESPONSE|ERROR)_{CONVERSATION_ID.pattern}_ex\d{{3,}}_{stem}\.pdf")
