"""The backend registry: from ``llm.backend`` in the config to a ready :class:`Backend`.

Built-in backends are listed as ``"module:function"`` references and imported only when chosen, so an offline
``echo`` set-up never imports the HTTP stack, and a broken optional dependency of one backend cannot stop the
others. Plugins use the same reference form: ``llm.backend: mypackage.module:factory`` directly, or a name that an
installed package registers in the ``eink_llm.backends`` entry-point group (see :mod:`.plugins`). Built-in names
win over plugin names, so a plugin cannot silently replace ``openai``.
"""

from __future__ import annotations

import difflib
import importlib
from typing import cast

from eink_llm.backends import plugins
from eink_llm.backends.base import (
    Backend,
    BackendFactory,
    BackendSettings,
    Capabilities,
    LLMRequest,
    LLMResponse,
    Message,
    ModelOptions,
    PageImage,
    Role,
    Usage,
)
from eink_llm.errors import BackendError

__all__ = [
    "BUILTIN_BACKENDS",
    "Backend",
    "BackendError",
    "BackendFactory",
    "BackendSettings",
    "Capabilities",
    "LLMRequest",
    "LLMResponse",
    "Message",
    "ModelOptions",
    "PageImage",
    "Role",
    "Usage",
    "available_backends",
    "create_backend",
    "missing_settings",
]

#: Built-in backends: name in the config → ``module:factory``. Adding a provider is one line here.
BUILTIN_BACKENDS: dict[str, str] = {
    "anthropic": "eink_llm.backends.anthropic:create",
    "command": "eink_llm.backends.command:create",
    "echo": "eink_llm.backends.echo:create",
    "gemini": "eink_llm.backends.gemini:create",
    "ollama": "eink_llm.backends.ollama:create",
    "openai": "eink_llm.backends.openai:create",
}


#: Settings a built-in backend cannot answer without (checked at start-up, not first on the tablet).
REQUIRED_SETTINGS: dict[str, tuple[str, ...]] = {
    "anthropic": ("model",),
    "gemini": ("model",),
    "ollama": ("model",),
    "openai": ("model",),
}


def missing_settings(settings: BackendSettings) -> list[str]:
    """The required settings of ``settings.backend`` that are empty (``model``, ``base_url``); the command
    backend checks its ``llm.options.command`` when it is built."""
    required = REQUIRED_SETTINGS.get(settings.backend.strip().lower(), ())
    return [name for name in required if not str(getattr(settings, name) or "").strip()]


def available_backends(*, include_plugins: bool = True) -> list[str]:
    """The names ``llm.backend`` accepts, sorted (for error messages, ``--help`` and the docs): the built-in
    ones, plus those installed plugins register (unless ``include_plugins`` is false)."""
    names = set(BUILTIN_BACKENDS)
    if include_plugins:
        names.update(plugins.entry_point_backends())
    return sorted(names)


def create_backend(settings: BackendSettings) -> Backend:
    """Build the backend ``settings.backend`` names; a permanent BackendError if there is none by that name.

    Factories may raise BackendError themselves for settings they cannot use (e.g. an unknown image detail).
    """
    reference = _factory_reference(settings.backend)
    factory = _load_factory(reference, settings.backend)
    backend = factory(settings)
    if not isinstance(backend, Backend):
        raise BackendError(
            f"The LLM backend “{settings.backend}” did not produce a usable backend.",
            "Report this to the backend's author: a backend needs a name, capabilities, complete() and close().",
            detail=f"{reference} returned {type(backend).__name__}",
        )
    return backend


def _factory_reference(name: str) -> str:
    """``module:function`` for a backend name: a built-in, a ``module:factory`` reference, or an entry point."""
    key = name.strip().lower()
    if key in BUILTIN_BACKENDS:
        return BUILTIN_BACKENDS[key]
    if plugins.is_reference(name):
        return name.strip()
    installed = plugins.entry_point_backends()
    if key in installed:
        return installed[key]
    names = sorted({*BUILTIN_BACKENDS, *installed})
    known = ", ".join(names)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    raise BackendError(
        f"There is no LLM backend called “{name}”." + (f" Did you mean “{close[0]}”?" if close else ""),
        f"Set llm.backend in the configuration to one of: {known}; or to a plugin's package.module:factory.",
    )


def _load_factory(reference: str, name: str) -> BackendFactory:
    module_name, _, attribute = reference.partition(":")
    try:
        factory: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            factory = getattr(factory, part)
    except (ImportError, AttributeError) as exc:
        raise BackendError(
            f"The LLM backend “{name}” could not be loaded.",
            "Check that eink-llm (and the package providing this backend) is installed completely.",
            detail=f"{reference}: {type(exc).__name__}: {exc}",
        ) from None
    if not callable(factory):
        raise BackendError(
            f"The LLM backend “{name}” could not be loaded.",
            "Check the backend's name in llm.backend.",
            detail=f"{reference} is not callable",
        )
    return cast(BackendFactory, factory)
