"""What the model read from the handwriting, kept apart from its answer.

The model is asked to begin its reply with a transcription between ``<transcription>`` tags. Tags, not JSON:
every chat model can emit them inside ordinary Markdown, streaming or not, and an answer never has to be
escaped. Models do not always obey, so :func:`split_reply` is lenient and never loses text:

* ``<transcription>…</transcription>`` anywhere (any case, also inside a code fence) → transcription + the rest;
* an opening tag that is never closed → the first paragraph after it is the transcription;
* a whole reply that is a JSON object with ``transcription`` and ``answer`` → both;
* a ``**Transcription:** …`` / ``You asked: …`` first paragraph → that paragraph;
* anything else → no transcription, the whole reply is the answer.

If taking the transcription out would leave no answer, the reply is kept whole as the answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

INSTRUCTION = (
    "Before answering, write out exactly what you read in the user's handwriting on the new pages (their "
    "question and any notes, in their language, without corrections), between <transcription> and "
    "</transcription>. Then give your answer after the closing tag. If a part is illegible, write [illegible] "
    "there. Do not mention these tags in your answer."
)

_TAGGED = re.compile(r"<\s*transcription\s*>(?P<text>.*?)<\s*/\s*transcription\s*>", re.IGNORECASE | re.DOTALL)
_OPEN_ONLY = re.compile(r"<\s*transcription\s*>\s*(?P<text>.*?)(?:\n\s*\n|$)(?P<rest>.*)", re.IGNORECASE | re.DOTALL)
_LABELLED = re.compile(
    r"^\s*(?:\*\*|__)?(?:transcription|you asked)\s*:?\s*(?:\*\*|__)?\s*:?\s*(?P<text>.+?)(?:\n\s*\n)(?P<rest>.*)",
    re.IGNORECASE | re.DOTALL,
)
_EMPTY_FENCE = re.compile(r"```[a-z]*\s*```", re.IGNORECASE)
MAX_TRANSCRIPTION = 20_000


@dataclass(frozen=True, slots=True)
class Reply:
    answer: str
    transcription: str | None = None


def split_reply(text: str) -> Reply:
    """The model's reply → its answer and what it read (see the module docstring for the rules)."""
    for parse in (_from_json, _from_tags, _from_open_tag, _from_label):
        found = parse(text)
        if found is not None:
            transcription, answer = found
            transcription = _clean(transcription)
            answer = answer.strip()
            if answer:
                return Reply(answer, transcription[:MAX_TRANSCRIPTION] or None)
            return Reply(text.strip())
    return Reply(text.strip())


def _from_tags(text: str) -> tuple[str, str] | None:
    match = _TAGGED.search(text)
    if match is None:
        return None
    rest = text[: match.start()] + text[match.end() :]
    return match.group("text"), _EMPTY_FENCE.sub("", rest)


def _from_open_tag(text: str) -> tuple[str, str] | None:
    match = _OPEN_ONLY.search(text)
    if match is None:
        return None
    return match.group("text"), text[: match.start()] + match.group("rest")


def _from_label(text: str) -> tuple[str, str] | None:
    match = _LABELLED.match(text)
    if match is None:
        return None
    return match.group("text"), match.group("rest")


def _from_json(text: str) -> tuple[str, str] | None:
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = re.sub(r"^```[a-z]*\s*|\s*```$", "", stripped, flags=re.IGNORECASE)
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return None
    try:
        data = json.loads(stripped)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("answer"), str):
        return None
    transcription = data.get("transcription")
    return (transcription if isinstance(transcription, str) else ""), data["answer"]


def _clean(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().strip("`").strip().splitlines()]
    return "\n".join(lines).strip()
