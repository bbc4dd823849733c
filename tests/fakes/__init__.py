"""Stand-ins for the outside world that tests talk to over real sockets (never mocks of our own code)."""

from tests.fakes.llm_server import (
    FakeLLMServer,
    Fault,
    RecordedRequest,
    Route,
    decode_data_url,
    default_answer,
    openai_route,
)

__all__ = [
    "FakeLLMServer",
    "Fault",
    "RecordedRequest",
    "Route",
    "decode_data_url",
    "default_answer",
    "openai_route",
]
