"""The LLM hook stage: asking a profile's model, with its fallback chain, budgets and circuit breaker.

For one question: the folder's profile is asked first; a spent budget or a permanent failure moves on to the
next profile of its ``fallback`` list, while a transient failure is raised at once (the pipeline retries the
whole job later). Each request is built here from the context and the pages made economical for that
backend (economy.py). Every outcome is reported to the circuit breaker of the AI service asked, so an outage
of one service pauses only its own questions (retry.Breakers).

After an exchange is recorded, :meth:`Asker.refresh_summary` lets the model update the conversation's rolling
summary when the conversation has outgrown the context budget.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from eink_llm.backends.base import Backend, LLMRequest, LLMResponse, ModelOptions
from eink_llm.budget import check_budget
from eink_llm.config import Config, Profile
from eink_llm.context import Context, summary_request
from eink_llm.economy import prepare_pages
from eink_llm.errors import BackendError, EinkError
from eink_llm.reader import InputDocument
from eink_llm.resolve import Resolution
from eink_llm.retry import Breakers, CircuitBreaker
from eink_llm.store import Exchange, Store, utc_now
from eink_llm.transcript import INSTRUCTION as TRANSCRIBE

log = structlog.get_logger("eink_llm.pipeline")


class Asker:
    """Asks the models. Safe to use from several worker threads at once."""

    def __init__(
        self,
        config: Config,
        store: Store,
        backends: Mapping[str, Backend],
        profiles: Mapping[str, Profile],
        breakers: Breakers,
    ) -> None:
        self.config = config
        self.store = store
        self.backends = backends
        self.profiles = profiles
        self.breakers = breakers
        for profile in profiles.values():
            self.breaker(profile)  # every service known up front, so a closed one keeps workers claiming

    def answer(
        self, first: Profile, exchange: Exchange, document: InputDocument, resolution: Resolution, context: Context
    ) -> tuple[LLMResponse, Profile, LLMRequest]:
        """Ask the folder's profile; on a permanent failure or a spent budget, its fallbacks in order.

        A transient failure is raised at once: the whole job is retried later, starting again from the top.
        """
        chain = list(dict.fromkeys([first.name, *first.fallback]))
        last: EinkError | None = None
        for name in chain:
            profile = self.profiles[name]
            over = check_budget(self.store, profile, utc_now())
            if over is not None:
                log.warning("budget spent", profile=name, detail=over.what)
                last = over
                continue
            backend = self.backends[name]
            request = self.build_request(exchange, document, resolution, context, profile, backend)
            try:
                return self.ask(request, backend, self.breaker(profile)), profile, request
            except BackendError as exc:
                if exc.retryable:
                    raise
                last = exc
                if name != chain[-1]:
                    log.warning("profile failed; trying its fallback", profile=name, error=exc.user_message())
        assert last is not None
        raise last

    def build_request(
        self,
        exchange: Exchange,
        document: InputDocument,
        resolution: Resolution,
        context: Context,
        profile: Profile,
        backend: Backend,
    ) -> LLMRequest:
        """Context within budget, plus the pages (or only what is new on them) made economical for this backend:
        cropped to the ink, blank pages dropped, scaled and encoded within its limits (economy.py)."""
        llm = profile.llm
        caps = backend.capabilities
        if resolution.pages is None:
            pages = prepare_pages(document.images, caps, min_stroke_px=llm.min_stroke_px)
        else:
            pages = prepare_pages(
                [page.image for page in resolution.pages],
                caps,
                min_stroke_px=llm.min_stroke_px,
                crop_to_ink=[page.crop_to_ink for page in resolution.pages],
            )
        system_prompt = context.system_prompt(llm.system_prompt)
        if self.config.context.transcribe:
            system_prompt = f"{system_prompt}\n\n{TRANSCRIBE}"
        return LLMRequest(
            system_prompt=system_prompt,
            history=context.history,
            pages=pages,
            text=resolution.question_text(document),
            options=ModelOptions(model=llm.model, max_output_tokens=llm.max_output_tokens, temperature=llm.temperature),
            source_name=exchange.input_file,
            instruction=resolution.instruction,
        )

    def breaker(self, profile: Profile) -> CircuitBreaker:
        """The circuit breaker of the AI service a profile uses (its backend and address)."""
        return self.breakers.get(f"{profile.llm.backend} {profile.llm.base_url or ''}".strip())

    def ask(self, request: LLMRequest, backend: Backend, breaker: CircuitBreaker) -> LLMResponse:
        """The LLM hook, with the outcome reported to the service's circuit breaker."""
        try:
            response = backend.complete(request)
        except BackendError as exc:
            if exc.retryable and breaker.record_failure():
                log.warning(
                    "the AI service seems to be down; pausing its questions until it answers again",
                    backend=backend.name,
                    probe_every_s=breaker.probe_interval,
                    error=exc.user_message(),
                )
            raise
        if breaker.record_success():
            log.info("the AI service answers again; resuming", backend=backend.name)
        return response

    def refresh_summary(self, exchange: Exchange, profile: Profile) -> None:
        """Once a conversation outgrows the context budget, let the model update its rolling summary. Best
        effort: a failure costs only a less informed context later, never the answer just written."""
        if not self.config.context.summaries:
            return
        conversation = self.store.get_conversation(exchange.conversation_id)
        if conversation is None:
            return
        earlier = self.store.history(conversation.conversation_id, exchange.sequence_number + 1)
        llm = profile.llm
        options = ModelOptions(model=llm.model, max_output_tokens=llm.max_output_tokens, temperature=llm.temperature)
        due = summary_request(conversation, earlier, self.config.context.history_tokens, options)
        if due is None:
            return
        request, through = due
        try:
            response = self.ask(request, self.backends[profile.name], self.breaker(profile))
        except EinkError as exc:
            log.warning(
                "could not update the conversation summary",
                conversation=exchange.conversation_id,
                error=exc.user_message(),
            )
            return
        self.store.set_summary(conversation.conversation_id, response.text.strip(), through)
        log.info(
            "conversation summary updated",
            conversation=conversation.conversation_id,
            through=through,
            tokens=response.usage.total_tokens,
        )
