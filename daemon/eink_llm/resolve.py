"""Which conversation an input continues, and what on it is new.

On a tablet the conversation lives in files, and the user cannot type an id, so every natural way of continuing
works. First, an input that needs no answer is recognised without the database (which may have been lost: a new
server, a restore without it): **the daemon's status page** (its metadata says so, renamed or written on),
**one of our answers, unchanged** (byte for byte as we wrote it: the digest we
stamped in it still matches), or **an input already answered** (an answer or error page named after it in its
folder records its SHA-256). Then the rules, first match wins (README "Continuing a conversation" shows file
names for each):

1. **An earlier version of the same file was answered** (notebook mode): a growing notebook re-exported under
   its name. Same conversation; only the pages, or the ink on a page, not answered before are sent — matched by
   content against the page prints kept from that version. A native notebook's pages byte-for-byte the same as
   known ones, and its blank pages, are not even carried as images (page_sieve.py); more new pages than one
   question carries (``input.max_pages``) is an ERROR_ that keeps every page's print, so the next save sends only
   what is new (:attr:`Resolution.refusal`).
2. **One of our answers came back with handwriting on it**: the RESPONSE_ file changed in place, a copy or
   export whose name keeps ``<id>_exNNN``, or any PDF whose metadata carries our id and exchange (tablets that
   rename on export). Same conversation; the returned pages are compared with the PDF we wrote, and only the
   new ink is sent — cut out, plus the page it sits on with our text faded when the ink marks up our answer.
3. **The file name carries a conversation id** (``…conv_20261125_140200_1a2b3c4d…``).
4. **The PDF metadata carries a conversation id.**
5. **Folder mode** (``conversations: per-subfolder`` on a watched folder): the folder's one conversation.
6. Anything else opens a **new conversation**.

An archived conversation is never resumed, and neither is an id this server does not know: a new conversation
starts and the answer says so in a note at its top.

Before the rules, **ink on one of our ERROR_ pages** asks for its page to be tried again (the failed job is put
back; this file is no question). After them, **the same content in the same conversation is answered once**:
an input whose bytes, or the exact ink of every page, an answered exchange of that conversation already had
(a sync conflict's ``Copy of RESPONSE_…``) needs no answer.
"""

from __future__ import annotations

import enum
import os
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import structlog
from PIL import Image

from eink_llm import confined, inkdiff, naming
from eink_llm.config import Config
from eink_llm.economy import is_blank, page_inks
from eink_llm.errors import EinkError
from eink_llm.ink import Ink
from eink_llm.page_sieve import every_print, too_many_pages
from eink_llm.reader import InputDocument, records_input
from eink_llm.store import AnswerRecord, Job
from eink_llm.store.ports import PastAnswers

log = structlog.get_logger("eink_llm.resolve")

How = Literal[
    "status-page",
    "retry",
    "duplicate",
    "own-answer",
    "answered-before",
    "notebook",
    "annotated-answer",
    "file-name",
    "metadata",
    "folder",
    "new",
    "blank-notebook",
]
#: Why an input that needs no answer gets none (the job's note, the log, ``eink-llm process``).
_NOTHING_NEW = {
    "status-page": "the daemon's status page: never a question, whatever is written on it",
    "own-answer": "one of our answers, unchanged: not a question",
    "answered-before": "answered before: an answer in its folder records this very file",
    "retry": "ink on an error page whose page has no failure left to retry",
    "blank-notebook": "a notebook with nothing written on it yet",
}


class Question(enum.Enum):
    """What of an input is the question."""

    #: The document as read: all its pages, and its text layer.
    WHOLE_INPUT = "whole-input"
    #: Only :attr:`Resolution.pages` (what is new on it, or our own answer's pages without their printed text),
    #: never its text layer.
    THESE_PAGES = "these-pages"
    #: None: the input is finished without an answer (nothing new on it, or no question at all).
    NOTHING_NEW = "nothing-new"


