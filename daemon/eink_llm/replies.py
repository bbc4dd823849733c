"""What one job replies with: an answer or an ERROR_ page, and what is recorded with it.

The pipeline's answer step builds a :class:`Reply`, its deliver step writes the PDF and records the exchange
(pipeline.py keeps that order). Here are the pieces both use: the header every PDF of ours carries (its title, id
and input's SHA-256), the notes at the top of an answer, the ERROR_ page, and the exchange's row and metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from eink_llm import naming, redact
from eink_llm.backends.base import Backend, LLMResponse
from eink_llm.ceiling import Fitted
from eink_llm.config import Profile
from eink_llm.context import Context
from eink_llm.errors import EinkError
from eink_llm.image_tokens import estimate_image_tokens
from eink_llm.reader import InputDocument
from eink_llm.render import RenderMeta, render_error
from eink_llm.resolve import Question, Resolution
from eink_llm.store import Exchange, ExchangeResult, Job


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """One job's reply as it is made: what was read and resolved, what was asked and got, and the PDF to write (the
    answer, or the ERROR_ page of ``failure``). A failure keeps what came before it: a response already paid for
    is recorded with the ERROR_ page that replaces its answer."""

    job: Job
    exchange: Exchange
    document: InputDocument | None  # None: the input could not be read (``failure`` says why)
    resolution: Resolution
    #: The profile that answered (the folder's, or one of its fallbacks); the folder's while none has.
    profile: Profile
    failure: EinkError | None = None
    context: Context | None = None
    #: What the model said; once rendered, without the transcription (that is kept in ``transcription``).
    response: LLMResponse | None = None
    fitted: Fitted | None = None  # the request as sent
    transcription: str | None = None
    pdf: bytes | None = None  # None until rendered

    @property
    def kind(self) -> naming.OutputKind:
        return "RESPONSE" if self.failure is None else "ERROR"

    def meta(self, *, model: str, note: str | None = None, transcription: str | None = None) -> RenderMeta:
        """The header of the PDF: shown at the top of its pages, and written into its metadata."""
        job, exchange = self.job, self.exchange
        return RenderMeta(
            # The notebook's name, never the name of the answer it came back as (RESPONSE_…_ex001_Notebook).
            title=naming.sanitize_stem(job.path.stem) or job.path.stem,
            conversation_id=exchange.conversation_id,
            exchange=exchange.sequence_number,
            created_at=datetime.fromisoformat(exchange.created_at),
            model=model,
            transcription=transcription,
            note=note,
            input_sha256=job.sha256,
        )

    def answer_note(self, fitted: Fitted) -> str | None:
        """The notes at the top of an answer, one per line: why the conversation was not continued, that the typed
        text was cut, what was left out of the request to fit."""
        assert self.document is not None
        return _notes(self.resolution.note, _text_cut_note(self.document, self.resolution, fitted), fitted.note())

    def error_pdf(self) -> bytes:
        """The ERROR_ page of :attr:`failure`: what happened, what to do, and whether sending it again helps."""
        failure, profile = self.failure, self.profile
        assert failure is not None
        todo = failure.todo
        if failure.input_fault:
            todo += " Sending this same file again will not help: change the page, or export it differently."
        else:
            todo += " This was not your page's fault: sending the same file again (or `eink-llm retry`) tries again."
        return render_error(  # the tablet is an exit: a plugin's exception or a provider's message may quote a key
            self.meta(model=profile.llm.model or "", note=self.resolution.note),
            title=redact.text(failure.title),
            what=redact.text(failure.what),
            todo=redact.text(todo.strip()),
            detail=redact.optional(failure.detail),
            device=profile.output.device,
            font_size=profile.output.font_size,
            retry_box=not failure.input_fault,
        )

    def result(self, output: Path, processing_time: float, backend: Backend | None) -> ExchangeResult:
        """The exchange's row: ``backend`` is the answering profile's (for the image-token estimate)."""
        document, failure, response, profile = self.document, self.failure, self.response, self.profile
        return ExchangeResult(
            status="ok" if failure is None else "error",
            output_file=output,
            question_text=(self.resolution.question_text(document).strip() or None) if document else None,
            response_text=response.text if response else None,
            error_text=failure.user_message() if failure else None,
            transcription=self.transcription,
            backend=profile.llm.backend,
            model=response.model if response else profile.llm.model,
            input_tokens=response.usage.input_tokens if response else 0,
            output_tokens=response.usage.output_tokens if response else 0,
            processing_time=processing_time,
            profile=profile.name,
            cost=profile.budget.cost(response.usage.input_tokens, response.usage.output_tokens) if response else 0.0,
            metadata=self.metadata(backend),
            pages_known=failure is not None and failure.pages_known,
        )

    def metadata(self, backend: Backend | None) -> dict[str, Any]:
        """How the input was joined and sent, the context used, the request's size, the failure's type."""
        document, failure, fitted, resolution, context = (
            self.document,
            self.failure,
            self.fitted,
            self.resolution,
            self.context,
        )
        data: dict[str, Any] = {"joined": resolution.how}
        if resolution.question is Question.THESE_PAGES:
            data["sent_as"] = [f"{page.role}:{page.page_number}" for page in resolution.pages]
        if context is not None:
            data["context"] = {
                "tokens": context.tokens,
                "recent": list(context.recent),
                "relevant": list(context.relevant),
                "summary": context.summary_used,
            }
        if document is not None:
            data["pages"] = document.page_count
            if document.text or document.text_cut:
                data["text"] = (
                    document.text_cut.record()
                    if document.text_cut
                    else {"original_chars": len(document.text), "kept_chars": len(document.text)}
                )
        if fitted is not None:
            data["request"] = fitted.record()
        request = fitted.request if fitted is not None else None
        if request is not None and backend is not None:
            data["pages_sent"] = len(request.pages)
            data["page_bytes_sent"] = sum(len(p.data) for p in request.pages)
            data["image_tokens_estimated"] = sum(
                estimate_image_tokens(backend.capabilities, p.width, p.height) for p in request.pages
            )
        if failure is not None:
            data["error_type"] = type(failure).__name__
            data["input_fault"] = failure.input_fault
            if failure.detail:
                data["error_detail"] = failure.detail
        return data


def _text_cut_note(document: InputDocument, resolution: Resolution, fitted: Fitted) -> str | None:
    """Says the typed text was cut, when it was and what was left of it was sent (not left out to fit)."""
    if document.text_cut is None or not resolution.question_text(document) or fitted.dropped_text:
        return None
    return document.text_cut.note()


def _notes(*notes: str | None) -> str | None:
    """The notes at the top of an answer, one per line."""
    return "\n".join(note for note in notes if note) or None
