"""The web page (HTML/JS/CSS from ``render/templates``, nothing from elsewhere) and its small JSON API.

The page asks through the OpenAI-compatible streaming route, so what it shows is what any client gets.
``/api/score`` teacher-forces a pasted answer (when the backend can); ``/api/explain`` attributes an answer
(generated, or given and teacher-forced) to the parts of its prompt; ``/api/runs`` lists bench run folders
under the runs directory that hold ``report.html`` or ``metrics.json``, served read-only under ``/runs/<name>/``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import Field

from ..attribution.explain import DEFAULT_METHOD
from ..capability import Capability
from ..errors import CapabilityError, UnknownNameError, UserInputError
from ..estimators.describe import cost_group, cost_of, plain_text
from ..registry import attributors
from ..registry import estimators as estimator_registry
from ..render.colors import DEFAULT_PALETTE, PALETTES
from ..trace import Message
from .errors import APIError
from .planning import default_estimators, max_tokens, plan
from .routes import scored
from .schemas import ChatMessage, ScoreRequest, Strict, parse_body
from .state import require_key, state_of

T = TypeVar("T")

_STATIC = {"app.js": "text/javascript", "popover.js": "text/javascript", "style.css": "text/css"}
#: What each cost group of scores costs on top of the answer, as the page's score picker says it.
COST_HINTS = {
    "trace": "free: read from the answer's own log-probs",
    "pass": "one more model pass each (about as long as the answer)",
    "sampling": "several sampled answers each (n times the answer's time: seconds to minutes)",
}
RUN_FILES = ("report.html", "metrics.json")

router = APIRouter()
api = APIRouter(dependencies=[Depends(require_key)])


def _template(name: str) -> str:
    return resources.files("tokentrust.render").joinpath("templates", name).read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    """The single page: ask or score, coloured tokens, scores, action, past runs."""
    return HTMLResponse(_template("index.html"))


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    if name == "tokens.css":  # the answer's style, shared with the notebook view
        from ..render.html import CSS

        return Response(CSS, media_type="text/css", headers={"Cache-Control": "no-cache"})
    if name not in _STATIC:
        raise APIError(404, f"no static file {name!r}", code="not_found")
    return Response(_template(name), media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})


@api.get("/api/info")
async def info(request: Request) -> dict[str, Any]:
    """Served model, what it can give, limits, default policy and the estimators a request may choose."""
    state = state_of(request)
    caps = await state.run(lambda: state.backend.capabilities)
    rows = []
    for name, cls in estimator_registry.items():
        est = cls()
        cost, hint = cost_group(est), cost_of(est)
        rows.append({
            "id": name, "aliases": estimator_registry.aliases_of(name), "level": est.level.value,
            "is_probability": bool(est.is_probability), "cost": cost, "cost_hint": hint,
            "available": est.requires <= caps, "description": plain_text(cls.__doc__ or ""),
        })
    policy = state.policy
    calibrator = None
    if state.calibrator is not None:
        from ..decide.decision import required_scores

        calibrator = f"{state.calibrator.kind}({', '.join(required_scores(state.calibrator))})"
    explainable = _in_process(state.backend)[0] is not None
    return {
        "model": state.name,
        "backend": str(state.backend.model_id),
        "capabilities": sorted(c.value for c in caps),
        "max_tokens": state.limits.max_tokens,
        "default_max_tokens": state.limits.default_max_tokens,
        "can_score": Capability.FORCED_SCORING in caps,
        "can_stream": Capability.STREAMING in caps,
        "default_estimators": [e.id for e in default_estimators(state)],
        "can_explain": explainable,
        "attribution_methods": [
            {"id": name, "available": explainable and cls.requires <= caps,
             "description": (cls.__doc__ or "").strip().splitlines()[0]}
            for name, cls in attributors.items()],
        "policy": {"score": policy.score, "hedge_below": policy.hedge_below, "low_below": policy.low_below,
                   "abstain_below": policy.abstain_below, "calibrator": calibrator,
                   "guarantee": policy.guarantee.summary() if policy.guarantee is not None else None},
        "cost_hints": COST_HINTS,
        "palettes": {name: {"stops": [[x, list(rgb)] for x, rgb in pal.stops], "low": pal.low, "high": pal.high}
                     for name, pal in PALETTES.items()},
        "default_palette": DEFAULT_PALETTE,
        "estimators": rows,
    }


@api.post("/api/score")
async def score(request: Request) -> dict[str, Any]:
    """Teacher-force ``answer`` after ``prompt`` and return the same extension the proxy adds."""
    state = state_of(request)
    req: ScoreRequest = await parse_body(request, ScoreRequest)
    backend = state.backend
    chosen, policy = await state.run(lambda: plan(state, req.tokentrust))
    if Capability.FORCED_SCORING not in backend.capabilities:
        raise APIError(400, f"{state.name} cannot score a given answer (it gives no teacher-forced log-probs)",
                       code="not_supported")
    top_k = state.limits.top_k

    def work() -> Any:
        return scored(backend, backend.score(req.prompt, req.answer, chat=req.chat, top_k=top_k), chosen, policy)

    return {"tokentrust": (await state.run(work)).to_payload()}


class ExplainRequest(Strict):
    """What to explain: a prompt (or chat messages), optionally the answer to explain (else one is generated),
    the method spec (``name:key=value``), a part of the answer to explain alone, and the source granularity
    (``fields``: template values, each a component)."""

    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    answer: str | None = None
    method: str = DEFAULT_METHOD
    target: str | None = None
    granularity: Literal["token", "word", "component"] = "word"
    fields: dict[str, str] | None = None
    max_tokens: int | None = Field(None, ge=1)
    chat: bool = True


def _in_process(backend: Any) -> tuple[Any, Callable[[Callable[[], T]], T]]:
    """The in-process model behind ``backend`` (``None`` for a server or recordings) and how to run work on it:
    on the scheduler's worker between decoding steps, so nothing else touches the model meanwhile."""
    scheduler = sys.modules.get("tokentrust.backends.scheduler")
    if scheduler is not None and isinstance(backend, scheduler.Scheduler):
        return backend.backend, backend._call  # the scheduler runs its own model work this way
    model = backend if callable(getattr(backend, "engine", None)) else None  # create_app's test, never a request
    return model, lambda fn: fn()


