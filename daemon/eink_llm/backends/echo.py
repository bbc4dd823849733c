"""The offline backend: answers with a Markdown account of what it received.

Why it exists: a new user can try the whole loop (tablet → folder → daemon → PDF) before paying for or installing
a model, and tests can check what the pipeline handed to "the AI" by reading the answer PDF. It is deterministic
(same request, same answer) and never touches the network.
"""

from __future__ import annotations

from eink_llm.backends.base import BackendSettings, Capabilities, LLMRequest, LLMResponse, Usage

#: Rough tokens per page image, so recorded usage looks like a real vision model's (GPT-4o, high detail, a 3:4
#: page: 4 tiles x 170 + 85 = 765; see OpenAI's "Images and vision" guide).
TOKENS_PER_IMAGE = 765
CHARS_PER_TOKEN = 4
#: How much of the page text and of the previous answer are quoted back.
MAX_TEXT_CHARS = 600
MAX_TEXT_LINES = 12
MAX_PREVIOUS_CHARS = 200
TRANSCRIPTION_TAG = "<transcription>"


def estimate_tokens(text: str) -> int:
    """The usual rule of thumb: about four characters per token."""
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KB"
    return f"{count / (1024 * 1024):.1f} MB"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _shorten(text: str, max_chars: int, max_lines: int | None = None) -> str:
    """Keep the start of ``text``, cut at a word boundary, and say that it was cut."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    cut = False
    if max_lines is not None and len(lines) > max_lines:
        lines, cut = lines[:max_lines], True
    result = "\n".join(lines)
    if len(result) > max_chars:
        result = result[:max_chars]
        space = result.rfind(" ")
        if space > max_chars // 2:
            result = result[:space]
        cut = True
    return result.rstrip() + (" …" if cut else "")


def _quote(text: str) -> str:
    """A Markdown block quote that survives blank lines inside the text."""
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


class EchoBackend:
    """Answers every request with a description of it. Stateless, so trivially safe across threads."""

    name = "echo"
    #: Accepts anything a real provider might get, so trying echo first never hides a format problem.
    capabilities = Capabilities(media_types=("image/png", "image/jpeg", "image/webp"))

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings

    def close(self) -> None:
        pass

    def complete(self, request: LLMRequest) -> LLMResponse:
        text = self.describe(request)
        text_tokens = estimate_tokens(request.system_prompt) + estimate_tokens(request.text)
        text_tokens += sum(estimate_tokens(message.text) for message in request.history)
        usage = Usage(
            input_tokens=text_tokens + TOKENS_PER_IMAGE * len(request.pages), output_tokens=estimate_tokens(text)
        )
        return LLMResponse(text=text, usage=usage, model="echo")

    def describe(self, request: LLMRequest) -> str:
        out: list[str] = []
        if TRANSCRIPTION_TAG in request.system_prompt and request.text.strip():
            # Asked to transcribe: the text layer is all echo can "read" (handwriting needs a real model).
            out += [f"{TRANSCRIPTION_TAG}{_shorten(request.text, MAX_TEXT_CHARS, MAX_TEXT_LINES)}</transcription>", ""]
        out += ["# Echo: what the AI would have received", ""]
        out.append(
            "This answer comes from the offline *echo* backend: no AI was asked. Set `llm.backend` to `openai` "
            "(or another backend) for real answers."
        )
        out.append("")
        if request.source_name:
            name = request.source_name.replace("`", "'")
            out += [f"Source file: `{name}`", ""]

        if request.instruction:
            out += ["## Instruction", "", _quote(_shorten(request.instruction, MAX_TEXT_CHARS)), ""]
        out += ["## Pages", ""]
        if request.pages:
            total = sum(len(page.data) for page in request.pages)
            out += [f"{_plural(len(request.pages), 'page')}, {_size(total)} in all:", ""]
            for number, page in enumerate(request.pages, 1):
                out.append(f"{number}. {page.width} × {page.height} pixels, {page.media_type}, {_size(len(page.data))}")
        else:
            out.append("No page images.")
        out.append("")

        out += ["## Text on the pages", ""]
        if request.text.strip():
            shown = _shorten(request.text, MAX_TEXT_CHARS, MAX_TEXT_LINES)
            out += [f"{len(request.text.strip())} characters of text:", "", _quote(shown)]
        else:
            out.append("No text layer (handwriting only): a real model would read the images.")
        out.append("")

        out += ["## Conversation", ""]
        if request.history:
            out.append(f"{_plural(len(request.history), 'earlier turn')} of this conversation came along.")
            previous = next((m for m in reversed(request.history) if m.role == "assistant"), None)
            if previous is not None and previous.text.strip():
                out += ["", "The previous answer began:", "", _quote(_shorten(previous.text, MAX_PREVIOUS_CHARS, 4))]
        else:
            out.append("This is the first question of a new conversation (no history).")
        out.append("")

        out += ["## Settings", ""]
        first_line = next((line.strip() for line in request.system_prompt.splitlines() if line.strip()), "")
        if first_line:
            out += ["System prompt, first line:", "", _quote(_shorten(first_line, 300))]
        else:
            out.append("No system prompt.")
        options = request.options
        out += [
            "",
            f"Model asked for: {options.model or 'none'}; answer limit: {options.max_output_tokens} tokens; "
            f"temperature: {'default' if options.temperature is None else options.temperature}.",
        ]
        return "\n".join(out).rstrip() + "\n"


def create(settings: BackendSettings) -> EchoBackend:
    """The factory the registry calls."""
    return EchoBackend(settings)
