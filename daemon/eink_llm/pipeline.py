"""The order of the stages, for one queued input. Read this top-down:

    read input → resolve conversation → build context → LLM hook → render PDF → atomic write → record exchange
    (→ refresh the conversation's rolling summary, when it has outgrown the context budget)

Resolving the conversation also decides what of the input is the question: a notebook re-exported with one
new page, or an answer of ours come back with handwriting on it, sends only what is new (resolve.py). An input
with nothing new on it is finished without an answer: a page is never answered twice.

Every failure ends as an ERROR_ PDF in the same folder, recorded as that exchange with status ``error`` —
except a transient backend failure with attempts left, which puts the job back in the queue for later.

Crash safety comes from where each step commits (see docs/architecture.md):

1. The exchange number is reserved in the database *before* any work, tied to the job. A retried or
   crash-restarted job gets the same number back, so its output keeps its name and numbering has no gaps.
2. The output's hash is recorded *before* the file appears, so the watcher never mistakes it for a question.
3. The atomic rename puts the PDF in place; only then does one transaction mark the exchange and the job
   finished. A crash between 3 and that commit reruns the job, which overwrites the same file name.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import structlog

from eink_llm import delivery, naming, redact
from eink_llm.asking import Asker
from eink_llm.atomic import atomic_write, remove_if_unchanged
from eink_llm.backends.base import Backend, LLMResponse
from eink_llm.ceiling import Fitted
from eink_llm.config import Config, Profile, Profiles
from eink_llm.context import Context, build_context
from eink_llm.errors import (
    EinkError,
    InputChangedError,
    InputVanishedError,
    InterruptedTooOftenError,
    OutputError,
    UnexpectedError,
    UnreadableInputError,
)
from eink_llm.image_tokens import estimate_image_tokens
from eink_llm.reader import Decoder, InputDocument, read_input
from eink_llm.render import RenderMeta, get_device, render_answer, render_error
from eink_llm.resolve import Question, Resolution, Resolver
from eink_llm.retry import Breakers, CircuitBreaker, next_attempt, should_retry
from eink_llm.store import Exchange, ExchangeResult, Job, Store, utc_now
from eink_llm.transcript import split_reply

log = structlog.get_logger("eink_llm.pipeline")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one job: answered, failed with an ERROR_ PDF, or scheduled for another attempt."""

    job_id: int
    status: Literal["ok", "error", "retry", "skipped"]
    output: Path | None = None
    conversation_id: str | None = None
    exchange: int | None = None
    error: EinkError | None = None
    note: str | None = None  # why a skipped job needed no answer
    reopened: int | None = None  # ink on an ERROR_ page: the failed job it put back in the queue
    unwritten: bool = False  # recorded, but the folder did not take the PDF yet: kept, written later


