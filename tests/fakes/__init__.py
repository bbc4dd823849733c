"""Stand-ins for the outside world that tests talk to over real sockets (never mocks of our own code)."""

from tests.fakes.llm_command import FakeCommand
from tests.fakes.llm_server import (
    FakeLLMServer,
    Fault,
    RecordedRequest,
    Route,
    decode_data_url,
    default_answer,
    openai_route,
)
from tests.fakes.routes import all_routes, anthropic_route, gemini_route, ollama_route

__all__ = [
    "FakeCommand",
    "FakeLLMServer",
    "Fault",
    "RecordedRequest",
    "Route",
    "all_routes",
    "anthropic_route",
    "decode_data_url",
    "default_answer",
    "gemini_route",
    "ollama_route",
    "openai_route",
]