@dataclass(frozen=True, slots=True)
class Page:
    """One image to send: a whole page, the new ink cut out of one, or a page shown only for context. The image is
    grayscale and still decoded: the economy stage encodes it once, for the backend it goes to."""

    image: Image.Image
    role: Literal["page", "new-ink", "context"]
    page_number: int  # 1-based, in the input
    #: A whole page's ink, found with its print (economy.page_inks): the economy stage need not find it again.
    ink: Ink | None = field(default=None, repr=False, compare=False)

    @property
    def crop_to_ink(self) -> bool:
        """Context pages are sent whole (their faded text is not ink, and cropping would cut it away)."""
        return self.role != "context"


@dataclass(frozen=True, slots=True)
class Resolution:
    """Where an input belongs and what of it is the question."""

    conversation_id: str | None  # None: start a new conversation
    how: How
    #: Shown at the top of the answer, e.g. why an id in the file name was not continued.
    note: str | None = None
    #: Folder mode: the folder a new conversation becomes the one conversation of.
    folder: str | None = None
    #: What of the input is the question.
    question: Question = Question.WHOLE_INPUT
    #: The images to send when :attr:`question` is :attr:`Question.THESE_PAGES` (then never empty); else empty.
    pages: tuple[Page, ...] = ()
    #: Replaces the usual "here is my question" when only part of the input is new.
    instruction: str = ""
    #: The input's page prints, kept so a later version of the file can be compared with this one.
    prints: tuple[bytes, ...] = field(default=(), repr=False)
    #: Ink on one of our ERROR_ pages: the failed job to try again (this input is not a question).
    retry_job: int | None = None
    #: The document's pages' ink (economy.page_inks), found once for the prints and carried to the page economy
    #: when the pages go as they are (``question`` is ``Question.WHOLE_INPUT``).
    inks: tuple[Ink, ...] = field(default=(), repr=False, compare=False)
    #: Not asked, but answered with this ERROR_ (its prints kept all the same): a notebook with more new or
    #: changed pages than one input may carry.
    refusal: EinkError | None = None

    def __post_init__(self) -> None:
        if (self.question is Question.THESE_PAGES) != bool(self.pages):
            raise ValueError(f"{self.question} with {len(self.pages)} pages")

    @property
    def nothing_new(self) -> bool:
        return self.question is Question.NOTHING_NEW

    @property
    def why_nothing_new(self) -> str:
        if self.how == "duplicate" and self.note:
            return self.note
        return _NOTHING_NEW.get(self.how, "nothing new since it was last answered")

    def question_text(self, document: InputDocument) -> str:
        """The input's text layer, as part of the question — unless only part of the input is new: then the
        text layer holds what was answered before (our own answer, for an annotated RESPONSE_), and sending it
        would ask the old question again."""
        return document.text if self.question is Question.WHOLE_INPUT else ""


@dataclass(frozen=True, slots=True)
class KnownVersion:
    """The last answered version of a file at the same path (notebook mode): its job, the conversation its newest
    answer belongs to, and its page prints. Looked up before the file is read, so a native notebook is read
    against these prints (only its changed pages carried as images: page_sieve.py)."""

    job_id: int
    conversation_id: str | None
    prints: tuple[bytes, ...] = field(repr=False)