class Pipeline:
    """Answers queued inputs. Safe to use from several worker threads at once."""

    def __init__(
        self,
        config: Config,
        store: Store,
        backends: Mapping[str, Backend],
        breakers: Breakers | None = None,
        *,
        decoder: Decoder | None = None,
    ) -> None:
        """``backends`` maps every profile name to its backend (see ``service.open_backends``). ``decoder`` is the
        reading cage (``reader.cage.Cage``) the service owns; without one, inputs are decoded in this process."""
        self.config = config
        self.decoder = decoder
        self.store = store
        self.backends = backends
        retry = config.retry
        self.breakers = breakers or Breakers(retry.outage_after_failures, retry.probe_interval_seconds)
        #: The reader's limits, with the text layer's budget (context.question_tokens) that it stops reading at.
        self.limits = dataclasses.replace(config.input.limits(), max_text_tokens=config.context.question_tokens)
        self.resolver = Resolver(config, store)
        #: Every profile's effective settings, merged and validated once (not per job).
        self.profiles = Profiles(config)
        for profile in self.profiles.values():  # fail at start, not on the first answer, for a bad page size
            get_device(profile.output.device)
        self.asker = Asker(config, store, backends, self.profiles, self.breakers)

    def run(self, job: Job) -> Outcome:
        started = time.monotonic()
        if not job.path.is_file():
            return self._vanished(job)

        profile = self.profiles.for_path(job.path)
        breaker = self.asker.breaker(profile)
        if breaker.is_open and not breaker.allow_claim():  # its AI service is down, and this is no probe
            return self._wait_for_service(job, breaker)

        failure: EinkError | None
        if job.attempts > self.config.retry.max_attempts:  # every earlier attempt ended the process itself
            document, failure = None, self._interrupted_too_often(job)
        else:
            document, failure = self._read(job)
        if isinstance(failure, InputChangedError):  # not what was queued: never answered with these bytes
            return self._changed(job, failure)
        resolution = self._resolve(job, document)
        if resolution.retry_job is not None:
            return self._retry_requested(job, resolution)
        if resolution.nothing_new:  # an unreadable file too, when an earlier ERROR_ page already answered it
            return self._nothing_new(job, resolution)
        exchange = self._reserve(job, document, resolution)
        response: LLMResponse | None = None
        fitted: Fitted | None = None
        context: Context | None = None
        transcription: str | None = None
        pdf: bytes | None = None
        if failure is None and document is not None:
            try:
                context = self._context(exchange, resolution.question_text(document))
                response, profile, fitted = self.asker.answer(profile, exchange, document, resolution, context)
                reply = split_reply(response.text) if self.config.context.transcribe else None
                answer, transcription = (reply.answer, reply.transcription) if reply else (response.text, None)
                note = _notes(resolution.note, _text_cut_note(document, resolution, fitted), fitted.note())
                pdf = render_answer(
                    answer,
                    self._meta(job, exchange, model=response.model, note=note, transcription=transcription),
                    device=profile.output.device,
                    font_size=profile.output.font_size,
                    reply_page=profile.output.reply_page,
                )
                response = LLMResponse(answer, response.usage, response.model)
            except EinkError as exc:
                failure = exc
            except Exception as exc:  # a bug must cost one ERROR_ PDF, not the daemon
                log.exception("unexpected error", job=job.job_id)
                failure = UnexpectedError(
                    "The daemon hit an unexpected problem while answering.",
                    "Try again by exporting the page once more; if it keeps happening, report it with the log.",
                    detail=f"{type(exc).__name__}: {exc}",
                )
            if failure is not None and failure.retryable and breaker.is_open:
                return self._retry_later(job, exchange, failure, counts=False)
            if failure is not None and should_retry(failure, job.attempts, self.config.retry.policy()):
                return self._retry_later(job, exchange, failure)

        kind: naming.OutputKind = "RESPONSE" if failure is None else "ERROR"
        if failure is not None:
            pdf = self._error_pdf(job, exchange, failure, profile, note=resolution.note)
        assert pdf is not None
        unwritten = None
        try:
            output = self._write(job, kind, pdf, exchange)
        except OutputError as exc:  # a paid answer is never lost: kept, and written when the folder takes it
            output = job.path.parent / naming.output_name(
                kind, exchange.conversation_id, exchange.sequence_number, job.path.stem
            )
            unwritten = (pdf, delivery.retry_at(1), exc.user_message())
            log.warning(
                "the answer could not be written; it is kept and will be written as soon as the folder allows",
                input=str(job.path),
                output=output.name,
                error=exc.user_message(),
                detail=exc.detail,
            )
        result = ExchangeResult(
            status="ok" if failure is None else "error",
            output_file=output,
            question_text=(resolution.question_text(document).strip() or None) if document else None,
            response_text=response.text if response else None,
            error_text=failure.user_message() if failure else None,
            transcription=transcription,
            backend=profile.llm.backend,
            model=response.model if response else profile.llm.model,
            input_tokens=response.usage.input_tokens if response else 0,
            output_tokens=response.usage.output_tokens if response else 0,
            processing_time=round(time.monotonic() - started, 3),
            profile=profile.name,
            cost=profile.budget.cost(response.usage.input_tokens, response.usage.output_tokens) if response else 0.0,
            metadata=self._metadata(document, failure, fitted, self.backends.get(profile.name), resolution, context),
        )
        self.store.complete_exchange(exchange, result, resolution.prints, unwritten=unwritten)
        # An answer is news (info); an ERROR_ is a warning when the page was at fault, else an error (ours or
        # the AI service's), so `logging.level: warning` still shows every page that got an ERROR_.
        level = "info" if failure is None else "warning" if failure.input_fault else "error"
        log.log(
            getattr(logging, level.upper()),
            "exchange",
            conversation=exchange.conversation_id,
            exchange=exchange.sequence_number,
            input=str(job.path),
            output=output.name,
            status=result.status,
            joined=resolution.how,
            duration_s=result.processing_time,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            attempts=job.attempts,
            **({"error": failure.user_message(), "detail": failure.detail} if failure else {}),
        )
        if failure is None:
            self._replace_error_page(job, exchange, output)
            self._refresh_summary(exchange, profile)
        return Outcome(
            job.job_id,
            result.status,
            output,
            exchange.conversation_id,
            exchange.sequence_number,
            failure,
            unwritten=unwritten is not None,
        )

    # --- stages, in order --------------------------------------------------------------------------

    def _read(self, job: Job) -> tuple[InputDocument | None, EinkError | None]:
        try:
            return read_input(job.path, self.limits, self.decoder, root=job.root, sha256=job.sha256), None
        except EinkError as exc:
            return None, exc
        except Exception as exc:  # the reader converts what it knows; anything else is still the input's fault
            return None, UnreadableInputError(
                f"The file {job.path.name} could not be read.",
                "Export the page again as PDF or PNG.",
                detail=f"{type(exc).__name__}: {exc}",
            )

    def _resolve(self, job: Job, document: InputDocument | None) -> Resolution:
        """Which conversation, and what of the input is new (resolve.py). If comparing pages fails, the whole
        input is sent: better a question answered in full than a page lost."""
        try:
            return self.resolver.resolve(job, document)
        except Exception:
            log.exception("could not tell what is new; sending the whole input", input=str(job.path))
            return self.resolver.fallback(job, document)

    def _refresh_summary(self, exchange: Exchange, profile: Profile) -> None:
        """After the answer is recorded for good: nothing here may fail the job (it is done, and a job put back
        would be answered twice), so any failure is only logged."""
        try:
            self.asker.refresh_summary(exchange, profile)
        except Exception:
            log.exception("could not update the conversation summary", conversation=exchange.conversation_id)

    def _replace_error_page(self, job: Job, exchange: Exchange, output: Path) -> None:
        """A retry answered: the ERROR_ page of the earlier attempt goes, if it is still as we wrote it."""
        previous = exchange.output_file
        if not previous or previous == output.name or not previous.startswith("ERROR_"):
            return
        page = job.path.parent / previous
        digest = self.store.output_digest(page)
        if digest and remove_if_unchanged(page, digest, root=job.root):
            log.info("the answer replaces the error page", removed=previous, output=output.name)

    def _retry_requested(self, job: Job, resolution: Resolution) -> Outcome:
        """Ink on one of our ERROR_ pages: try its input again, and finish this file (the page itself)."""
        assert resolution.retry_job is not None
        reopened = self.store.reopen_job(resolution.retry_job)
        note = "ink on an error page: its page is tried again" if reopened else "ink on an error page"
        self.store.finish_job(job.job_id, note)
        log.info(
            "retrying a failed page on request", error_page=str(job.path), job=resolution.retry_job, reopened=reopened
        )
        return Outcome(
            job.job_id,
            "skipped",
            conversation_id=resolution.conversation_id,
            note=note,
            reopened=resolution.retry_job if reopened else None,
        )

    def _nothing_new(self, job: Job, resolution: Resolution) -> Outcome:
        note = resolution.why_nothing_new
        self.store.finish_job(job.job_id, note, resolution.prints)
        log.info("not answering this file", input=str(job.path), why=note)
        return Outcome(job.job_id, "skipped", conversation_id=resolution.conversation_id, note=note)

    def _reserve(self, job: Job, document: InputDocument | None, resolution: Resolution) -> Exchange:
        """The exchange number, reserved before any work (``reserve_exchange`` gives a retry the one of its
        first attempt, whatever the arguments)."""
        is_new = resolution.conversation_id is None
        conversation_id = resolution.conversation_id or naming.new_conversation_id()
        return self.store.reserve_exchange(
            job,
            conversation_id=conversation_id,
            new_conversation=is_new,
            input_type=document.kind if document else job.path.suffix.lower().lstrip(".") or None,
            folder=resolution.folder if is_new else None,
        )

    def _context(self, exchange: Exchange, question_text: str) -> Context:
        conversation = self.store.get_conversation(exchange.conversation_id)
        settings = self.config.context
        return build_context(
            self.store,
            conversation,
            exchange.sequence_number,
            question_text,
            settings.history_tokens,
            memory=settings.memory,
        )

    def _write(self, job: Job, kind: naming.OutputKind, pdf: bytes, exchange: Exchange) -> Path:
        """Into the input's folder, reached from the watched root without following links (atomic.py). A name
        the file system refuses as too long (a smaller NAME_MAX than the 255 bytes names are capped for) is
        written under a shortened stem instead: the page still gets its answer or ERROR_."""
        keep = pdf if self.config.storage.keep_answer_pdfs_days else None  # to compare with when it comes back
        for max_bytes in (naming.MAX_STEM_BYTES, naming.SHORT_STEM_BYTES):
            name = naming.output_name(
                kind, exchange.conversation_id, exchange.sequence_number, job.path.stem, max_bytes=max_bytes
            )
            output = job.path.parent / name
            self.store.record_output(output, _sha256(pdf), exchange.exchange_id, keep)
            try:
                atomic_write(output, pdf, root=job.root)
            except OutputError as exc:
                if exc.errno != errno.ENAMETOOLONG or max_bytes == naming.SHORT_STEM_BYTES:
                    raise
                log.warning("output name too long for this file system; using a shorter one", output=name)
                continue
            return output
        raise AssertionError("unreachable")

    # --- failures --------------------------------------------------------------------------------------

    def _retry_later(self, job: Job, exchange: Exchange, failure: EinkError, *, counts: bool = True) -> Outcome:
        """Back to the queue. ``counts=False`` (during an outage) gives the attempt back."""
        now = utc_now()
        at = next_attempt(failure, job.attempts, self.config.retry.policy(), now)
        self.store.retry_later(job.job_id, at=at, error=str(failure), refund_attempt=not counts)
        log.warning(
            "will retry",
            outage=not counts,
            input=str(job.path),
            attempt=job.attempts,
            retry_at=at.isoformat(),
            error=failure.user_message(),
            detail=failure.detail,
        )
        return Outcome(job.job_id, "retry", None, exchange.conversation_id, exchange.sequence_number, failure)

    def _wait_for_service(self, job: Job, breaker: CircuitBreaker) -> Outcome:
        """Back to the queue until the service's next probe, untouched and without using up an attempt."""
        at = utc_now() + timedelta(seconds=max(breaker.seconds_to_probe(), 0.05))
        self.store.retry_later(job.job_id, at=at, error="waiting: the AI service is down", refund_attempt=True)
        return Outcome(job.job_id, "retry")

    def _changed(self, job: Job, failure: InputChangedError) -> Outcome:
        """The path no longer holds what was queued (other bytes, or a link now): this job ends unanswered. A
        changed file is queued again by the watcher when it settles (a new job for its new hash); a link is
        never followed, as the watcher never queues one."""
        self.store.fail_job(job.job_id, failure.user_message())
        log.warning(
            "input changed after it was queued; not answered under this job",
            input=str(job.path),
            why=failure.what,
            detail=failure.detail,
        )
        return Outcome(job.job_id, "skipped", error=failure)

    def _interrupted_too_often(self, job: Job) -> EinkError:
        """Attempts are counted when a job is claimed, so one that was claimed more than ``max_attempts`` times
        without ending (in an answer, an ERROR_ or a scheduled retry) took the daemon down with it each time
        (killed for using too much memory, a crash in a library). It is not tried again: the next restart would
        end the same way, for ever."""
        log.error(
            "giving up on a file that stopped the daemon every time it was tried",
            input=str(job.path),
            attempts=job.attempts - 1,
            last_error=job.last_error,
        )
        return InterruptedTooOftenError(
            f"{job.path.name} could not be processed: eink-llm stopped or failed while working on it "
            f"{job.attempts - 1} times in a row (for example it ran out of memory), so it was not tried again.",
            "Export the page again with fewer pages, at a lower resolution or as PNG, and drop it in again. "
            "If it keeps happening, report it with the daemon's log.",
            detail=job.last_error,
        )

    def _vanished(self, job: Job) -> Outcome:
        failure = InputVanishedError(
            f"{job.path.name} was removed before it could be answered.",
            "Export the page again if you still want an answer.",
        )
        self.store.fail_job(job.job_id, failure.user_message())
        log.warning("input vanished", input=str(job.path))
        return Outcome(job.job_id, "skipped", error=failure)

    def _error_pdf(
        self, job: Job, exchange: Exchange, failure: EinkError, profile: Profile, *, note: str | None = None
    ) -> bytes:
        todo = failure.todo
        if failure.input_fault:
            todo += " Sending this same file again will not help: change the page, or export it differently."
        else:
            todo += " This was not your page's fault: sending the same file again (or `eink-llm retry`) tries again."
        return render_error(  # the tablet is an exit: a plugin's exception or a provider's message may quote a key
            self._meta(job, exchange, model=profile.llm.model or "", note=note),
            title=redact.text(failure.title),
            what=redact.text(failure.what),
            todo=redact.text(todo.strip()),
            detail=redact.optional(failure.detail),
            device=profile.output.device,
            font_size=profile.output.font_size,
            retry_box=not failure.input_fault,
        )

    def _meta(
        self,
        job: Job,
        exchange: Exchange,
        *,
        model: str,
        note: str | None = None,
        transcription: str | None = None,
    ) -> RenderMeta:
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

    @staticmethod
    def _metadata(
        document: InputDocument | None,
        failure: EinkError | None,
        fitted: Fitted | None,
        backend: Backend | None,
        resolution: Resolution,
        context: Context | None,
    ) -> dict[str, Any]:
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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _text_cut_note(document: InputDocument, resolution: Resolution, fitted: Fitted) -> str | None:
    """Says the typed text was cut, when it was and what was left of it was sent (not left out to fit)."""
    if document.text_cut is None or not resolution.question_text(document) or fitted.dropped_text:
        return None
    return document.text_cut.note()


def _notes(*notes: str | None) -> str | None:
    """The notes at the top of an answer, one per line."""
    return "\n".join(note for note in notes if note) or None
