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
#: The stem of an output name is capped in characters (legible on a tablet) and in UTF-8 bytes, so that the
#: longest name (``RESPONSE_<id>_ex999999_<stem>.pdf``, 212 bytes) and its temp name (22 bytes more, see
#: ``atomic.TEMP_OVERHEAD``) fit the 255 bytes of NAME_MAX. A test checks the arithmetic.
MAX_STEM = 60
MAX_STEM_BYTES = 160
#: The stem used when even a capped name cannot be written (a file system with a smaller NAME_MAX, such as
#: eCryptfs with 143 bytes): the answer still goes out, under a shortened name.
SHORT_STEM_BYTES = 24
OutputKind = Literal["RESPONSE", "ERROR"]

# Characters that are unsafe in file names on some platform a sync client may carry the file to.
# Lone surrogates stand for bytes of a name that are not UTF-8 (Python's surrogateescape): not kept either.
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f\ud800-\udfff]+')
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


def sanitize_stem(stem: str, max_length: int = MAX_STEM, max_bytes: int = MAX_STEM_BYTES) -> str:
    """A file-name-safe, length-capped version of the input's stem.

    Path separators and control characters are removed, Unicode is normalised (NFC) and kept (tablets name
    notebooks in every language), and a follow-up of one of our answers drops the repeated prefix so names
    do not grow with every exchange. The result has at most ``max_length`` characters and ``max_bytes`` bytes
    in UTF-8, cut between characters and, for the common cases, between graphemes (an accent, a skin tone or
    a joined emoji stays with its base; a flag's two letters stay together).
    """
    stem = unicodedata.normalize("NFC", stem)
    stem = _OUR_PREFIX.sub("", stem)
    stem = CONVERSATION_ID.sub("", stem)
    stem = _UNSAFE.sub("_", stem)
    stem = _SPACES.sub(" ", stem).strip(" ._-")
    if len(stem) > max_length:
        stem = _cut(stem, max_length).rstrip(" ._-")
    if len(stem.encode("utf-8")) > max_bytes:
        stem = _cut(stem, len(stem.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore"))).rstrip(" ._-")
    return stem or "page"


def _cut(text: str, length: int) -> str:
    """``text[:length]``, moved back so as not to split a grapheme (cheaply: marks, joiners, variation
    selectors, skin tones, tags and flag pairs; not every rule of UAX #29)."""
    n = length
    while 0 < n < len(text) and (_extends(text[n]) or text[n - 1] == "\u200d"):
        n -= 1
    if 0 < n < len(text) and _regional(text[n]):
        run = 0
        while run < n and _regional(text[n - 1 - run]):
            run += 1
        n -= run % 2  # an odd run before the cut: its last letter belongs with text[n]
    return text[:n]


def _extends(char: str) -> bool:
    """Whether ``char`` belongs to the grapheme before it."""
    code = ord(char)
    return (
        unicodedata.category(char).startswith("M")
        or code == 0x200D
        or 0xFE00 <= code <= 0xFE0F
        or 0xE0100 <= code <= 0xE01EF
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
    )


def _regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def output_name(
    kind: OutputKind, conversation_id: str, exchange: int, input_stem: str, *, max_bytes: int = MAX_STEM_BYTES
) -> str:
    """``RESPONSE_{conversation}_ex{NNN}_{stem}.pdf`` (or ``ERROR_…``); ``max_bytes`` caps the stem (pass
    :data:`SHORT_STEM_BYTES` for the shortened name)."""
    return f"{kind}_{conversation_id}_ex{exchange:03d}_{sanitize_stem(input_stem, max_bytes=max_bytes)}.pdf"


def answer_name_pattern(input_stem: str) -> re.Pattern[str]:
    """The names of our answers and error pages to an input with this stem, in any conversation and exchange."""
    stem = re.escape(sanitize_stem(input_stem))
    return re.compile(rf"(?:RESPONSE|ERROR)_{CONVERSATION_ID.pattern}_ex\d{{3,}}_{stem}\.pdf")
