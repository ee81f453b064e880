"""The logit lens: what each layer's residual stream would predict as the next token.

At layer l the read-out is softmax(W_U · norm(resid_post_l)), with the model's own final
norm and unembedding, at every token position; at the last layer that is exactly the
model's output. One forward of the plain Hugging Face model gives every layer's residual
(`output_hidden_states`); the read-outs are then computed a chunk of positions at a time,
each chunk streamed as soon as it is ready.

Interventions (Neuronpedia's lens steering) act on resid_post at the steered layers through
the steering hooks' thread-local plan, so they never leak into concurrent requests:
- steer: h ← h + c·‖h‖·d̂ for each steer token's unembedding direction d, with c the
  strength s clamped to [-1, 1] as Neuronpedia caps it: each steered layer feeds the next,
  so an uncapped s = 3 at all 30 layers multiplies the residual by up to 4^30 and float32
  overflows (‖h‖ → inf, then NaN read-outs); capped, it grows at most 2^30-fold;
- ablate: h ← h − (h·d̂)·d̂;
- swap: h ← h − (h·ŝ)·ŝ + (h·ŝ)·t̂ (source steer_tokens[0], target swap_token).
BOS positions (the prompt's, or a generated BOS) are never edited, as Neuronpedia leaves
them: BOS is the attention sink, its residual norm is many times any other position's, so a
step relative to that norm is huge there and moves every later position through attention.

With `filter_non_word_tokens` (Neuronpedia's option) the top-N skips tokens that are not
word-like (punctuation, whitespace, special tokens), except the model's own top-1 at the last
layer; probabilities stay over the whole vocabulary.

Generation (num_completion_tokens > 0) samples from the last layer's read-out and reruns
the forward over the grown sequence for each new token.

A forward whose read-out layers or logits are not finite (a half-precision model steered
hard) is refused with a 422 saying so, before any frame or as the stream's `error` frame,
never sent as null probabilities.
"""

import asyncio
import unicodedata
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import torch

from interpedia_core.errors import InvalidInput, Unprocessable
from interpedia_inference.chat_template import apply_chat_template
from interpedia_inference.engine import Engine
from interpedia_inference.schemas.chat_template import TemplateMessage
from interpedia_inference.schemas.lens import (
    LensDoneMessage,
    LensMetaMessage,
    LensPromptRequest,
    LensPromptToken,
    LensPromptTokensMessage,
    LensTokenMessage,
    LensType,
    LensTypeSlice,
)

# Positions whose read-outs are computed (and streamed) together.
CHUNK_POSITIONS = 16
# Largest steering step at one layer, as a multiple of the residual's norm (Neuronpedia's
# _MAX_STEER_INJECTION_FRACTION): steps compound over layers (see the module docstring).
MAX_STEER_FRACTION = 1.0
# bf16 candidates per (layer, position) that the fast read-out re-ranks in float32, beyond
# top_n: a true top-N token would have to fall this many ranks in bf16 to be missed.
CANDIDATE_MARGIN = 10
# Vocabulary terms summed per bf16 block in the fast read-out's normaliser.
SUM_BLOCK = 1024


@dataclass
class LensInput:
    """Token ids to read over, with chat-span metadata per position when from a chat."""

    ids: list[int]
    spans: list[dict[str, Any]]


def lens_input(engine: Engine, request: LensPromptRequest) -> LensInput:
    """The request's tokens (400 for no or two inputs, an empty prompt, over the limit)."""
    if request.input_token_ids:
        vocab = engine.model.d_vocab
        if any(not 0 <= i < vocab for i in request.input_token_ids):
            raise InvalidInput(f"input_token_ids must be token ids below {vocab}")
        engine.check_length(len(request.input_token_ids))
        return LensInput(list(request.input_token_ids), [{} for _ in request.input_token_ids])
    if (request.prompt is None) == (request.chat is None):
        raise InvalidInput("give exactly one of prompt or chat")
    if request.prompt is not None:
        ids = engine.tokenize(request.prompt, prepend_bos=request.prepend_bos)
        return LensInput(ids, [{} for _ in ids])
    if not request.chat:
        raise InvalidInput("chat has no messages")
    messages = [TemplateMessage(role=m.role, content=m.content) for m in request.chat]
    rendered = apply_chat_template(engine, messages, True, {})
    spans = [
        {
            "message_index": s.message_index,
            "role": s.role,
            "channel": s.channel,
            "section": s.section,
        }
        for s in rendered.spans
    ]
    return LensInput(rendered.tokens, spans)