class Resolver:
    def __init__(self, config: Config, store: PastAnswers) -> None:
        self.config = config
        self.store = store

    def known_version(self, job: Job) -> KnownVersion | None:
        """The version rule 1 continues, if there is one."""
        earlier = self.store.earlier_version(job)
        if earlier is None:
            return None
        version, conversation = earlier
        return KnownVersion(version.job_id, conversation, tuple(self.store.page_prints(version.job_id)))

    def resolve(self, job: Job, document: InputDocument | None, known: KnownVersion | None) -> Resolution:
        """The rules of the module docstring, for one job (``document`` is ``None`` when it could not be read;
        ``known``: :meth:`known_version`, looked up before it was read); then, same content in the same
        conversation is answered once (:meth:`_answered_already`)."""
        resolution = self._resolve(job, document, known)
        if resolution.conversation_id is None or resolution.nothing_new or resolution.retry_job is not None:
            return resolution
        if self.store.exchange_for_job(job.job_id) is not None:  # a retry of its own exchange
            return resolution
        duplicate = self._answered_already(job, resolution)
        if duplicate is None:
            return resolution
        log.info(
            "not answering: the same content was answered in this conversation",
            input=str(job.path),
            conversation=resolution.conversation_id,
            exchange=duplicate,
        )
        return Resolution(
            resolution.conversation_id,
            "duplicate",
            note=f"the same content was answered as exchange {duplicate} of {resolution.conversation_id}",
            question=Question.NOTHING_NEW,
            prints=resolution.prints,
        )

    def _answered_already(self, job: Job, resolution: Resolution) -> int | None:
        """The exchange of this conversation that answered these very bytes, or every page of this input (an exact
        match of their ink, as a sync conflict's byte-identical or re-rendered copy has); else ``None``."""
        assert resolution.conversation_id is not None
        answered = self.store.answered_inputs(resolution.conversation_id, limit=20)
        for _job_id, sha256, sequence in answered:
            if sha256 == job.sha256:
                return sequence
        if not resolution.prints:
            return None
        # Prints byte for byte first (ours, made by the same code: equal bytes, equal ink). Their digests, which
        # also match prints written by another version of the PNG encoder, cost a decode each: only where both
        # sides have at most max_pages pages, never for a long notebook's hundreds in each of 20 exchanges.
        exact = set(resolution.prints)
        few = self.config.input.max_pages
        wanted = {inkdiff.print_digest(p) for p in exact} if len(exact) <= few else None
        for job_id, _sha256, sequence in answered:
            kept = set(self.store.page_prints(job_id))
            if kept and exact <= kept:
                return sequence
            if wanted is not None and kept and len(kept) <= few and wanted <= {inkdiff.print_digest(p) for p in kept}:
                return sequence
        return None

    def _resolve(self, job: Job, document: InputDocument | None, known: KnownVersion | None) -> Resolution:
        images = list(document.images) if document is not None else []  # decoded once, by the reader
        inks = page_inks(images)  # found once: for the prints here and for the page economy
        carried = tuple(inkdiff.make_print(image, ink) for image, ink in zip(images, inks, strict=True))
        prints = every_print(document, carried, known.prints if known is not None else None)
        resolution = self._place(job, document, images, inks, prints, known)
        refused = not resolution.nothing_new and resolution.retry_job is None
        if document is not None and document.pages_not_carried and refused:  # too many new pages for one question
            too_many = too_many_pages(job.path.name, document, known is None, self.config.input.max_pages)
            return replace(resolution, question=Question.WHOLE_INPUT, pages=(), instruction="", refusal=too_many)
        if document is not None and document.skipped and not images and resolution.question is Question.WHOLE_INPUT:
            # A notebook with nothing written on it yet (its blank pages are never carried): nothing to ask.
            return Resolution(None, "blank-notebook", question=Question.NOTHING_NEW, prints=prints)
        return replace(resolution, inks=inks) if resolution.question is Question.WHOLE_INPUT else resolution

    def _place(
        self,
        job: Job,
        document: InputDocument | None,
        images: list[Image.Image],
        inks: tuple[Ink, ...],
        prints: tuple[bytes, ...],
        known: KnownVersion | None,
    ) -> Resolution:
        handled = self._handled_before(job, document)
        if handled is not None:  # our own answer keeps no prints: written on later, it is no notebook version
            return Resolution(
                None, handled, question=Question.NOTHING_NEW, prints=prints if handled == "answered-before" else ()
            )

        if job.path.name.startswith("ERROR_"):  # written on (unchanged ones are never queued): try it again
            failed = self.store.failed_job_for_output(job.path)
            if failed is not None or self.store.output_digest(job.path) is not None:
                return Resolution(
                    None, "retry", question=Question.NOTHING_NEW, retry_job=failed.job_id if failed else None
                )

        if known is not None and document is not None and (images or document.skipped):
            if document.pages_not_carried:  # more new pages than one question carries: refused (_resolve)
                return self._continue(known.conversation_id, "notebook", job, prints=prints)
            # A long notebook's pages equal to known ones were not carried (page_sieve.py): only the others are
            # compared, with the known pages they did not match.
            numbers = [n for n, entry in enumerate(document.skipped, start=1) if entry is None] or None
            taken = {entry.known for entry in document.skipped if entry is not None and entry.known is not None}
            pages, instruction = _new_content(images, inks, known.prints, notebook=True, numbers=numbers, taken=taken)
            return self._continue(
                known.conversation_id, "notebook", job, _only(pages), pages, instruction=instruction, prints=prints
            )

        ref = self._answer_ref(job, document)
        if ref is not None:
            conversation_id, sequence, record = ref
            if record is not None and record.pdf and images:
                ours = inkdiff.rasterize_pdf(record.pdf)
                pages, instruction = _new_content(images, inks, ours, notebook=False, sequence=sequence)
                return self._continue(
                    conversation_id,
                    "annotated-answer",
                    job,
                    _only(pages),
                    pages,
                    instruction=instruction,
                    prints=prints,
                )
            if document is not None and (record is not None or document.origin is not None):
                # Ours, but written before we kept our PDFs, or never known here (another server, a lost
                # database): all of it goes, and its printed text (our earlier answer) never as a question.
                numbered = enumerate(zip(images, inks, strict=True), start=1)
                whole = tuple(Page(page, "page", number, ink) for number, (page, ink) in numbered)
                which = f"your answer from exchange {sequence} of this conversation" if record else "an answer of yours"
                instruction = (
                    f"I wrote on {which}. The printed text on these pages is your earlier answer, not a new "
                    "question; please answer my handwriting."
                )
                return self._continue(
                    conversation_id,
                    "annotated-answer",
                    job,
                    _only(whole),
                    whole,
                    instruction=instruction,
                    prints=prints,
                )
            return self._continue(conversation_id, "metadata", job, prints=prints)

        if job.conversation_hint:
            return self._continue(job.conversation_hint, "file-name", job, prints=prints)
        origin = document.origin if document is not None else None
        if origin is not None:
            return self._continue(origin.conversation_id, "metadata", job, prints=prints)

        folder = self.config.conversation_folder(job.path)
        if folder is not None:
            key = str(folder)
            existing = self.store.folder_conversation(key)
            if existing is not None:
                resolved = self._continue(existing, "folder", job, prints=prints)
                if resolved.conversation_id is not None:
                    return resolved
                return Resolution(None, "folder", note=resolved.note, folder=key, prints=prints)
            return Resolution(None, "folder", folder=key, prints=prints)
        return Resolution(None, "new", prints=prints)

    def _answer_ref(self, job: Job, document: InputDocument | None) -> tuple[str, int, AnswerRecord | None] | None:
        """The answer of ours this input is, changed: written at our path, named like it, or carrying its id;
        with what we kept of it, if anything."""
        record = self.store.answer_record_at(job.path)
        if record is not None:
            return record.conversation_id, record.sequence_number, record
        origin = document.origin if document is not None else None
        ref = naming.find_answer_ref(job.path.name) or (
            (origin.conversation_id, origin.exchange) if origin is not None and origin.exchange is not None else None
        )
        if ref is None:
            return None
        return ref[0], ref[1], self.store.answer_record(*ref)

    def fallback(self, job: Job, document: InputDocument | None) -> Resolution:
        """When comparing pages failed: the whole input, in the conversation its name names (if that may be
        continued), else a new one. The text layer of one of our own answers is still never sent as a question."""
        named = self._continue(job.conversation_hint, "file-name", job) if job.conversation_hint else None
        ours = document is not None and (document.origin is not None or naming.find_answer_ref(job.path.name))
        question = Question.WHOLE_INPUT
        pages: tuple[Page, ...] = ()
        if document is not None and document.skipped and not document.images:  # a notebook with nothing changed
            question = Question.NOTHING_NEW
        elif ours and document is not None:
            pages = tuple(Page(page, "page", number) for number, page in enumerate(document.images, start=1))
            question = _only(pages)
        if named is not None and named.conversation_id is not None:
            return Resolution(named.conversation_id, "file-name", question=question, pages=pages)
        return Resolution(None, "new", note=named.note if named else None, question=question, pages=pages)

    def _continue(
        self,
        conversation_id: str | None,
        how: How,
        job: Job,
        question: Question = Question.WHOLE_INPUT,
        pages: tuple[Page, ...] = (),
        *,
        instruction: str = "",
        prints: tuple[bytes, ...] = (),
    ) -> Resolution:
        """Continue ``conversation_id`` if it is known and active; otherwise start anew and say why."""
        note = None
        known = self.store.get_conversation(conversation_id) if conversation_id else None
        if known is not None and known.status == "active":
            return Resolution(
                known.conversation_id, how, question=question, pages=pages, instruction=instruction, prints=prints
            )
        if known is not None:
            note = (
                f"Conversation {known.conversation_id} is archived, so this question started a new conversation. "
                "Its earlier exchanges were not sent along."
            )
        elif conversation_id:
            note = (
                f"This file names conversation {conversation_id}, which this eink-llm does not know (another "
                "server, or a deleted history), so it started a new conversation."
            )
        if note:
            log.info("not continuing a conversation", input=str(job.path), named=conversation_id, reason=note)
        return Resolution(
            None, "new", note=note, question=question, pages=pages, instruction=instruction, prints=prints
        )

    def _handled_before(self, job: Job, document: InputDocument | None) -> How | None:
        """``status-page``, ``own-answer`` or ``answered-before`` (see the module docstring) when the input needs
        no answer. Not for a job run again after a crash or a failed commit: the answer it may already have
        written records its input too, and the job must finish its own exchange."""
        if document is not None and document.status_page:  # written on or renamed, it still asks nothing
            return "status-page"
        if self.store.exchange_for_job(job.job_id) is not None:
            return None
        origin = document.origin if document is not None else None
        if origin is not None and origin.unchanged:
            return "own-answer"
        pattern = naming.answer_name_pattern(job.path.stem)
        try:
            # The folder reached from the watched root without following links (confined.py), like the input.
            with confined.folder(job.root, job.path.parent) as folder, os.scandir(folder) as entries:
                # NFC: a folder synced through macOS may hold names in decomposed form.
                names = sorted(e.name for e in entries if pattern.fullmatch(unicodedata.normalize("NFC", e.name)))
        except OSError:
            return None
        limits = self.config.input.limits()
        for name in names:
            if records_input(job.path.parent / name, job.sha256, limits, root=job.root):
                log.info("an answer in the folder records this file", input=str(job.path), answer=name)
                return "answered-before"
        return None


