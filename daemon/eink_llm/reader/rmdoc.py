"""reMarkable documents (``.rmdoc``, what the desktop app and cloud tools export) → their pages in order.

A ``.rmdoc`` is a zip of ``<doc>.content`` (JSON: ``cPages.pages`` in page order), ``<doc>.metadata`` and one
``<doc>/<page>.rm`` per page written on. It is hostile input: member names, count and declared sizes are checked
before anything is inflated, and inflating stops at the limit whatever the zip declares (a zip bomb lies). Each
page is drawn by :mod:`~eink_llm.reader.remarkable`; a page without a ``.rm`` file is a blank page.
"""

from __future__ import annotations

import functools
import io
import json
import zipfile
from typing import Any

from PIL import Image

from eink_llm.errors import CorruptInputError, InputTooLargeError, UnsupportedInputError
from eink_llm.reader.limits import EXPORT_SUPPORTED, InputDocument, InputLimits, PageSieve, describe, fit
from eink_llm.reader.notebook_common import LONG_NOTEBOOK, NOTEBOOK_PAGES, SYNC_AGAIN, Pages, TextLayer, check_length
from eink_llm.reader.remarkable import PAGE_HEIGHT, PAGE_WIDTH, draw_page, load_rmscene

#: A .rmdoc holds per page at most a .rm and a few small JSON files, plus the document's own.
_MEMBERS_PER_PAGE = 4
_JSON_BYTES = 4 * 1024 * 1024


def read_rmdoc(name: str, data: bytes, limits: InputLimits, sieve: PageSieve | None = None) -> InputDocument:
    """A document exported by the reMarkable app: its pages in the ``.content`` order, drawn one at a time;
    through ``sieve``, only the pages it carries are kept as images."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise CorruptInputError(
            f"{name} is a ZIP archive that could not be opened: it is damaged or not completely synced.",
            SYNC_AGAIN,
            detail=describe(exc),
        ) from None
    with archive:
        members = _members(name, archive, limits, sieve)
        content = [m for m in members if m.count("/") == 0 and m.endswith(".content")]
        if len(content) != 1:
            raise UnsupportedInputError(
                f"{name} is a ZIP archive but not a reMarkable document (.rmdoc): it has "
                f"{'no' if not content else 'more than one'} .content file.",
                EXPORT_SUPPORTED,
            )
        doc_id = content[0][: -len(".content")]
        page_ids = _page_order(name, _json(name, archive, content[0], limits))
        check_length(name, "a reMarkable document", len(page_ids), limits, sieve)
        rmscene = load_rmscene(name, "a reMarkable document (.rmdoc)")
        text = TextLayer(limits.max_text_tokens)
        pages = Pages(sieve)
        for number, page_id in enumerate(page_ids, start=1):
            member = f"{doc_id}/{page_id}.rm"
            if member in members:
                raw = _inflate(name, archive, member, limits.max_file_bytes)
                page, page_text = draw_page(f"{name} (page {number})", raw, limits, rmscene)
            else:  # a page never written on has no scene file
                page, page_text = Image.new("L", (PAGE_WIDTH, PAGE_HEIGHT), 255), ""
            pages.add(fit(page, limits))
            del page  # one page at a time: a long notebook's pages are never all held
            text.add_read(number, functools.partial(str, page_text))
    if not len(pages):
        raise CorruptInputError(f"{name} is a reMarkable document without pages.", SYNC_AGAIN)
    return pages.document(text.text(), text.cut())


def _members(name: str, archive: zipfile.ZipFile, limits: InputLimits, sieve: PageSieve | None) -> set[str]:
    """The archive's file names, refused before anything is inflated when they are too many or too large, or
    when a name tries to leave the archive (nothing is extracted to disk, but such a file is not a real export)."""
    infos = archive.infolist()
    pages = limits.max_notebook_pages if sieve is not None else limits.max_pages
    if len(infos) > pages * _MEMBERS_PER_PAGE + 16:
        raise InputTooLargeError(
            f"{name} holds {len(infos)} files, more than a reMarkable document of at most {pages} pages.",
            NOTEBOOK_PAGES if sieve is None else LONG_NOTEBOOK,
        )
    total = 0
    names: set[str] = set()
    for info in infos:
        member = info.filename
        parts = member.split("/")
        if member.startswith(("/", "\\")) or "\\" in member or ".." in parts or ":" in parts[0]:
            raise UnsupportedInputError(
                f"{name} is not a reMarkable document: it holds a file named {member[:80]!r}, which points outside it.",
                EXPORT_SUPPORTED,
            )
        total += info.file_size
        if total > limits.max_file_bytes:
            raise InputTooLargeError(
                f"{name} would unpack to more than the limit of {limits.max_file_bytes // (1024 * 1024)} MB.",
                "Export fewer pages, or raise input.max_file_mb in the config.",
            )
        if not info.is_dir():
            names.add(member)
    return names


def _inflate(name: str, archive: zipfile.ZipFile, member: str, limit: int) -> bytes:
    """A member's bytes, at most ``limit`` of them whatever its header claims (a zip bomb lies about its size)."""
    try:
        with archive.open(member) as handle:
            data = handle.read(limit + 1)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,
        RuntimeError,
        ValueError,
        OSError,
        EOFError,
    ) as exc:  # RuntimeError: encrypted
        raise CorruptInputError(
            f"{name} is damaged: its part {member[:80]!r} could not be unpacked.", SYNC_AGAIN, detail=describe(exc)
        ) from None
    if len(data) > limit:
        raise InputTooLargeError(
            f"{name} unpacks to more than it declares (its part {member[:80]!r} exceeds "
            f"{limit // (1024 * 1024)} MB): it is not a real reMarkable export.",
            EXPORT_SUPPORTED,
        )
    return data