def check_layers(n_layers: int, layers: list[int]) -> None:
    bad = sorted({layer for layer in layers if not 0 <= layer < n_layers})
    if bad:
        raise InvalidInput(f"layers {bad} are out of range: this model has {n_layers} layers")


def select_layers(n_layers: int, layers: list[int]) -> list[int]:
    """Asked-for layers (all when none) plus the last; 400 for one out of range."""
    check_layers(n_layers, layers)
    return sorted(set(layers or range(n_layers)) | {n_layers - 1})


def _final_norm(hf_model: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    decoder = hf_model.get_decoder() if hasattr(hf_model, "get_decoder") else None
    for owner, name in ((decoder, "norm"), (getattr(hf_model, "transformer", None), "ln_f")):
        if owner is not None and hasattr(owner, name):
            return getattr(owner, name)
    raise InvalidInput(f"the logit lens is not supported for {type(hf_model).__name__}")


def is_word_like(token: str) -> bool:
    """Letters and digits only once trimmed (`'`, `-` and `’` allowed inside), not a special
    token: the rule of Neuronpedia's lens filter, so both keep the same read-outs."""
    text = token.strip()
    if not text or "<|" in text or (text.startswith("<") and text.endswith(">")):
        return False
    return all(
        unicodedata.category(ch)[0] in "LN" or (0 < i < len(text) - 1 and ch in "'-\u2019")
        for i, ch in enumerate(text)
    )


def word_mask(engine: Engine) -> torch.Tensor:
    """[d_vocab] bool, True for word-like tokens; built once per model (one vocab decode)."""
    mask = engine.model.extra.get("lens_word_mask")
    if mask is None:
        strings = engine.model.token_strings(list(range(engine.model.d_vocab)))
        mask = torch.tensor([is_word_like(s) for s in strings], device=engine.model.device)
        engine.model.extra["lens_word_mask"] = mask
    return mask


def cpu_bf16_is_native(device: str) -> bool:
    """Whether `device` is a CPU that runs bf16 matmuls natively (AVX-512 BF16 / AMX):
    other CPUs emulate them, slower than float32. The bf16 read-out is a CPU path: its
    speed-up and its precision bound were measured there, and on CUDA the float32
    unembedding is a small part of the lens."""
    return (
        device == "cpu"
        and torch.backends.mkldnn.is_available()
        and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    )


def _sum_bf16(terms: torch.Tensor) -> torch.Tensor:
    """Row sums [rows] in float32 of bf16 terms [rows, n]: bf16 sums of SUM_BLOCK-term
    blocks (float32 accumulation inside, one bf16 rounding each: ≤ 0.4 % per block, of
    either sign), added in float32. On AVX-512 BF16 `sum(dtype=float32)` converts every
    term first and costs as much as the exp before it; this costs a tenth."""
    terms = terms if terms.stride(-1) == 1 else terms.contiguous()
    rows, n = terms.shape
    whole = n // SUM_BLOCK * SUM_BLOCK
    blocks = terms.as_strided((rows, n // SUM_BLOCK, SUM_BLOCK), (terms.stride(0), SUM_BLOCK, 1))
    total = blocks.sum(-1).float().sum(-1)
    if whole < n:
        total += terms[:, whole:].sum(-1, dtype=torch.float32)
    return total


class LensReadout:
    """Norm + unembedding of the served model, read at chosen layers.

    The unembedding of every layer is the lens's whole cost (30 layers x 64 positions x
    49,152 tokens is ~5x the FLOPs of the forward itself), and it needs every logit: the
    top-N and the softmax's normaliser. With `fast` (float32 models on a CPU with native
    bf16; never on CUDA, see `cpu_bf16_is_native`), the full unembedding runs in bf16
    (about twice float32's speed on AVX-512 BF16) and serves only to pick
    top_n + CANDIDATE_MARGIN candidates per row and to sum the
    normaliser; the candidates' logits are then recomputed exactly in float32, re-ranked,
    and replace their bf16 terms in the normaliser. The top-N tokens are float32's unless a
    true top-N token falls more than CANDIDATE_MARGIN ranks in bf16; the probabilities
    differ from float32's by the bf16 rounding of the other logits in the normaliser (at
    most 0.0048 on the packaged model over every layer of 8 corpus prompts, worst at BOS,
    whose logits are largest; the packaged model's test bounds it by 0.005). An int8
    read-out (`torch._int_mm`) was measured and left out: its matmul is no faster than
    bf16 here under load, its int32 logits need a float pass of their own, and its
    rounding of the residual's outlier dimensions moved probabilities by up to 0.03.
    """

    def __init__(self, engine: Engine) -> None:
        hf_model = engine.model.hf_model
        self.model = engine.model
        self.norm = _final_norm(hf_model)
        self.unembed = hf_model.get_output_embeddings()
        self.softcap = getattr(hf_model.config, "final_logit_softcapping", None)
        self.fast = (
            engine.lens_bf16
            and self.model.dtype == torch.float32
            and self.unembed.bias is None
            and cpu_bf16_is_native(self.model.device)
        )
        if self.fast:
            # One bf16 copy of W_U [d_vocab, d_model] per loaded model, made on first use.
            w_bf16 = self.model.extra.get("lens_unembed_bf16")
            if w_bf16 is None:
                w_bf16 = self.unembed.weight.detach().to(torch.bfloat16)
                self.model.extra["lens_unembed_bf16"] = w_bf16
            self.w_bf16 = w_bf16

    @torch.no_grad()
    def residuals(self, ids: list[int]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Every layer's output [1, seq, d] (index l + 1 for layer l; the last is normed)
        and the model's logits [seq, d_vocab]."""
        self.model.use_torch_threads()
        batch = torch.tensor([ids], device=self.model.device)
        out = self.model.hf_model(batch, output_hidden_states=True, use_cache=False)
        return out.hidden_states, out.logits[0].float()

    def _capped(self, logits: torch.Tensor) -> torch.Tensor:
        if self.softcap:
            return torch.tanh(logits / self.softcap) * self.softcap
        return logits

    @staticmethod
    def _exact_top(
        logits: torch.Tensor, top_n: int, keep: torch.Tensor | None = None, own: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(probs, ids) [rows, top_n] of float32 logits [rows, d_vocab]; with `keep`
        ([d_vocab] bool) only those tokens are ranked, and with `own` each row's top-1 too."""
        ranked = logits
        if keep is not None:
            ranked = logits.masked_fill(~keep, float("-inf"))
            if own:  # the model's own prediction stays, word-like or not
                top1 = logits.argmax(dim=-1, keepdim=True)  # [rows, 1]
                ranked.scatter_(-1, top1, logits.gather(-1, top1))
        ids = ranked.topk(top_n, dim=-1).indices
        values = logits.gather(-1, ids)  # a masked-out filler is still its real logit
        # Probabilities over the whole vocabulary: the normaliser needs every logit.
        return (values - torch.logsumexp(logits, dim=-1, keepdim=True)).exp(), ids

    def _fast_top(self, normed: torch.Tensor, top_n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(probs, ids) [rows, top_n] of normed residuals [rows, d]: bf16 candidates, exact
        float32 re-rank (see the class docstring)."""
        approx = self._capped(torch.nn.functional.linear(normed.to(torch.bfloat16), self.w_bf16))
        n_candidates = min(top_n + CANDIDATE_MARGIN, approx.shape[-1])
        candidates = approx.topk(n_candidates, dim=-1).indices  # [rows, C]
        rows = self.unembed.weight[candidates]  # [rows, C, d]
        exact = self._capped(torch.einsum("rd,rcd->rc", normed, rows))  # [rows, C]
        peak = exact.amax(dim=-1, keepdim=True)  # [rows, 1]
        # Σ_vocab exp(logit − peak): bf16 terms for the tail, exact ones for the candidates.
        # In place on `approx`, which is not needed after this.
        terms = approx.sub_(peak.to(torch.bfloat16)).exp_()
        tail = _sum_bf16(terms) - terms.gather(-1, candidates).float().sum(-1)
        total = tail.clamp_min(0) + (exact - peak).exp().sum(-1)
        values, order = exact.topk(top_n, dim=-1)
        probs = (values - peak - total.log().unsqueeze(-1)).exp()
        return probs, candidates.gather(-1, order)

    @torch.no_grad()
    def top(
        self,
        hidden: tuple[torch.Tensor, ...],
        logits: torch.Tensor,
        layers: list[int],
        positions: slice,
        top_n: int,
        keep: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(probs, token ids), each [len(layers), positions, top_n], of the lens at each of
        the ascending `layers` (the model's own output at the last layer). All layers go
        through the norm and unembedding as one matmul. With `keep` ([d_vocab] bool) only
        those tokens are ranked, besides the last layer's own top-1; that read-out is
        float32's: the bf16 one sums the normaliser exactly only over its candidates, and
        the filtered-out tokens it would leave to bf16 are often the likeliest."""
        self.model.use_torch_threads()
        last = self.model.n_layers - 1
        inner = [layer for layer in layers if layer != last]
        probs, ids = [], []
        if inner:
            resid = torch.stack([hidden[layer + 1][0, positions] for layer in inner])  # [L, P, d]
            normed = self.norm(resid).flatten(0, 1)  # [L * P, d]
            if self.fast and keep is None:
                p, i = self._fast_top(normed, top_n)
            else:
                p, i = self._exact_top(self._capped(self.unembed(normed).float()), top_n, keep)
            probs.append(p.view(len(inner), -1, top_n))
            ids.append(i.view(len(inner), -1, top_n))
        if last in layers:
            p, i = self._exact_top(logits[positions], top_n, keep, own=True)
            probs.append(p.unsqueeze(0))
            ids.append(i.unsqueeze(0))
        return torch.cat(probs), torch.cat(ids)


@dataclass
class LensIntervention:
    """A plan for the steering hooks: edits resid_post at `layers`, at the positions of the
    sequence being run that `run_on` marks."""

    layers: set[int]
    directions: list[torch.Tensor]  # unit vectors [d_model]
    strength: float  # within ±MAX_STEER_FRACTION
    ablate: bool
    swap_to: torch.Tensor | None  # unit vector [d_model]
    until: int | None  # positions from here on are left alone; None: all steered
    bos_token_id: int | None
    positions: torch.Tensor | None = None  # [seq] bool, set by run_on

    def run_on(self, ids: list[int]) -> None:
        """Steer the positions of `ids` before `until` that are not BOS (module docstring)."""
        stop = len(ids) if self.until is None else self.until
        self.positions = torch.tensor(
            [p < stop and token != self.bos_token_id for p, token in enumerate(ids)]
        )

    def apply(self, key: tuple[str, int], acts: torch.Tensor) -> torch.Tensor | None:
        kind, layer = key
        if kind != "hook_resid_post" or layer not in self.layers or self.positions is None:
            return None
        steered = acts
        for d in self.directions:
            d = d.to(acts.dtype)
            along = (steered @ d).unsqueeze(-1)  # [batch, seq, 1]
            if self.swap_to is not None:
                steered = steered - along * d + along * self.swap_to.to(acts.dtype)
                break  # swap moves steer_tokens[0] only
            if self.ablate:
                steered = steered - along * d
            else:
                steered = steered + self.strength * steered.norm(dim=-1, keepdim=True) * d
        return torch.where(self.positions.view(1, -1, 1).to(acts.device), steered, acts)


def token_id_of(engine: Engine, token: str) -> int:
    """The vocabulary id whose decoded string is exactly `token` (404-style 400 if none)."""
    table = engine.model.extra.get("lens_ids_by_string")
    if table is None:
        strings = engine.model.token_strings(list(range(engine.model.d_vocab)))
        table = {}
        for i, s in enumerate(strings):
            table.setdefault(s, i)
        engine.model.extra["lens_ids_by_string"] = table
    if token not in table:
        raise InvalidInput(f"steer token {token!r} is not one token of this model's vocabulary")
    return table[token]


def intervention(
    engine: Engine, request: LensPromptRequest, read_layers: list[int], prompt_len: int
) -> LensIntervention | None:
    """The request's steer / ablate / swap, or None when it asks for none."""
    swap = request.swap_token is not None and bool(request.steer_tokens)
    if not swap and not (request.steer_tokens and (request.steer_strength or request.steer_ablate)):
        return None
    tokens = [*request.steer_tokens, *([request.swap_token] if swap else [])]
    if any(t is not None and t.type != LensType.LOGIT_LENS for t in tokens):
        raise InvalidInput("only LOGIT_LENS steer tokens are supported: no Jacobian lens here")
    unembed = engine.model.unembed  # [d_model, d_vocab]

    def unit(token: str) -> torch.Tensor:
        column = unembed[:, token_id_of(engine, token)].detach().float()
        return column / column.norm()

    check_layers(engine.model.n_layers, request.steer_layers)
    return LensIntervention(
        layers=set(request.steer_layers or read_layers),
        directions=[unit(t.token) for t in request.steer_tokens],
        strength=max(-MAX_STEER_FRACTION, min(MAX_STEER_FRACTION, request.steer_strength)),
        ablate=request.steer_ablate,
        swap_to=unit(request.swap_token.token) if swap and request.swap_token else None,
        until=None if request.steer_generated_tokens else prompt_len,
        bos_token_id=engine.model.bos_token_id,
    )


def check_finite(
    hidden: tuple[torch.Tensor, ...], logits: torch.Tensor, layers: list[int], steered: bool
) -> None:
    """422 when a read-out layer's residual or the logits hold inf/NaN, naming the first
    such layer: softmax would turn them into NaN probabilities (null on the wire)."""
    bad = next((layer for layer in layers if not hidden[layer + 1].isfinite().all()), None)
    if bad is None and logits.isfinite().all():
        return
    where = f"at layer {bad}" if bad is not None else "in the logits"
    cause = (
        "steering made the residual stream overflow: lower steer_strength or steer fewer layers"
        if steered
        else "the model's forward overflowed its dtype on this prompt"
    )
    raise Unprocessable(f"the logit lens is not finite {where}: {cause}")


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


async def lens_frames(
    engine: Engine, request: LensPromptRequest, source: LensInput
) -> AsyncIterator[Any]:
    """meta, prompt, one token frame per position (streamed a chunk at a time, then one
    per generated token), done."""
    if LensType.JACOBIAN_LENS in request.type:
        raise InvalidInput("the Jacobian lens is not available for this model")
    ids = source.ids[: request.max_seq_len] if request.max_seq_len else list(source.ids)
    prompt_len = len(ids)
    n_new = 0 if request.input_token_ids else request.num_completion_tokens
    engine.check_completion_tokens(n_new)
    n_new = min(n_new, engine.limits.token_limit - prompt_len)  # as Neuronpedia: clamp
    layers = select_layers(engine.model.n_layers, request.layers)
    plan = intervention(engine, request, layers, prompt_len)
    reuse = (
        0 if plan is not None else min(_common_prefix(ids, request.cached_token_ids), prompt_len)
    )
    readout = LensReadout(engine)
    keep = word_mask(engine) if request.filter_non_word_tokens else None
    strings = engine.token_strings(ids)

    def frame_token(position: int, token_id: int, text: str, generated: bool) -> dict[str, Any]:
        span = source.spans[position] if position < len(source.spans) and not generated else {}
        return {
            "position": position,
            "token": text,
            "id": token_id,
            "is_generated": generated,
            **span,
        }

    def forward(seq: list[int]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        if plan is not None:
            plan.run_on(seq)
        engine.steering_hooks.plan = plan  # type: ignore[assignment]
        try:
            hidden, logits = readout.residuals(seq)
        finally:
            engine.steering_hooks.plan = None
        check_finite(hidden, logits, layers, steered=plan is not None)
        return hidden, logits

    def read(
        hidden: tuple[torch.Tensor, ...], logits: torch.Tensor, start: int, stop: int
    ) -> list[LensTypeSlice]:
        """Per position in [start, stop): its slice (top tokens and probs per layer)."""
        probs, ids_ = readout.top(hidden, logits, layers, slice(start, stop), request.top_n, keep)
        slices = []
        for row in range(stop - start):
            slices.append(
                LensTypeSlice(
                    type=LensType.LOGIT_LENS,
                    top_tokens=[
                        engine.token_strings(ids_[i, row].tolist()) for i in range(len(layers))
                    ],
                    top_probs=probs[:, row].tolist(),
                )
            )
        return slices

    # The prompt's forward runs before the first frame, so a non-finite one is still a 422.
    hidden, logits = await asyncio.to_thread(forward, ids)
    yield LensMetaMessage(
        model=engine.model.model_id,
        types=[LensType.LOGIT_LENS],
        layers_by_type={LensType.LOGIT_LENS.value: layers},
        top_n=request.top_n,
        prompt_len=prompt_len,
        num_completion_tokens=n_new,
        temperature=request.temperature,
        prepend_bos=engine.is_bos(ids),
        reuse_len=reuse,
    )
    yield LensPromptTokensMessage(
        tokens=[LensPromptToken(**frame_token(p, t, strings[p], False)) for p, t in enumerate(ids)]
    )

    for start in range(reuse, prompt_len, CHUNK_POSITIONS):
        stop = min(start + CHUNK_POSITIONS, prompt_len)
        slices = await asyncio.to_thread(read, hidden, logits, start, stop)
        for offset, piece in enumerate(slices):
            p = start + offset
            yield LensTokenMessage(**frame_token(p, ids[p], strings[p], False), results=[piece])

    generator = torch.Generator().manual_seed(request.seed)
    new_ids: list[int] = []
    for _ in range(n_new):
        last = logits[-1].cpu()  # sampled on the CPU, with the CPU generator
        if request.temperature == 0:
            next_id = int(last.argmax())
        else:
            probs = torch.softmax(last / request.temperature, dim=-1)
            next_id = int(torch.multinomial(probs, 1, generator=generator))
        new_ids.append(next_id)
        ids = [*ids, next_id]
        hidden, logits = await asyncio.to_thread(forward, ids)
        (piece,) = await asyncio.to_thread(read, hidden, logits, len(ids) - 1, len(ids))
        text = engine.token_strings([next_id])[0]
        yield LensTokenMessage(**frame_token(len(ids) - 1, next_id, text, True), results=[piece])
        if next_id == engine.model.tokenizer.eos_token_id:
            break
    yield LensDoneMessage(
        seq_len=len(ids),
        prompt_len=prompt_len,
        vocab_size=engine.model.d_vocab,
        completion=engine.model.tokenizer.decode(new_ids),
    )
