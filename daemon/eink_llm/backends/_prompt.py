"""What every chat backend says the same way: the words sent with the pages, and a well-formed history.

Providers differ in where the system prompt goes and how images are wrapped, not in what we ask; keeping the
words here means the answer to a page does not change in tone when the user switches backend.
"""

from __future__ import annotations

import json

from eink_llm.backends._http import TRY_LATER, HttpService, provider_message, strip_reasoning, truncate
from eink_llm.backends.base import LLMRequest, Message
from eink_llm.errors import BackendError

#: The text sent with the page images; the system prompt carries the real instructions.
INSTRUCTION = "Here is my question, handwritten on the attached page(s). Please answer it."
TEXT_LAYER_INTRO = "The pages also carry this typed or recognised text:"
CUT_OFF_NOTE = "*(The answer was cut short because it reached the length limit, llm.max_output_tokens.)*"
#: Stands in for the user's side when a history starts with an answer (providers want a user turn first).
EARLIER_CONVERSATION = "(Earlier in this conversation.)"


def require_model(request: LLMRequest, configured: str | None, provider: str, example: str) -> str:
    """The model to ask, or a permanent error saying how to set one.

    Checked per question, not at start-up, so the user gets an ERROR_ PDF that says what to fix.
    """
    model = (request.options.model or configured or "").strip()
    if not model:
        raise BackendError(
            f"No model is configured for the {provider} backend.",
            f"Set llm.model in the configuration, e.g. {example}.",
        )
    return model


def user_text(request: LLMRequest) -> str:
    """The text part of the current question: the instruction, plus the pages' text layer when there is one.

    A request with its own ``instruction`` (a follow-up written on an earlier answer, a summary to update)
    says that instead, followed by its text as it is.
    """
    if request.instruction:
        text = request.text.strip()
        return f"{request.instruction}\n\n{text}" if text else request.instruction
    if request.text.strip():
        return f"{INSTRUCTION}\n\n{TEXT_LAYER_INTRO}\n\n{request.text.strip()}"
    return INSTRUCTION


def alternating_history(history: tuple[Message, ...]) -> list[Message]:
    """``history`` as strictly alternating turns that start with the user and end with the assistant.

    Anthropic and Gemini reject (or silently mangle) two turns of the same role in a row and a conversation that
    opens with the model; the current question, a user turn, follows the result. Same-role neighbours are
    joined, an opening assistant turn gets a placeholder user turn before it, and a trailing user turn gets an
    empty-looking assistant reply after it, so no text is lost.
    """
    turns: list[Message] = []
    for message in history:
        if not message.text.strip():
            continue
        if turns and turns[-1].role == message.role:
            turns[-1] = Message(message.role, f"{turns[-1].text}\n\n{message.text}")
        else:
            turns.append(message)
    if turns and turns[0].role == "assistant":
        turns.insert(0, Message("user", EARLIER_CONVERSATION))
    if turns and turns[-1].role == "user":
        turns.append(Message("assistant", "…"))
    return turns


def dumps(value: object) -> str:
    """Compact JSON for error details (never raises on odd values)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def finish_answer(
    http: HttpService, raw: str, *, cut_off: bool, withheld: str | None, detail: str, fallback: str | None = None
) -> str:
    """The answer to show, from the model's raw text: reasoning stripped, a note if it was cut short.

    ``fallback`` stands in for an answer that is empty once reasoning is stripped (OpenAI's ``refusal``: the
    model's own words on why it will not answer are an answer to show). An answer that is still empty is an
    error: permanent when the length limit ate it (retrying spends the same tokens on the same thoughts) or the
    provider withheld it (``withheld`` names the reason); otherwise retryable, because an empty normal stop is what
    overloaded servers and flaky proxies produce.
    """
    text = strip_reasoning(raw) or (fallback or "").strip()
    if not text:
        if cut_off:
            raise http.error(
                "The model used up its whole length limit before writing any answer.",
                "Raise llm.max_output_tokens (reasoning models need room to think), then export the page again.",
                detail=f"{detail}, empty answer",
            )
        if withheld:
            raise http.error(
                f"{http.label} withheld the answer ({withheld}).",
                "Rephrase the question, then export the page again.",
                detail=detail,
            )
        raise http.error(f"{http.label} sent an empty answer.", TRY_LATER, detail=f"{detail}, empty", retryable=True)
    if cut_off:
        text = f"{text}\n\n{CUT_OFF_NOTE}"
    return text


def error_in_body(http: HttpService, data: dict[str, object]) -> BackendError | None:
    """Some proxies (OpenRouter, LiteLLM) report upstream failures inside a 200 response: retryable."""
    if "error" not in data:
        return None
    problem = provider_message(dumps(data))
    if not problem:
        return None
    return http.error(
        f"{http.label} reported a problem: “{truncate(problem, 300)}”",
        TRY_LATER,
        detail="HTTP 200 with an error body",
        retryable=True,
    )