def _explain_prompt(req: ExplainRequest) -> str | list[Message]:
    if (req.prompt is None) == (req.messages is None):
        raise APIError(400, "give either prompt or messages", param="prompt", code="invalid_value")
    if req.messages is not None:
        return [Message(role="system" if m.role == "developer" else m.role,
                        content=m.content if isinstance(m.content, str) else "".join(p.text for p in m.content))
                for m in req.messages]
    if not req.prompt or not req.prompt.strip():
        raise APIError(400, "prompt is empty", param="prompt", code="invalid_value")
    return req.prompt


@api.post("/api/explain")
async def explain(request: Request) -> dict[str, Any]:
    """Which parts of the prompt made the model say its answer: the :class:`~tokentrust.attribution.Attribution`
    JSON, with ``extras["sentences"]`` (one sentence per target). 400 for what the backend cannot serve."""
    from ..attribution import explain as run_explain
    from ..attribution import make_attributor
    from ..attribution.verbalize import explain_sentence
    from ..capability import check_compatible
    from ..config import GenerationConfig

    state = state_of(request)
    req: ExplainRequest = await parse_body(request, ExplainRequest)
    prompt = _explain_prompt(req)
    try:
        attributor = make_attributor(req.method)
    except UserInputError as exc:
        code = "unknown_method" if isinstance(exc, UnknownNameError) else "invalid_value"
        raise APIError(400, str(exc), param="method", code=code) from None
    model, on_model = _in_process(state.backend)
    try:
        if model is None:
            raise CapabilityError(f"{state.name} is not an in-process model: attribution needs its embeddings "
                                  "(serve a local model to explain answers)")
        check_compatible([attributor], model)
    except CapabilityError as exc:
        raise APIError(400, str(exc), param="method", code="method_not_supported") from None
    backend, top_k = state.backend, state.limits.top_k
    if req.answer is not None:
        if not req.answer.strip():
            raise APIError(400, "answer is empty", param="answer", code="invalid_value")
        trace = await state.run(lambda: backend.score(prompt, req.answer, chat=req.chat, top_k=top_k))
    else:
        cfg = GenerationConfig(max_new_tokens=max_tokens(state, req.max_tokens), top_k=top_k, chat=req.chat)
        trace = await state.run(lambda: backend.generate(prompt, cfg))

    def work() -> Any:
        result = run_explain(trace, attributor, backend=model, target=req.target, granularity=req.granularity,
                             fields=req.fields)
        sentences = [explain_sentence(result, i) for i in range(len(result.targets))]
        return result.model_copy(update={"extras": {**result.extras, "sentences": sentences}})

    try:
        result = await state.run(lambda: on_model(work))
    except CapabilityError as exc:
        raise APIError(400, str(exc), param="method", code="method_not_supported") from None
    except UserInputError as exc:
        param = "target" if req.target is not None and "target" in str(exc) else None
        raise APIError(400, str(exc), param=param, code="invalid_value") from None
    return result.model_dump(mode="json")


