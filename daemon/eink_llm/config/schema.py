"""The options: every section and field, with its default and its documentation (``description``).

A test keeps ``config.example.yaml`` valid and in step with this schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from eink_llm.backends.base import BackendSettings
from eink_llm.config.messages import Marks, did_you_mean, key_path, place, validation_error
from eink_llm.economy import MIN_STROKE_PX
from eink_llm.errors import ConfigError
from eink_llm.reader.limits import InputLimits
from eink_llm.retry import RetryPolicy
from eink_llm.watch_names import is_notebook_name

APP = "eink-llm"
DEFAULT_PROFILE = "default"
ENV_CONFIG = "EINK_LLM_CONFIG"
DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant answering a question handwritten on an e-ink tablet. "
    "The question arrives as images of the pages. Read the handwriting carefully and answer it directly. "
    "The pages are in shades of grey: light strokes are writing too (a grey pen, pencil or colour ink), and a "
    "wide light-grey band over words is a highlighter; highlighted, underlined or circled words are what the "
    "writer emphasises. "
    "Write in Markdown: short paragraphs, headings and lists where they help, tables only when they "
    "clarify. Your answer is printed on a small black-and-white screen, so be clear and concise and never "
    "use colour or images."
    "\n\n"
    "When a drawing answers better than words (a circuit, a cycle, a graph of a function), you may include one "
    "as a fenced code block: ```svg with one self-contained SVG (a viewBox, black strokes, simple shapes, paths "
    "and text; no images, links or scripts), or ```plot with YAML "
    "such as `title: …`, `x: [0, 10]`, `xlabel: …`, `ylabel: …`, `functions: [sin(x), exp(-x/4)*cos(2x)]`, "
    "`series: [{label: data, points: [[0, 1], [1, 2]]}]`. It is drawn at the width of the page (to show SVG "
    "code as text instead, fence it as ```xml)."
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FolderConfig(_Section):
    path: Path = Field(
        description="Folder to watch (recursively). Relative paths are relative to the config file, `~` is "
        "expanded. A missing folder is created at start when its parent exists; a missing parent (usually an "
        "unmounted disk) is refused.",
    )
    user: str | None = Field(
        default=None, description="Stored as the user_id of conversations started from this folder."
    )
    profile: str = Field(default=DEFAULT_PROFILE, description="The profile that answers files in this folder.")
    subfolders: dict[str, str] = Field(
        default_factory=dict,
        description="Profiles for subfolders, e.g. `{math: tutor, translate: translator}`; the deepest match wins.",
    )
    conversations: Literal["per-file", "per-subfolder", "per-folder"] = Field(
        default="per-file",
        description="Folder mode. `per-file`: each new file opens a conversation (unless its name, metadata or "
        "an earlier version ties it to one). `per-subfolder`: all files in the same subfolder belong to that "
        "subfolder's one conversation (files directly in this folder stay per-file). `per-folder`: this folder "
        "too is one conversation.",
    )
    status_page: bool = Field(
        default=True,
        description="Keep the daemon's status page (status_page.name) at the top of this folder, when "
        "status_page.enabled is on.",
    )
    settle_seconds: float | None = Field(
        default=None,
        ge=0,
        le=3600,
        description="This folder's settle period (seconds); unset: watch.settle_seconds.",
    )
    notebook_settle_seconds: float | None = Field(
        default=None,
        ge=0,
        le=3600,
        description="This folder's settle period for native notebooks (.note, .rm, .rmdoc); unset: "
        "watch.notebook_settle_seconds.",
    )

    def conversation_folder(self, path: Path) -> Path | None:
        """In folder mode, the folder whose one conversation a file belongs to; ``None`` when per-file."""
        directory = path.parent
        if self.conversations == "per-file" or not directory.is_relative_to(self.path):
            return None
        if self.conversations == "per-subfolder" and directory == self.path:
            return None
        return directory

    def profile_for(self, path: Path) -> str:
        """The profile of a file below this folder: its deepest configured subfolder's, else the folder's."""
        try:
            relative = path.parent.relative_to(self.path)
        except ValueError:
            return self.profile
        best, depth = self.profile, -1
        for subfolder, profile in self.subfolders.items():
            parts = Path(subfolder).parts
            if relative.parts[: len(parts)] == parts and len(parts) > depth:
                best, depth = profile, len(parts)
        return best


class WatchConfig(_Section):
    folders: list[FolderConfig] = Field(
        default_factory=lambda: [FolderConfig(path=Path("inbox"))],
        min_length=1,
        description="Folders synced from the tablet. Each entry is a path, or a mapping with `path:` and `user:`.",
    )
    settle_seconds: float = Field(
        default=2.0,
        ge=0,
        le=3600,
        description="A file is taken only after its size and modification time stayed unchanged this long.",
    )
    notebook_settle_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="Native notebooks (.note, .rm, .rmdoc) change in place while you write (the tablet saves "
        "every few seconds): one is taken only after it stayed unchanged this long, so a page being written gets "
        "one answer. Never shorter than the folder's settle_seconds.",
    )
    polling: bool | Literal["auto"] = Field(
        default="auto",
        description="`auto` uses inotify and falls back to polling on network filesystems or when the watch "
        "limit is hit; `true` always polls (SMB/NFS mounts, containers); `false` never polls.",
    )
    polling_interval_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="How often the folders are polled when polling is used."
    )

    def settle_seconds_for(self, folder: FolderConfig | None, name: str) -> float:
        """How long a file named ``name`` in ``folder`` (``None``: not a configured one) must stay unchanged."""
        plain = self.settle_seconds
        notebook = self.notebook_settle_seconds
        if folder is not None:
            plain = folder.settle_seconds if folder.settle_seconds is not None else plain
            notebook = folder.notebook_settle_seconds if folder.notebook_settle_seconds is not None else notebook
        return max(plain, notebook) if is_notebook_name(name) else plain

    @field_validator("folders", mode="before")
    @classmethod
    def _folder_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"path": item} if isinstance(item, str | Path) else item for item in value]
        return value


class LLMConfig(_Section):
    backend: str = Field(
        default="echo",
        description="Which LLM backend answers: `echo` (offline, shows what it received), `openai` (any "
        "OpenAI-compatible server: OpenAI, vLLM, LM Studio, llama.cpp, OpenRouter, Ollama's /v1), `anthropic`, "
        "`gemini`, `ollama` (native API), `command` (your own program), a plugin name, or `package.module:factory`.",
    )
    base_url: str | None = Field(
        default=None,
        description="The server's API root, e.g. `https://api.openai.com/v1` or `http://localhost:11434/v1`. "
        "Empty means the backend's default.",
    )
    api_key: SecretStr | None = Field(
        default=None, description="API key. Write `${OPENAI_API_KEY}` to read it from the environment."
    )
    model: str | None = Field(default=None, description="Model name, e.g. `gpt-4o-mini` or `llama3.2-vision`.")
    timeout_seconds: float = Field(
        default=120.0, gt=0, le=3600, description="How long one request to the model may take."
    )
    max_output_tokens: int = Field(default=2048, ge=1, description="Upper bound on the length of an answer.")
    context_tokens: int = Field(
        default=128_000,
        ge=1,
        description="The model's context window (estimated tokens): a question, its page images, the "
        "conversation sent with it and max_output_tokens for the answer must fit, or the typed text and then "
        "older conversation are left out. 128,000 suits current cloud models; set your local model's size "
        "(with Ollama, options.num_ctx is used when it is smaller).",
    )
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="Sampling temperature; empty keeps the model's default."
    )
    system_prompt: str = Field(default=DEFAULT_SYSTEM_PROMPT, description="Instructions sent before every question.")
    min_stroke_px: float = Field(
        default=MIN_STROKE_PX,
        ge=1,
        le=8,
        description="How thin a pen stroke may become when pages are scaled down to save image tokens, in pixels. "
        "2 keeps handwriting legible. Lower it (1 at the least) only to pay fewer tokens on OpenAI's tile-billed "
        "models (gpt-4o, gpt-4.1, gpt-5), at the risk of misread words; see docs/page-economy.md.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Backend-specific extras: `detail`, `max_tokens_field` (openai); `anthropic_version` "
        "(anthropic); `num_ctx`, `keep_alive` (ollama); `command: [argv, …]` (command). See docs/backends.md.",
    )

    def backend_settings(self) -> BackendSettings:
        return BackendSettings(
            backend=self.backend,
            base_url=self.base_url or None,
            api_key=self.api_key.get_secret_value() if self.api_key else None,
            model=self.model,
            timeout_seconds=self.timeout_seconds,
            extra=dict(self.options),
        )


class RetryConfig(_Section):
    max_attempts: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Tries per question when the model is unreachable, times out or is overloaded (429, 5xx); "
        "after the last one the answer is an ERROR_ PDF. Permanent errors (bad key, bad request) are not retried.",
    )
    initial_delay_seconds: float = Field(
        default=2.0, gt=0, description="Wait before the second try; it doubles with every try (with jitter)."
    )
    max_delay_seconds: float = Field(
        default=300.0, gt=0, description="Longest wait between tries, also the cap on a server's Retry-After."
    )

    outage_after_failures: int = Field(
        default=3,
        ge=1,
        description="After this many temporary failures in a row the model counts as down: no new questions are "
        "sent, one is tried every probe_interval_seconds, and tries during the outage do not use up max_attempts.",
    )
    probe_interval_seconds: float = Field(
        default=30.0, gt=0, description="While the model is down, how often one question is tried to see if it is back."
    )

    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.initial_delay_seconds, self.max_delay_seconds)


class InputConfig(_Section):
    max_file_mb: float = Field(default=50, gt=0, description="Larger input files are refused with an ERROR_ PDF.")
    max_pages: int = Field(
        default=20,
        ge=1,
        description="Pages one question may carry: an input with more pages is refused with an ERROR_ PDF; of a "
        "native notebook (.note, .rmdoc), the pages new or changed since it was last answered.",
    )
    max_notebook_pages: int = Field(
        default=200,
        ge=1,
        le=10000,
        description="How long a native notebook (.note, .rmdoc) may grow: it is read one page at a time and only "
        "its new or changed pages are carried (at most max_pages), so memory does not grow with it. Longer: an "
        "ERROR_ PDF.",
    )
    max_page_megapixels: float = Field(
        default=40, gt=0, description="Largest decoded size of one page or image, in millions of pixels."
    )
    render_dpi: int = Field(default=150, ge=50, le=600, description="Resolution at which PDF pages are rasterised.")
    max_long_edge_px: int = Field(
        default=1568, ge=256, le=8000, description="Pages are scaled down so their long edge is at most this."
    )
    max_decode_memory_mb: int = Field(
        default=1024,
        ge=200,
        le=65536,
        description="Memory (address space, MB) the separate process that reads one input may use; a file that "
        "needs more gets an ERROR_ PDF and only that process is restarted.",
    )
    max_decode_cpu_seconds: float = Field(
        default=60, gt=0, le=3600, description="CPU time the reading process may spend on one input (seconds)."
    )
    max_decode_seconds: float = Field(
        default=90,
        gt=0,
        le=7200,
        description="Wall-clock time one input may take to read (seconds); past it the reading process is killed.",
    )

    def limits(self) -> InputLimits:
        return InputLimits(
            max_file_bytes=int(self.max_file_mb * 1024 * 1024),
            max_pages=self.max_pages,
            max_notebook_pages=self.max_notebook_pages,
            max_page_pixels=int(self.max_page_megapixels * 1_000_000),
            render_dpi=self.render_dpi,
            max_long_edge_px=self.max_long_edge_px,
            max_decode_memory_bytes=self.max_decode_memory_mb * 1024 * 1024,
            max_decode_cpu_seconds=self.max_decode_cpu_seconds,
            max_decode_seconds=self.max_decode_seconds,
        )


class ContextConfig(_Section):
    history_tokens: int = Field(
        default=6000,
        ge=0,
        description="Budget for what a follow-up is told about the conversation so far (estimated tokens): its "
        "rolling summary, the most recent exchanges in full, and the most relevant older ones.",
    )
    question_tokens: int = Field(
        default=8000,
        ge=0,
        description="Budget for an input's own typed text (its PDF text layer, estimated tokens, all pages "
        "together): longer text is cut, and the answer says so. 0 sends no typed text, only the page images.",
    )
    memory: bool = Field(
        default=False,
        description="Also look for relevant exchanges in your other conversations (full-text search), not only "
        "in the current one.",
    )
    transcribe: bool = Field(
        default=True,
        description="Ask the model to write out what it read from your handwriting; it is stored, searchable, "
        "and shown at the top of the answer as “You asked: …”.",
    )
    summaries: bool = Field(
        default=True,
        description="When a conversation outgrows history_tokens, ask the model (one extra short request) to "
        "update a rolling summary of the older exchanges.",
    )


class OutputConfig(_Section):
    device: str | dict[str, Any] = Field(
        default="remarkable2",
        description="Page size of answer PDFs: remarkable2, remarkable-paper-pro, remarkable-move, boox-note-air, "
        "boox-note-air-c, supernote-nomad, supernote-manta, kindle-scribe, a4, a5, letter; or a custom page as "
        "`WxH` in mm (`120x170`) or a mapping `{width_mm: 120, height_mm: 170, margins_mm: [8, 8, 10, 8]}`.",
    )
    font_size: float = Field(default=11.0, ge=8, le=24, description="Body text size in points.")
    reply_page: bool = Field(
        default=True,
        description="End each answer with a lined page to write the follow-up on; sync the file back and the "
        "new handwriting continues the conversation.",
    )


class StorageConfig(_Section):
    database: Path | None = Field(
        default=None,
        description="SQLite file with the queue and every exchange. Empty means `$STATE_DIRECTORY/eink-llm.sqlite3` "
        "under systemd, else `$XDG_STATE_HOME/eink-llm/eink-llm.sqlite3`. Keep it out of the synced folder.",
    )
    keep_answer_pdfs_days: int = Field(
        default=365,
        ge=0,
        description="How long a copy of each answer PDF is kept in the database (about 30-100 KB an answer) to find "
        "exactly what you wrote on it when it comes back. After that an annotated answer still continues its "
        "conversation, but its whole pages are sent. 0 keeps none.",
    )
    busy_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How long a database write waits for another program's lock (a backup, an open sqlite3 "
        "shell) before the daemon counts the database as locked, goes on with its other work and tries again "
        "later. Takes effect at the next restart.",
    )


class ServiceConfig(_Section):
    workers: int = Field(default=2, ge=1, le=16, description="How many questions are answered at once.")
    rescan_seconds: float = Field(
        default=300, ge=0, description="Full rescan of the folders to catch missed events; 0 turns it off."
    )
    shutdown_grace_seconds: float = Field(
        default=30, ge=0, description="On stop, how long an answer in progress may take to finish."
    )


class StatusPageConfig(_Section):
    enabled: bool = Field(
        default=True,
        description="Keep a one-page PDF at the top of each watched folder that says, on the tablet, whether the "
        "daemon runs, what it is answering, whether the AI service answers, the budgets and the last answers. "
        "Turn it off for one folder with `status_page: false` in its entry under watch.folders; a page of ours "
        "that nobody wrote on is then removed.",
    )
    name: str = Field(
        default="STATUS.pdf",
        description="The status page's file name. A file of this name at the top of a watched folder is never "
        "taken as a question; what you write on it changes nothing.",
    )
    min_interval: float = Field(
        default=60.0,
        ge=0,
        le=86400,
        description="Seconds between two rewrites of the page at the least, so the sync client is not kept busy; "
        "it is rewritten only when what it shows has changed (and once more when the daemon stops).",
    )

    @field_validator("name")
    @classmethod
    def _plain_pdf_name(cls, value: str) -> str:
        name = value.strip()
        if (
            not name.lower().endswith(".pdf")
            or len(name) > 100
            or any(c in name for c in '/\\:*?"<>|')
            or any(ord(c) < 32 for c in name)
            or name.startswith((".", "RESPONSE_", "ERROR_", "~"))
        ):
            raise ValueError(
                "must be a plain file name ending in .pdf (no folder, not hidden, not RESPONSE_/ERROR_), "
                "e.g. STATUS.pdf"
            )
        return name


class LoggingConfig(_Section):
    format: Literal["auto", "console", "json"] = Field(
        default="auto", description="`auto`: readable on a terminal, JSON lines otherwise (journald)."
    )
    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Least severe level logged."
    )


class BudgetConfig(_Section):
    daily_tokens: int | None = Field(default=None, ge=0, description="Tokens a day (UTC) this profile may use.")
    monthly_tokens: int | None = Field(default=None, ge=0, description="Tokens a calendar month (UTC).")
    daily_cost: float | None = Field(default=None, ge=0, description="Spending a day (UTC), in your currency.")
    monthly_cost: float | None = Field(default=None, ge=0, description="Spending a calendar month (UTC).")
    input_price_per_million: float = Field(default=0, ge=0, description="Price of a million input tokens.")
    output_price_per_million: float = Field(default=0, ge=0, description="Price of a million output tokens.")

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_price_per_million + output_tokens * self.output_price_per_million) / 1e6


class ProfileConfig(_Section):
    llm: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the `llm:` section for this profile (backend, model, prompt…)."
    )
    output: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the `output:` section (device, font_size)."
    )
    fallback: list[str] = Field(
        default_factory=list,
        description="Profiles tried in order when this one fails permanently (bad key, unknown model) or is "
        "over budget.",
    )
    budget: BudgetConfig = Field(default_factory=BudgetConfig, description="Optional caps and prices.")


@dataclass(frozen=True, slots=True)
class Profile:
    """A profile's effective settings: the top-level sections with the profile's overrides applied."""

    name: str
    llm: LLMConfig
    output: OutputConfig
    fallback: tuple[str, ...]
    budget: BudgetConfig


class Config(_Section):
    watch: WatchConfig = Field(default_factory=WatchConfig, description="What to watch.")
    llm: LLMConfig = Field(default_factory=LLMConfig, description="Which model answers, and how.")
    retry: RetryConfig = Field(default_factory=RetryConfig, description="What happens when the model fails.")
    input: InputConfig = Field(default_factory=InputConfig, description="Limits on what is read.")
    context: ContextConfig = Field(default_factory=ContextConfig, description="What earlier conversation is sent.")
    output: OutputConfig = Field(default_factory=OutputConfig, description="How answers are laid out.")
    storage: StorageConfig = Field(default_factory=StorageConfig, description="Where the history is kept.")
    service: ServiceConfig = Field(default_factory=ServiceConfig, description="How the daemon runs.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="What is logged, and how.")
    status_page: StatusPageConfig = Field(
        default_factory=StatusPageConfig, description="The status page in each watched folder."
    )
    profiles: dict[str, ProfileConfig] = Field(
        default_factory=dict,
        description="Named sets of model and layout settings that folders pick with `profile:`. The profile "
        "`default` is the top-level llm/output sections; define it here to give it a budget or a fallback.",
    )

    def profile(self, name: str, marks: Marks | None = None) -> Profile:
        """Effective settings of a profile. Raises ConfigError for an unknown name or invalid overrides."""
        if name != DEFAULT_PROFILE and name not in self.profiles:
            known = sorted({DEFAULT_PROFILE, *self.profiles})
            raise ConfigError(
                f"There is no profile named {name!r}.{did_you_mean(name, known)}",
                f"Use one of: {', '.join(known)}, or define it under profiles:.",
            )
        spec = self.profiles.get(name, ProfileConfig())
        try:
            llm = LLMConfig.model_validate({**self.llm.model_dump(exclude_unset=True), **spec.llm})
        except ValidationError as exc:
            raise config_error(exc, prefix=("profiles", name, "llm"), model=LLMConfig, marks=marks) from None
        try:
            output = OutputConfig.model_validate({**self.output.model_dump(exclude_unset=True), **spec.output})
        except ValidationError as exc:
            raise config_error(exc, prefix=("profiles", name, "output"), model=OutputConfig, marks=marks) from None
        return Profile(name, llm, output, tuple(spec.fallback), spec.budget)

    def profile_names(self) -> list[str]:
        return [DEFAULT_PROFILE, *(n for n in self.profiles if n != DEFAULT_PROFILE)]

    def folder_for(self, path: Path) -> FolderConfig | None:
        """The deepest watched folder holding ``path``, if any."""
        best: FolderConfig | None = None
        for folder in self.watch.folders:
            if path.is_relative_to(folder.path) and (best is None or len(folder.path.parts) > len(best.path.parts)):
                best = folder
        return best

    def conversation_folder(self, path: Path) -> Path | None:
        """Folder mode: the folder whose one conversation ``path`` belongs to, if its watched folder says so."""
        folder = self.folder_for(path)
        return folder.conversation_folder(path) if folder else None

    def profile_for(self, path: Path) -> str:
        """Which profile answers a file: that of the deepest watched folder holding it, else `default`."""
        folder = self.folder_for(path)
        return folder.profile_for(path) if folder else DEFAULT_PROFILE

    def profile_references(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Every place a profile is named: (key path, name)."""
        refs: list[tuple[tuple[str | int, ...], str]] = []
        for index, folder in enumerate(self.watch.folders):
            refs.append((("watch", "folders", index, "profile"), folder.profile))
            refs += [(("watch", "folders", index, "subfolders", sub), p) for sub, p in folder.subfolders.items()]
        for name, spec in self.profiles.items():
            refs += [(("profiles", name, "fallback", i), p) for i, p in enumerate(spec.fallback)]
        return refs

    def profile_problems(self, marks: Marks | None = None) -> list[str]:
        """Every unknown profile name, where it was used, and every profile whose overrides are invalid."""
        problems = []
        known = {DEFAULT_PROFILE, *self.profiles}
        for where, name in self.profile_references():
            if name not in known:
                problems.append(
                    f"{key_path(where)}{place(where, marks)}: there is no profile named {name!r}."
                    f"{did_you_mean(name, known)} Profiles: {', '.join(sorted(known))}; define others under profiles:."
                )
        for name in self.profile_names():
            try:
                self.profile(name, marks)
            except ConfigError as exc:
                problems.append(exc.what.removeprefix("The configuration is not valid:\n  "))
        return problems

    def check_profiles(self) -> None:
        """Every profile named anywhere exists and validates; all problems in one ConfigError."""
        problems = self.profile_problems()
        if problems:
            raise ConfigError(
                "The configuration is not valid:\n  " + "\n  ".join(problems),
                "Fix these entries; config.example.yaml documents every option.",
            )


def config_error(
    exc: ValidationError,
    prefix: tuple[str | int, ...] = (),
    *,
    model: type[BaseModel] | None = None,
    marks: Marks | None = None,
) -> ConfigError:
    """See :func:`eink_llm.config.messages.validation_error` (the whole config unless ``model`` says which section)."""
    return validation_error(exc, prefix, model=model or Config, root=Config, marks=marks)
