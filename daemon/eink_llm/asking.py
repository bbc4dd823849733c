"""The LLM hook stage: asking a profile's model, with its fallback chain, budgets and circuit breaker.

For one question: the folder's profile is asked first; a spent budget or a permanent failure moves on to the
next profile of its ``fallback`` list, while a transient failure is raised at once (the pipeline retries the
whole job later). Each request is built here from the context and the pages made economical for that
backend (economy.py) and fitted under the ceiling of the model's context and the profile's budget (ceiling.py).
Every outcome is reported to the circuit breaker of the AI service asked, so an outage
of one service pauses only its own questions (retry.Breakers).

After an exchange is recorded, :meth:`Asker.refresh_summary` lets the model update the conversation's rolling
summary when the conversation has outgrown the context budget.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

import structlog

from eink_llm import redact
from eink_llm.backends.base import Backend, LLMRequest, LLMResponse, ModelOptions
from eink_llm.budget import budget_left, check_budget
from eink_llm.ceiling import Ceiling, Fitted, budget_ceiling, fit_request, model_ceiling
from eink_llm.config import Config, Profile
from eink_llm.context import Context, summary_request
from eink_llm.economy import prepare_pages
from eink_llm.errors import BackendError, BudgetExceededError, EinkError, RequestTooLargeError
from eink_llm.reader import InputDocument
from eink_llm.resolve import Question, Resolution
from eink_llm.retry import Breakers, CircuitBreaker
from eink_llm.store import Exchange, utc_now
from eink_llm.store.ports import AskerStore
from eink_llm.transcript import INSTRUCTION as TRANSCRIBE

log = structlog.get_logger("eink_llm.pipeline")


def service_key(profile: Profile) -> str:
    """Which AI service a profile asks (its backend and address): profiles that share one share its breaker. Secrets
    in the address (``?key=``) are masked: the key is shown on the status page and kept in the heartbeat row."""
    return redact.text(f"{profile.llm.backend} {profile.llm.base_url or ''}".strip())


@dataclass(frozen=True, slots=True)
class Answer:
    """What :meth:`Asker.answer` got: the model's response, the profile that gave it (the folder's, or one of its
    fallbacks) and the request as sent (:class:`Fitted`: what was left out to fit)."""

    response: LLMResponse
    profile: Profile
    fitted: Fitted


def model_options(profile: Profile) -> ModelOptions:
    """The model settings of every request a profile sends (an answer, a summary)."""
    llm = profile.llm
    return ModelOptions(model=llm.model, max_output_tokens=llm.max_output_tokens, temperature=llm.temperature)


class Asker:
    """Asks the models. Safe to use from several worker threads at once."""

    def __init__(
        self,
        config: Config,
        store: AskerStore,
        backends: Mapping[str, Backend],
        profiles: Mapping[str, Profile],
        breakers: Breakers,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """``clock`` gives the moment a budget is checked at (which day and month it counts)."""
        self.config = config
        self.store = store
        self.backends = backends
        self.profiles = profiles
        self.breakers = breakers
        self.clock = clock
        for profile in profiles.values():
            self.breaker(profile)  # every service known up front, so a closed one keeps workers claiming

    def answer(
        self, first: Profile, exchange: Exchange, document: InputDocument, resolution: Resolution, context: Context
    ) -> Answer:
        """Ask the folder's profile; on a permanent failure or a spent budget, its fallbacks in order.

        A transient failure is raised at once: the whole job is retried later, starting again from the top.
        """
        chain = list(dict.fromkeys([first.name, *first.fallback]))
        last: EinkError | None = None
        for name in chain:
            profile = self.profiles[name]
            over = check_budget(self.store, profile, self.clock())
            if over is not None:
                log.warning("budget spent", profile=name, detail=over.what)
                last = over
                continue
            backend = self.backends[name]
            try:
                fitted = self.build_request(exchange, document, resolution, context, profile, backend)
            except BudgetExceededError as exc:
                log.warning("budget too small for this question", profile=name, detail=exc.what)
                last = exc
                continue
            except RequestTooLargeError as exc:  # another profile's model may take more
                log.warning("question too large for the model", profile=name, detail=exc.what)
                last = exc
                continue
            if fitted.dropped:
                log.info("request cut to fit", profile=name, **fitted.record())
            try:
                return Answer(self.ask(fitted.request, backend, self.breaker(profile)), profile, fitted)
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
    ) -> Fitted:
        """Context within budget, plus the pages (or only what is new on them) made economical for this backend:
        cropped to the ink, blank pages dropped, scaled and encoded within its limits (economy.py); then the
        whole request fitted under the ceiling of the model's context and the profile's budget (ceiling.py)."""
        llm = profile.llm
        caps = backend.capabilities
        if resolution.question is Question.WHOLE_INPUT:
            inks = resolution.inks or None  # found with the prints
            pages = prepare_pages(document.images, caps, min_stroke_px=llm.min_stroke_px, inks=inks)
        else:
            pages = prepare_pages(
                [page.image for page in resolution.pages],
                caps,
                min_stroke_px=llm.min_stroke_px,
                crop_to_ink=[page.crop_to_ink for page in resolution.pages],
                inks=[page.ink for page in resolution.pages],
            )
        system_prompt = context.system_prompt(llm.system_prompt)
        lean_system_prompt = llm.system_prompt
        if self.config.context.transcribe:
            system_prompt = f"{system_prompt}\n\n{TRANSCRIBE}"
            lean_system_prompt = f"{lean_system_prompt}\n\n{TRANSCRIBE}"
        request = LLMRequest(
            system_prompt=system_prompt,
            history=context.history,
            pages=pages,
            text=resolution.question_text(document),
            options=model_options(profile),
            source_name=exchange.input_file,
            instruction=resolution.instruction,
        )
        ceiling = self.ceiling(profile)
        try:
            return fit_request(request, lean_system_prompt, caps, ceiling)
        except RequestTooLargeError as exc:
            if ceiling.resets_at is None:
                raise
            raise BudgetExceededError(
                exc.what,
                f"It resets at {ceiling.resets_at:%Y-%m-%d %H:%M} UTC; export the page again after that, export "
                f"fewer pages, or raise profiles.{profile.name}.budget in the config.",
                resets_at=ceiling.resets_at,
            ) from None

    def ceiling(self, profile: Profile) -> Ceiling:
        """The lower of the model's context (less the room kept for the answer) and what is left of the
        profile's budget. For Ollama, ``options.num_ctx`` is the context when it is smaller."""
        llm = profile.llm
        context = llm.context_tokens
        num_ctx = _whole_number(llm.options.get("num_ctx")) if llm.backend == "ollama" else None
        if num_ctx is not None and 0 < num_ctx < context:
            context = num_ctx
        ceiling = model_ceiling(context, llm.max_output_tokens)
        left = budget_left(self.store, profile, self.clock())
        if left is not None and left.tokens < ceiling.tokens:
            return budget_ceiling(left.tokens, left.label, profile.name, left.resets_at)
        return ceiling

    def breaker(self, profile: Profile) -> CircuitBreaker:
        """The circuit breaker of the AI service a profile uses (its backend and address)."""
        return self.breakers.get(service_key(profile))

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
        masked = redact.known(response.text)  # a program or a plugin may echo its keys into the answer
        return response if masked == response.text else replace(response, text=masked)

    def refresh_summary(self, exchange: Exchange, profile: Profile) -> None:
        """Once a conversation outgrows the context budget, let the model update its rolling summary. Best
        effort: a failure costs only a less informed context later, never the answer just written."""
        if not self.config.context.summaries:
            return
        conversation = self.store.get_conversation(exchange.conversation_id)
        if conversation is None:
            return
        earlier = self.store.history(conversation.conversation_id, exchange.sequence_number + 1)
        due = summary_request(conversation, earlier, self.config.context.history_tokens, model_options(profile))
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


def _whole_number(value: object) -> int | None:
    """An option that should be a whole number (YAML may give it as text), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        return int(value)
    except ValueError:
        return None