def _only(pages: tuple[Page, ...]) -> Question:
    """Only these pages are the question; with none, there is nothing new."""
    return Question.THESE_PAGES if pages else Question.NOTHING_NEW


def _new_content(
    images: Sequence[Image.Image],
    inks: Sequence[Ink],
    known: Sequence[Image.Image | bytes],
    *,
    notebook: bool,
    sequence: int | None = None,
    numbers: Sequence[int] | None = None,
    taken: Collection[int] = (),
) -> tuple[tuple[Page, ...], str]:
    """The images that carry what is new on ``images`` (with their ``inks``) compared with ``known`` (pages or
    prints; ``taken``: known pages already matched to pages not given), and words that explain them. ``numbers``:
    each image's page number in the input (default: 1, 2, …)."""
    pages: list[Page] = []
    lines: list[str] = []
    for change in inkdiff.compare_pages(known, images, inks, taken=taken):
        number = numbers[change.index] if numbers is not None else change.index + 1
        if change.kind == "same":
            continue
        if change.kind == "new" or change.ink is None:
            if is_blank(images[change.index], inks[change.index]):  # an empty page added to a notebook asks nothing
                continue
            pages.append(Page(images[change.index], "page", number, inks[change.index]))
            lines.append(f"Image {len(pages)}: page {number}, a new page.")
            continue
        pages.append(Page(change.ink.crop, "new-ink", number))
        lines.append(f"Image {len(pages)}: only my new handwriting on page {number}, cut out of the page.")
        if change.ink.touches_old:
            pages.append(Page(change.ink.context, "context", number))
            lines.append(
                f"Image {len(pages)}: the whole of page {number}, for context only: what was there before is "
                "faded to grey, my new writing is black."
            )
    if not pages:
        return (), ""
    if notebook:
        intro = (
            "This continues my notebook. You have answered its earlier pages already; below is only what I added "
            "since then. Please answer the new writing."
        )
    else:
        intro = (
            f"I wrote on your answer from exchange {sequence} of this conversation. Below is only what I added; "
            "your earlier answer is not a new question. Please answer my new writing."
        )
    return tuple(pages), intro + "\n\n" + "\n".join(lines)
