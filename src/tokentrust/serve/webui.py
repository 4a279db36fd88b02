"""The web page (HTML/JS/CSS from ``render/templates``, nothing from elsewhere) and its small JSON API.

The page asks through the OpenAI-compatible streaming route, so what it shows is what any client gets.
``/api/score`` teacher-forces a pasted answer (when the backend can); ``/api/runs`` lists bench run folders
under the runs directory that hold ``report.html`` or ``metrics.json``, served read-only under ``/runs/<name>/``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from ..capability import Capability
from ..registry import estimators as estimator_registry
from .errors import APIError
from .planning import default_estimators, plan
from .routes import scored
from .schemas import ScoreRequest, parse_body
from .state import require_key, state_of

_STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
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
        rows.append({
            "id": name, "aliases": estimator_registry.aliases_of(name), "level": est.level.value,
            "is_probability": bool(est.is_probability),
            "available": est.requires <= caps, "description": (cls.__doc__ or "").strip().splitlines()[0],
        })
    policy = state.policy
    return {
        "model": state.name,
        "backend": str(state.backend.model_id),
        "capabilities": sorted(c.value for c in caps),
        "max_tokens": state.limits.max_tokens,
        "default_max_tokens": state.limits.default_max_tokens,
        "can_score": Capability.FORCED_SCORING in caps,
        "can_stream": Capability.STREAMING in caps,
        "default_estimators": [e.id for e in default_estimators(state)],
        "policy": {"score": policy.score, "hedge_below": policy.hedge_below, "abstain_below": policy.abstain_below},
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


def list_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """Run folders (one or two levels below ``runs_dir``) holding a report or metrics, newest first."""
    if not runs_dir.is_dir():
        return []
    found = []
    for folder in [*runs_dir.glob("*/"), *runs_dir.glob("*/*/")]:
        files = [f for f in RUN_FILES if (folder / f).is_file()]
        if not files:
            continue
        name = folder.relative_to(runs_dir).as_posix()
        mtime = max((folder / f).stat().st_mtime for f in files)
        found.append({"name": name, "modified": mtime, "files": {f: f"/runs/{name}/{f}" for f in files}})
    return sorted(found, key=lambda r: r["modified"], reverse=True)


@api.get("/api/runs")
async def runs(request: Request) -> dict[str, Any]:
    state = state_of(request)
    return {"runs_dir": str(state.runs_dir), "runs": list_runs(state.runs_dir)}


@api.get("/runs/{path:path}", include_in_schema=False)
async def run_file(request: Request, path: str) -> FileResponse:
    """A file inside the runs directory (reports link their plots relatively); nothing outside it."""
    root = state_of(request).runs_dir.resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise APIError(404, f"no file {path!r} in the runs directory", code="not_found")
    return FileResponse(target)


router.include_router(api)
