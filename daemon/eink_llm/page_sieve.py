"""A long notebook read against its last answered version: which pages are carried as images.

A native notebook is one file that grows for months, saved in place. Notebook mode (resolve.py) sends only what
is new, but to know what is new every page used to be decoded and carried through the pipeline as a full-size
image (~1–2.5 MB of grey pixels each), so memory grew with the notebook. Here, as the reader decodes the
notebook one page at a time (in the reading cage), each page's print is made with the very functions the
resolver uses (:func:`eink_llm.economy.page_inks`, :func:`eink_llm.inkdiff.make_print`) and compared byte for
byte with the prints kept from the last answered version:

* equal to a known print not yet matched (the nearest to the page's own position, so inserted, deleted and
  reordered pages are still found; :func:`eink_llm.inkdiff.compare_pages` matches exact prints the same way):
  the page is certainly unchanged and is not carried — only the index of the known print it equals;
* otherwise it is carried as an image, and the resolver compares it as before (a print that differs only by a
  speck may still be "the same page" there);
* a blank page (:func:`eink_llm.economy.is_blank`: the rule that drops blank pages from every question) is
  not carried either, only its print: it asks nothing, and a long notebook's empty pages never count against
  ``max_pages``;
* once ``max_pages`` pages are carried, a further changed page is kept only as its print: more pages changed
  than one input may carry (a notebook seen for the first time, longer than ``max_pages``). The resolver records
  every page's print and replies with an ERROR_ page that says so; the next save sends only what is new again.

So the pages held at once are at most ``max_pages``, however long the notebook (``input.max_notebook_pages``
bounds its length). :func:`every_print` puts every page's print together for the resolver, and
:func:`too_many_pages` is the ERROR_ when more pages changed than one input carries. A carried page's print is
made again by the resolver (the reading process's pixels are only data to it): at most ``max_pages`` pages'
worth of work twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from eink_llm.economy import is_blank, page_inks
from eink_llm.errors import TooManyNewPagesError
from eink_llm.inkdiff import make_print
from eink_llm.reader import InputDocument, Skipped


class PrintSieve:
    """One notebook's pages, taken in order (a sieve serves one read)."""

    def __init__(self, known: Sequence[bytes], carry: int) -> None:
        self._known = tuple(known)
        self._carry = carry
        self._free: dict[bytes, list[int]] = {}  # a known print → its indices not matched yet
        for index, found in enumerate(self._known):
            self._free.setdefault(found, []).append(index)
        self._index = 0
        self.carried = 0

    @property
    def known(self) -> tuple[bytes, ...]:
        return self._known

    def take(self, image: Image.Image) -> Skipped | None:
        """``None``: carry ``image``. Else how it is skipped: unchanged, blank, or changed past what one input
        carries."""
        index = self._index
        self._index += 1
        (ink,) = page_inks([image])
        found = make_print(image, ink)
        free = self._free.get(found)
        if free:
            match = min(free, key=lambda j: abs(j - index))
            free.remove(match)
            if not free:
                del self._free[found]
            return Skipped(known=match)
        if is_blank(image, ink):  # asks nothing (the resolver and the economy drop blank pages): never carried
            return Skipped(print=found, blank=True)
        if self.carried < self._carry:
            self.carried += 1
            return None
        return Skipped(print=found)


def every_print(
    document: InputDocument | None, carried: tuple[bytes, ...], known: tuple[bytes, ...] | None
) -> tuple[bytes, ...]:
    """Every page's print, kept for the next version: a carried page's as the resolver made it (``carried``), a
    page the sieve found unchanged has its ``known`` print (byte for byte the same), a blank one or one past what
    an input carries came with its own."""
    if document is None or not document.skipped:
        return carried
    made = iter(carried)
    prints: list[bytes] = []
    for entry in document.skipped:
        if entry is None:
            prints.append(next(made))
        elif entry.known is not None:
            if known is None or entry.known >= len(known):
                raise ValueError("a page matched to a print that is not known")
            prints.append(known[entry.known])
        else:
            prints.append(entry.print)
    return tuple(prints)


def too_many_pages(name: str, document: InputDocument, first_sight: bool, max_pages: int) -> TooManyNewPagesError:
    """The ERROR_ for a notebook with more new pages than one question may carry, in plain words."""
    limit = f"more than one question may carry (input.max_pages = {max_pages}), so none of them was sent."
    new = len(document.images) + document.pages_not_carried
    if first_sight:
        written = "" if new == document.page_count else f" ({new} of them written on)"
        what = f"{name} has {document.page_count} pages{written}, {limit}"
    else:
        what = (
            f"{new} of the {document.page_count} pages of {name} are new or changed since it was last answered, "
            + limit
        )
    return TooManyNewPagesError(
        what,
        "Its pages are now known: write on a new page (or add to a page) and save, and only that is answered. "
        "To have more pages answered at once, raise input.max_pages in the config.",
    )
