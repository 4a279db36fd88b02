"""One tested forward function every attribution method calls: teacher-forced log-probs of the answer's
tokens given a (perturbed) prompt, in batches.

The input is the prompt exactly as the model read it (the backend's rendering: chat template, special
tokens) followed by the trace's answer tokens, at positions ``0 … L-1`` with no padding, so the unperturbed
log-probs equal the trace's (checked by :meth:`TargetScorer.check`). A perturbation changes prompt
*embeddings* only: a removed token's embedding becomes the baseline (zeros, as Captum's default), a
replaced token takes another token's embedding; gradients are taken with respect to the prompt
embeddings. Every forward row and backward pass is counted (``forwards``, ``backwards``) for the benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..backends.cancel import current
from ..capability import Capability
from ..errors import CapabilityError, UserInputError
from ..trace import Trace


class TargetScorer:
    """Log-probs of ``trace``'s answer tokens under perturbations of its prompt, on an in-process model."""

    def __init__(self, backend: Any, trace: Trace, *, batch_size: int = 16) -> None:
        import torch

        model = getattr(backend, "model", None)
        if model is None or not hasattr(model, "get_input_embeddings"):
            raise CapabilityError(f"attribution needs an in-process transformers model (gradients, embeddings); "
                                  f"{getattr(backend, 'model_id', backend)!r} is not one")
        if Capability.FORCED_SCORING not in backend.capabilities:
            raise CapabilityError(f"{backend.model_id} cannot score a given answer")
        if not trace.token_ids:
            raise UserInputError("the answer has no tokens to explain")
        rendered = backend.render(trace.prompt, chat=trace.config.chat)
        self.backend, self.trace, self.model = backend, trace, model
        self.batch_size = max(1, int(batch_size))
        self.prompt_ids: list[int] = list(rendered.token_ids or [])
        self.answer_ids: list[int] = list(trace.token_ids)
        self.n_prompt, self.n_answer = len(self.prompt_ids), len(self.answer_ids)
        device = next(model.parameters()).device
        self.ids = torch.tensor([*self.prompt_ids, *self.answer_ids], device=device)
        with torch.no_grad():
            self.embeds = model.get_input_embeddings()(self.ids[None])[0].detach()  # (L, d)
        self.baseline = torch.zeros_like(self.embeds[0])
        self.forwards = 0
        self.backwards = 0

    @property
    def prompt_embeds(self) -> Any:
        return self.embeds[: self.n_prompt]

    def embed_ids(self, ids: Any) -> Any:
        """Embeddings of token ids (any shape)."""
        import torch

        with torch.no_grad():
            return self.model.get_input_embeddings()(ids).detach()

    def logprobs(self, prompt_embeds: Any, *, grad: bool = False) -> Any:
        """``(B, n_answer)`` log-probs of the answer tokens given ``B`` prompt embeddings ``(B, n_prompt, d)``.
        Without ``grad`` rows go through in batches of :attr:`batch_size` under ``no_grad``."""
        targets = self.ids[self.n_prompt :]
        return self.reduced(prompt_embeds, lambda lp: lp.gather(-1, targets.expand(lp.shape[0], -1)[..., None])
                            .squeeze(-1), grad=grad)

    def reduced(self, prompt_embeds: Any, reduce: Any, *, grad: bool = False) -> Any:
        """``reduce(logp)`` of the full next-token log-probs ``(b, n_answer, V)`` at the answer's positions, for
        ``B`` prompt embeddings, concatenated over batches (ReAGent's top-k test and faithfulness distances read
        the whole distribution; :meth:`logprobs` keeps the answer tokens' entries)."""
        import torch

        if prompt_embeds.dim() == 2:
            prompt_embeds = prompt_embeds[None]
        if grad:
            return reduce(self._forward(prompt_embeds))
        out = []
        with torch.no_grad():
            for start in range(0, prompt_embeds.shape[0], self.batch_size):
                out.append(reduce(self._forward(prompt_embeds[start : start + self.batch_size])))
        return torch.cat(out)

    def _forward(self, prompt_embeds: Any) -> Any:
        import torch

        token = current()
        if token is not None:  # a served request whose client left or whose time is up: stop here
            token.check()
        b = prompt_embeds.shape[0]
        answer = self.embeds[self.n_prompt :].expand(b, -1, -1)
        inputs = torch.cat([prompt_embeds.to(answer.dtype), answer], dim=1)
        positions = torch.arange(inputs.shape[1], device=inputs.device).expand(b, -1)
        logits = self.model(inputs_embeds=inputs, position_ids=positions).logits
        self.forwards += b
        return torch.log_softmax(logits[:, self.n_prompt - 1 : -1].float(), dim=-1)

    def masked(self, keep: Any) -> Any:
        """Prompt embeddings with the tokens where ``keep`` (``(B, n_prompt)`` bool) is false set to the baseline."""
        keep = keep.to(self.embeds.device)
        return self.prompt_embeds[None] * keep[..., None] + self.baseline * (~keep)[..., None]

    def target_logprob(self, logprobs: Any, targets: Sequence[Sequence[int]]) -> Any:
        """``(B, n_targets)``: each target's log-prob (the sum over its answer tokens) from ``(B, n_answer)``."""
        import torch

        return torch.stack([logprobs[:, list(t)].sum(-1) for t in targets], dim=-1)

    def check(self, tol: float = 1e-3) -> float:
        """Largest difference between the unperturbed log-probs and the trace's; raises if above ``tol``
        (the attribution would explain another number than the one the user saw)."""
        import numpy as np

        got = self.logprobs(self.prompt_embeds)[0].cpu().numpy()
        diff = float(np.max(np.abs(got - np.asarray(self.trace.logprobs)))) if self.n_answer else 0.0
        if diff > tol:
            raise UserInputError(f"the model's log-probs differ from the trace's by {diff:.2g} (> {tol}): "
                                 "explain the trace with the model and prompt that produced it")
        return diff
