"""The order of the stages, for one queued input. Read this top-down:

    read input → resolve conversation → build context → LLM hook → render PDF → atomic write → record exchange
    (→ refresh the conversation's rolling summary, when it has outgrown the context budget)

in two steps: :meth:`Pipeline._answer` makes the reply (up to the rendered PDF, an answer or an ERROR_ page:
replies.py), :meth:`Pipeline._deliver` writes it and records the exchange.

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

import errno
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import structlog

from eink_llm import delivery, naming
from eink_llm.asking import Asker
from eink_llm.atomic import atomic_write, remove_if_unchanged
from eink_llm.backends.base import Backend, LLMResponse
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
from eink_llm.page_sieve import PrintSieve
from eink_llm.reader import Decoder, InputDocument, read_input
from eink_llm.render import get_device, render_answer
from eink_llm.replies import Reply
from eink_llm.resolve import KnownVersion, Resolution, Resolver
from eink_llm.retry import Breakers, CircuitBreaker, next_attempt, should_retry
from eink_llm.store import Exchange, Job, utc_now
from eink_llm.store.ports import PipelineStore
from eink_llm.transcript import split_reply

log = structlog.get_logger("eink_llm.pipeline")


@dataclass(frozen=True, slots=True, kw_only=True)
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
        store: PipelineStore,
        backends: Mapping[str, Backend],
        breakers: Breakers | None = None,
        *,
        decoder: Decoder | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """``backends`` maps every profile name to its backend (see ``service.open_backends``). ``decoder`` is the
        reading cage (``reader.cage.Cage``) the service owns; without one, inputs are decoded in this process.
        ``clock`` tells the time for budgets (which day and month a question counts in) and retries."""
        self.config = config
        self.clock = clock
        self.decoder = decoder
        self.store = store
        self.backends = backends
        retry = config.retry
        self.breakers = breakers or Breakers(retry.outage_after_failures, retry.probe_interval_seconds)
        #: The reader's limits, with the text layer's budget (context.question_tokens) that it stops reading at.
        self.limits = replace(config.input.limits(), max_text_tokens=config.context.question_tokens)
        self.resolver = Resolver(config, store)
        #: Every profile's effective settings, merged and validated once (not per job).
        self.profiles = Profiles(config)
        for profile in self.profiles.values():  # fail at start, not on the first answer, for a bad page size
            get_device(profile.output.device)
        self.asker = Asker(config, store, backends, self.profiles, self.breakers, clock=clock)

    def run(self, job: Job) -> Outcome:
        """One job, in the order of the module docstring: answer it, then deliver the answer (or ERROR_ page)."""
        started = time.monotonic()
        reply = self._answer(job)
        if isinstance(reply, Outcome):  # done without a page to write, or back in the queue
            return reply
        return self._deliver(reply, started)

    # --- the two steps ---------------------------------------------------------------------------------

    def _answer(self, job: Job) -> Reply | Outcome:
        """read input → resolve conversation → build context → LLM hook → render PDF: the answer, or the ERROR_
        page of what failed. An :class:`Outcome` instead when the job ends here: its file is gone or changed, it
        needs no answer, its AI service is down, or a failure worth another attempt puts it back in the queue."""
        if not job.path.is_file():
            return self._vanished(job)
        profile = self.profiles.for_path(job.path)
        breaker = self.asker.breaker(profile)
        if breaker.is_open and not breaker.allow_claim():  # its AI service is down, and this is no probe
            return self._wait_for_service(job, breaker)
        known = self.resolver.known_version(job)  # a notebook is read against its last answered version
        document, failure = self._read(job, known)
        if isinstance(failure, InputChangedError):  # not what was queued: never answered with these bytes
            return self._changed(job, failure)
        resolution = self._resolve(job, document, known)
        if resolution.retry_job is not None:
            return self._retry_requested(job, resolution)
        if resolution.nothing_new:  # an unreadable file too, when an earlier ERROR_ page already answered it
            return self._nothing_new(job, resolution)
        exchange = self._reserve(job, document, resolution)
        failure = failure or resolution.refusal  # too many new pages for one question: an ERROR_, prints kept
        reply = Reply(
            job=job, exchange=exchange, document=document, resolution=resolution, profile=profile, failure=failure
        )
        if failure is None and document is not None:
            reply = self._ask(reply, document)
            if reply.failure is not None and reply.failure.retryable and breaker.is_open:
                return self._retry_later(job, exchange, reply.failure, counts=False)
            if reply.failure is not None and should_retry(reply.failure, job.attempts, self.config.retry.policy()):
                return self._retry_later(job, exchange, reply.failure)
        if reply.failure is not None:
            reply = replace(reply, pdf=reply.error_pdf())
        return reply

    def _deliver(self, reply: Reply, started: float) -> Outcome:
        """atomic write → record exchange; then, for an answer, the ERROR_ page of an earlier attempt goes and the
        conversation's summary is refreshed. A folder that refuses the PDF costs no answer: it is recorded and
        kept, and written later (delivery.py)."""
        job, exchange, failure, profile = reply.job, reply.exchange, reply.failure, reply.profile
        assert reply.pdf is not None
        unwritten = None
        try:
            output = self._write(job, reply.kind, reply.pdf, exchange)
        except OutputError as exc:  # a paid answer is never lost: kept, and written when the folder takes it
            output = job.path.parent / naming.output_name(
                reply.kind, exchange.conversation_id, exchange.sequence_number, job.path.stem
            )
            unwritten = (reply.pdf, delivery.retry_at(1), exc.user_message())
            log.warning(
                "the answer could not be written; it is kept and will be written as soon as the folder allows",
                input=str(job.path),
                output=output.name,
                error=exc.user_message(),
                detail=exc.detail,
            )
        result = reply.result(output, round(time.monotonic() - started, 3), self.backends.get(profile.name))
        self.store.complete_exchange(exchange, result, reply.resolution.prints, unwritten=unwritten)
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
            joined=reply.resolution.how,
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
            job_id=job.job_id,
            status=result.status,
            output=output,
            conversation_id=exchange.conversation_id,
            exchange=exchange.sequence_number,
            error=failure,
            unwritten=unwritten is not None,
        )

    # --- stages, in order --------------------------------------------------------------------------

    def _read(self, job: Job, known: KnownVersion | None) -> tuple[InputDocument | None, EinkError | None]:
        """The document, or why it cannot be had: unreadable, changed since it was queued, or never read again
        because every earlier attempt ended the process itself. A native notebook is read through a sieve of
        ``known``'s prints: only its pages not answered before are carried as images (page_sieve.py)."""
        if job.attempts > self.config.retry.max_attempts:
            return None, self._interrupted_too_often(job)
        sieve = PrintSieve(known.prints if known is not None else (), self.limits.max_pages)
        try:
            return read_input(job.path, self.limits, self.decoder, root=job.root, sha256=job.sha256, sieve=sieve), None
        except EinkError as exc:
            return None, exc
        except Exception as exc:  # the reader converts what it knows; anything else is still the input's fault
            return None, UnreadableInputError(
                f"The file {job.path.name} could not be read.",
                "Export the page again as PDF or PNG.",
                detail=f"{type(exc).__name__}: {exc}",
            )

    def _resolve(self, job: Job, document: InputDocument | None, known: KnownVersion | None) -> Resolution:
        """Which conversation, and what of the input is new (resolve.py). If comparing pages fails, the whole
        input is sent: better a question answered in full than a page lost."""
        try:
            return self.resolver.resolve(job, document, known)
        except Exception:
            log.exception("could not tell what is new; sending the whole input", input=str(job.path))
            return self.resolver.fallback(job, document)

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

    def _ask(self, reply: Reply, document: InputDocument) -> Reply:
        """build context → LLM hook → render PDF. A failure on the way is kept in the reply, with what was got
        before it (no PDF yet: the caller decides between another attempt and an ERROR_ page)."""
        exchange, resolution = reply.exchange, reply.resolution
        try:
            context = self._context(exchange, resolution.question_text(document))
            reply = replace(reply, context=context)
            answer = self.asker.answer(reply.profile, exchange, document, resolution, context)
            response = answer.response
            reply = replace(reply, profile=answer.profile, response=response, fitted=answer.fitted)
            split = split_reply(response.text) if self.config.context.transcribe else None
            text, transcription = (split.answer, split.transcription) if split else (response.text, None)
            reply = replace(reply, transcription=transcription)
            layout = answer.profile.output
            pdf = render_answer(
                text,
                reply.meta(model=response.model, note=reply.answer_note(answer.fitted), transcription=transcription),
                device=layout.device,
                font_size=layout.font_size,
                reply_page=layout.reply_page,
            )
            return replace(reply, pdf=pdf, response=LLMResponse(text, response.usage, response.model))
        except EinkError as exc:
            return replace(reply, failure=exc)
        except Exception as exc:  # a bug must cost one ERROR_ PDF, not the daemon
            log.exception("unexpected error", job=reply.job.job_id)
            return replace(
                reply,
                failure=UnexpectedError(
                    "The daemon hit an unexpected problem while answering.",
                    "Try again by exporting the page once more; if it keeps happening, report it with the log.",
                    detail=f"{type(exc).__name__}: {exc}",
                ),
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

    def _replace_error_page(self, job: Job, exchange: Exchange, output: Path) -> None:
        """A retry answered: the ERROR_ page of the earlier attempt goes, if it is still as we wrote it."""
        previous = exchange.output_file
        if not previous or previous == output.name or not previous.startswith("ERROR_"):
            return
        page = job.path.parent / previous
        digest = self.store.output_digest(page)
        if digest and remove_if_unchanged(page, digest, root=job.root):
            log.info("the answer replaces the error page", removed=previous, output=output.name)

    def _refresh_summary(self, exchange: Exchange, profile: Profile) -> None:
        """After the answer is recorded for good: nothing here may fail the job (it is done, and a job put back
        would be answered twice), so any failure is only logged."""
        try:
            self.asker.refresh_summary(exchange, profile)
        except Exception:
            log.exception("could not update the conversation summary", conversation=exchange.conversation_id)

    # --- jobs that end without a page to write, failures -----------------------------------------------

    def _vanished(self, job: Job) -> Outcome:
        failure = InputVanishedError(
            f"{job.path.name} was removed before it could be answered.",
            "Export the page again if you still want an answer.",
        )
        self.store.fail_job(job.job_id, failure.user_message())
        log.warning("input vanished", input=str(job.path))
        return Outcome(job_id=job.job_id, status="skipped", error=failure)

    def _wait_for_service(self, job: Job, breaker: CircuitBreaker) -> Outcome:
        """Back to the queue until the service's next probe, untouched and without using up an attempt."""
        at = self.clock() + timedelta(seconds=max(breaker.seconds_to_probe(), 0.05))
        self.store.retry_later(job.job_id, at=at, error="waiting: the AI service is down", refund_attempt=True)
        return Outcome(job_id=job.job_id, status="retry")

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
        return Outcome(job_id=job.job_id, status="skipped", error=failure)

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
            job_id=job.job_id,
            status="skipped",
            conversation_id=resolution.conversation_id,
            note=note,
            reopened=resolution.retry_job if reopened else None,
        )

    def _nothing_new(self, job: Job, resolution: Resolution) -> Outcome:
        note = resolution.why_nothing_new
        self.store.finish_job(job.job_id, note, resolution.prints)
        log.info("not answering this file", input=str(job.path), why=note)
        return Outcome(job_id=job.job_id, status="skipped", conversation_id=resolution.conversation_id, note=note)

    def _retry_later(self, job: Job, exchange: Exchange, failure: EinkError, *, counts: bool = True) -> Outcome:
        """Back to the queue. ``counts=False`` (during an outage) gives the attempt back."""
        now = self.clock()
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
        return Outcome(
            job_id=job.job_id,
            status="retry",
            conversation_id=exchange.conversation_id,
            exchange=exchange.sequence_number,
            error=failure,
        )

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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