def _run_summary(folder: Path) -> dict[str, Any]:
    """Model, dataset, level, item count and accuracy from a run's ``metrics.json`` (empty when it has none or
    it cannot be read)."""
    try:
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(metrics, dict):
        return {}
    dataset = metrics.get("dataset")
    accuracy = metrics.get("accuracy")
    return {"model": metrics.get("model") if isinstance(metrics.get("model"), str) else None,
            "dataset": dataset.get("name") if isinstance(dataset, dict) else None,
            "level": metrics.get("level") if isinstance(metrics.get("level"), str) else "sequence",
            "n_items": metrics.get("n_items") if isinstance(metrics.get("n_items"), int) else None,
            "accuracy": float(accuracy) if isinstance(accuracy, int | float) else None}


def list_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """Run folders (one or two levels below ``runs_dir``) holding a report or metrics, newest first, with the
    model, dataset and accuracy their metrics record (``None`` where they record none)."""
    if not runs_dir.is_dir():
        return []
    found = []
    for folder in [*runs_dir.glob("*/"), *runs_dir.glob("*/*/")]:
        files = [f for f in RUN_FILES if (folder / f).is_file()]
        if not files:
            continue
        name = folder.relative_to(runs_dir).as_posix()
        mtime = max((folder / f).stat().st_mtime for f in files)
        summary = {"model": None, "dataset": None, "level": None, "n_items": None, "accuracy": None,
                   **_run_summary(folder)}
        found.append({"name": name, "modified": mtime, **summary,
                      "files": {f: f"/runs/{name}/{f}" for f in files}})
    return sorted(found, key=lambda r: r["modified"], reverse=True)


@api.get("/api/runs")
async def runs(request: Request) -> dict[str, Any]:
    state = state_of(request)
    return {"runs_dir": str(state.runs_dir), "runs": list_runs(state.runs_dir)}


@api.get("/runs/{path:path}", include_in_schema=False)
async def run_file(request: Request, path: str) -> FileResponse:
    """A run's report or metrics (``RUN_FILES``) inside the runs directory; nothing else (traces, items and
    specs stay private) and nothing outside it."""
    root = state_of(request).runs_dir.resolve()
    target = (root / path).resolve()
    if target.name not in RUN_FILES or not target.is_relative_to(root) or not target.is_file():
        raise APIError(404, f"no file {path!r} in the runs directory (served: {', '.join(RUN_FILES)} of each run)",
                       code="not_found")
    return FileResponse(target)


router.include_router(api)
