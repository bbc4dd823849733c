"""The demo plugin's backend: answers in capitals with the number of pages it received."""

from __future__ import annotations

from eink_llm.backends import BackendSettings, Capabilities, LLMRequest, LLMResponse, Usage


class DemoBackend:
    name = "demo-plugin"
    capabilities = Capabilities(media_types=("image/png",), max_images=4)

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings

    def complete(self, request: LLMRequest) -> LLMResponse:
        text = f"DEMO PLUGIN: {len(request.pages)} PAGE(S), MODEL {self.settings.model or 'NONE'}"
        return LLMResponse(text, Usage(1, 1), "demo")

    def close(self) -> None:
        pass


def create(settings: BackendSettings) -> DemoBackend:
    return DemoBackend(settings)