def _json(name: str, archive: zipfile.ZipFile, member: str, limits: InputLimits) -> Any:
    raw = _inflate(name, archive, member, min(limits.max_file_bytes, _JSON_BYTES))
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CorruptInputError(
            f"{name} is damaged: its page list ({member[:80]}) is not readable.", SYNC_AGAIN, detail=describe(exc)
        ) from None


def _page_order(name: str, content: Any) -> list[str]:
    """The page ids in the document's order: ``cPages.pages`` (software 3.x, ordered by their ``idx``; deleted
    pages left out), else the older plain ``pages`` list."""
    if not isinstance(content, dict):
        raise CorruptInputError(f"{name} is damaged: its page list is not a JSON object.", SYNC_AGAIN)
    c_pages = content.get("cPages")
    if isinstance(c_pages, dict) and isinstance(c_pages.get("pages"), list):
        entries = [p for p in c_pages["pages"] if isinstance(p, dict) and isinstance(p.get("id"), str)]
        entries = [p for p in entries if not _deleted(p)]
        keys = [_value(p.get("idx")) for p in entries]
        if all(isinstance(k, str) for k in keys):
            entries = [p for _, p in sorted(zip(keys, entries, strict=True), key=lambda pair: str(pair[0]))]
        ids = [str(p["id"]) for p in entries]
    elif isinstance(content.get("pages"), list):
        ids = [p for p in content["pages"] if isinstance(p, str)]
    else:
        raise CorruptInputError(f"{name} is damaged: its .content lists no pages.", SYNC_AGAIN)
    for page_id in ids:
        if not page_id or "/" in page_id or "\\" in page_id or page_id in (".", ".."):
            raise UnsupportedInputError(f"{name} is not a reMarkable document: a page id is not a name.", SYNC_AGAIN)
    return ids


def _value(field: Any) -> Any:
    return field.get("value") if isinstance(field, dict) else None


def _deleted(page: dict[str, Any]) -> bool:
    deleted = page.get("deleted")
    return isinstance(deleted, dict) and bool(deleted.get("value"))
