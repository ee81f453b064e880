"""Feature absorption on the first-letter task, as SAE-Bench's `absorption_first_letter` eval.

Absorption (Chanin et al., "A is for Absorption", 2024; the absorption fraction is Demian
Till's addition in SAE-Bench): an SAE has latents that track "starts with S", yet on some
S-words those latents stay silent and a token-specific latent fires instead, carrying the
"starts with S" direction in its decoder. The metric finds such words:

1. Prompts from the tokenizer's own vocabulary: every single-token alphabetic word, in
   SAE-Bench's template (`{word} has the first letter:`) after 10 in-context examples.
   The hook's activation at the word's position is what is probed.
2. A ground-truth linear probe per letter on those activations (one-vs-rest logistic);
   only letters it finds with test F1 above `min_GT_probe_f1` are evaluated.
3. k-sparse probing on the SAE's latents: an L1 probe ranks latents per letter, then a
   logistic regression on the top k for k = 1, 2, ...; while F1 jumps by at least
   `f1_jump_threshold`, the k latents are the letter's main ("split") latents.
4. On each test word the ground-truth probe gets right, the projections onto the probe
   direction: of the activation (`x · p`), of the main latents (activation × cosine of
   their decoder row with `p`) and of other latents aligned with `p`. The absorption
   fraction is the share of the probe projection the main latents miss and up to three
   aligned latents supply; full absorption is the main latents all silent and one other
   latent supplying at least 40% of it.

The thresholds are SAE-Bench's. What differs, and is recorded in `eval_config`: prompts
are built from token ids (so every word is exactly one token and every prompt has one
length, instead of checking it afterwards), the vocabulary is sampled (`max_words`) to
fit a CPU, and the test words' absorption is read from the same activations the probes
were tested on rather than from freshly sampled prompts. `sae-bench` itself needs
numpy < 2 and datasets < 4, so it cannot be installed beside this platform's pins.

`absorption_scores` holds steps 2-4 on plain tensors, so a constructed SAE with a known
absorbing latent tests it without a language model.
"""

import math
import random
import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from interpedia_core.errors import InvalidInput
from interpedia_trainer.evaluation import sae_bench_output
from interpedia_trainer.model_runtime import HookedModel
from interpedia_trainer.pipeline import sae_hook

ABSORPTION = "absorption_first_letter"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
EPS = 1e-8
# SAE-Bench's thresholds (feature_absorption.py).
FULL_ABSORPTION_PROBE_COS_THRESHOLD = 0.025
ABSORPTION_FRACTION_PROBE_COS_THRESHOLD = 0.1
ABSORPTION_PROBE_PROJECTION_PROPORTION_THRESHOLD = 0.4
ABSORPTION_FRACTION_MAX_ABSORBING_LATENTS = 3


@dataclass(frozen=True)
class AbsorptionConfig:
    """SAE-Bench's `AbsorptionEvalConfig` fields that apply here, plus the vocabulary sample."""

    random_seed: int = 42
    f1_jump_threshold: float = 0.03
    max_k_value: int = 10
    prompt_template: str = "{word} has the first letter:"
    icl_examples: int = 10
    max_words: int = 1500
    train_fraction: float = 0.8
    llm_batch_size: int = 16
    k_sparse_probe_l1_decay: float = 0.01
    k_sparse_probe_batch_size: int = 4096
    k_sparse_probe_num_epochs: int = 50
    probe_num_epochs: int = 50
    probe_batch_size: int = 64
    min_GT_probe_f1: float = 0.6
    min_feats_for_eval: int = 20


@dataclass
class ProbeData:
    """Activations at the word position [n, d_in], each word's letter (0-25) and text."""

    acts: torch.Tensor
    letters: torch.Tensor  # [n] long
    words: list[str] = field(default_factory=list)


@dataclass
class LetterResult:
    """One letter's row of SAE-Bench's `eval_result_details`."""

    first_letter: str
    mean_absorption_fraction: float
    full_absorption_rate: float
    num_full_absorption: int
    num_probe_true_positives: int
    num_split_features: int
    split_features: list[int]
    probe_f1: float


@dataclass
class AbsorptionScores:
    letters: list[LetterResult]  # the letters the ground-truth probe finds (F1 > min)
    probe_f1: dict[str, float]  # every letter's ground-truth probe F1

    def mean_metrics(self) -> dict[str, float]:
        def mean(values: list[float]) -> float:
            return statistics.mean(values) if values else math.nan

        def stdev(values: list[float]) -> float:
            return statistics.stdev(values) if len(values) > 1 else math.nan

        fractions = [r.mean_absorption_fraction for r in self.letters]
        full = [r.full_absorption_rate for r in self.letters]
        splits = [float(r.num_split_features) for r in self.letters]
        return {
            "mean_absorption_fraction_score": mean(fractions),
            "mean_full_absorption_score": mean(full),
            "mean_num_split_features": mean(splits),
            "std_dev_absorption_fraction_score": stdev(fractions),
            "std_dev_full_absorption_score": stdev(full),
            "std_dev_num_split_features": stdev(splits),
        }


# --- the spelling prompts --------------------------------------------------------------------


@dataclass
class SpellingWord:
    token_id: int
    text: str  # as the token reads, leading space included
    letter: int  # index into LETTERS


def spelling_words(tokenizer: Any, *, max_words: int, seed: int) -> list[SpellingWord]:
    """Single-token alphabetic words of the vocabulary (a leading space allowed), sampled.

    SAE-Bench's `get_alpha_tokens`: the decoded token, less one leading space, is letters
    only. A seeded sample of `max_words` keeps the evaluation the same run to run.
    """
    words = []
    for token_id in sorted(tokenizer.get_vocab().values()):
        text = tokenizer.decode([token_id])
        bare = text[1:] if text.startswith(" ") else text
        if bare and bare.isascii() and bare.isalpha():
            words.append(SpellingWord(token_id, text, LETTERS.index(bare[0].lower())))
    rng = random.Random(seed)
    if len(words) > max_words:
        words = rng.sample(words, max_words)
    return words


@dataclass
class SpellingPrompts:
    tokens: torch.Tensor  # [n, T]: every prompt has the same length
    position: int  # where the word sits (negative, from the end)


def spelling_prompts(
    tokenizer: Any,
    words: list[SpellingWord],
    examples: list[SpellingWord],
    config: AbsorptionConfig,
    seed: int,
) -> SpellingPrompts:
    """ICL prompts `\\n{ex} has the first letter: X\\n...{word} has the first letter:`.

    Built from token ids: examples and the word are one token each, the template and the
    answers tokenize the same way every time, so the word's position is fixed.
    """
    prefix, _, suffix = config.prompt_template.partition("{word}")
    if prefix:
        raise InvalidInput("the prompt template must start with {word}")
    suffix_ids = tokenizer(suffix, add_special_tokens=False)["input_ids"]
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    answers = [tokenizer(" " + c.upper(), add_special_tokens=False)["input_ids"] for c in LETTERS]
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    if len(examples) <= config.icl_examples:
        raise InvalidInput(
            f"{len(examples)} words cannot give {config.icl_examples} in-context examples"
        )
    lengths = {len(a) for a in answers}
    if len(lengths) != 1:
        raise InvalidInput("the tokenizer splits some letter answers into several tokens")
    rng = random.Random(seed)
    rows = []
    for word in words:
        # Sample one spare, so dropping the word itself still leaves `icl_examples`.
        picks = rng.sample(examples, config.icl_examples + 1)
        picks = [e for e in picks if e.token_id != word.token_id][: config.icl_examples]
        ids = [*bos, *newline]
        for example in picks:
            ids += [example.token_id, *suffix_ids, *answers[example.letter], *newline]
        rows.append([*ids, word.token_id, *suffix_ids])
    if len({len(r) for r in rows}) != 1:
        raise InvalidInput("spelling prompts came out of different lengths")
    return SpellingPrompts(torch.tensor(rows), -(len(suffix_ids) + 1))


def probe_data(
    model: HookedModel,
    hook_name: str,
    words: list[SpellingWord],
    prompts: SpellingPrompts,
    batch_size: int,
    on_progress: Callable[[int, int], None] | None = None,
) -> ProbeData:
    """The hook's activation at each prompt's word position."""
    acts = []
    n = prompts.tokens.shape[0]
    for first in range(0, n, batch_size):
        batch = prompts.tokens[first : first + batch_size]
        acts.append(model.forward_to_hook(batch, hook_name)[:, prompts.position].float().cpu())
        if on_progress is not None:
            on_progress(min(first + batch_size, n), n)
    return ProbeData(
        torch.cat(acts), torch.tensor([w.letter for w in words]), [w.text for w in words]
    )


# --- probes ----------------------------------------------------------------------------------


def train_multi_probe(
    x: torch.Tensor,  # [n, d]
    letters: torch.Tensor,  # [n]
    *,
    epochs: int,
    batch_size: int,
    lr: float = 1e-2,
    end_lr: float = 1e-5,
    weight_decay: float = 1e-4,
    l1_decay: float = 0.0,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One-vs-rest logistic probes for the 26 letters: (weights [26, d], biases [26]).

    SAE-Bench's `train_multi_probe`: BCE with each letter's positives up-weighted by
    negatives / positives, Adam with the learning rate decaying exponentially to
    `end_lr`, and for the k-sparse probes an L1 penalty on the weights.
    """
    g = torch.Generator().manual_seed(seed)
    y = torch.nn.functional.one_hot(letters, len(LETTERS)).float()
    positives = y.sum(0)
    pos_weight = (len(y) - positives) / positives.clamp(min=1)
    probe = torch.nn.Linear(x.shape[1], len(LETTERS))
    torch.nn.init.zeros_(probe.weight)
    torch.nn.init.zeros_(probe.bias)
    optimizer = torch.optim.Adam(probe.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(
        optimizer, gamma=math.exp(math.log(end_lr / lr) / max(epochs, 1))
    )
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    with torch.enable_grad():
        for _ in range(epochs):
            for batch in torch.randperm(len(x), generator=g).split(batch_size):
                optimizer.zero_grad()
                loss = loss_fn(probe(x[batch]), y[batch])
                if l1_decay:
                    loss = loss + l1_decay * probe.weight.abs().sum(dim=-1).mean()
                loss.backward()
                optimizer.step()
            scheduler.step()
    return probe.weight.detach().clone(), probe.bias.detach().clone()


def _f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    tp = float((truth & predicted).sum())
    if tp == 0:
        return 0.0
    return 2 * tp / (float(truth.sum()) + float(predicted.sum()))


def split_features(
    train_feats: torch.Tensor,  # [n_train, d_sae]
    train_letters: torch.Tensor,
    test_feats: torch.Tensor,  # [n_test, d_sae]
    test_letters: torch.Tensor,
    config: AbsorptionConfig,
) -> dict[int, list[int]]:
    """Each letter's main latents by k-sparse probing (SAE-Bench's feature splitting)."""
    from sklearn.linear_model import LogisticRegression

    weights, _ = train_multi_probe(
        train_feats,
        train_letters,
        epochs=config.k_sparse_probe_num_epochs,
        batch_size=config.k_sparse_probe_batch_size,
        weight_decay=1e-6,
        l1_decay=config.k_sparse_probe_l1_decay,
        seed=config.random_seed,
    )
    max_k = min(config.max_k_value, train_feats.shape[1])
    out: dict[int, list[int]] = {}
    for letter in range(len(LETTERS)):
        y_train = (train_letters == letter).numpy()
        y_test = (test_letters == letter).numpy()
        ranked = weights[letter].topk(max_k).indices.tolist()
        best, chosen = -100.0, ranked[:1]
        for k in range(1, max_k + 1):
            feats = ranked[:k]
            if y_train.all() or not y_train.any():
                score = 0.0
            else:
                fitted = LogisticRegression(max_iter=500, class_weight="balanced").fit(
                    train_feats[:, feats].numpy(), y_train
                )
                score = _f1(y_test, fitted.decision_function(test_feats[:, feats].numpy()) > 0)
            if score > best + config.f1_jump_threshold:
                best, chosen = score, feats
            else:
                break
        out[letter] = chosen
    return out


# --- absorption --------------------------------------------------------------------------


def _word_absorption(
    act_probe_proj: float,
    sae_acts: torch.Tensor,  # [d_sae]
    cos_sims: torch.Tensor,  # [d_sae] decoder rows vs the probe direction
    main: list[int],
) -> tuple[float, bool]:
    """(absorption fraction, full absorption) of one word, SAE-Bench's definitions."""
    projections = sae_acts * cos_sims  # [d_sae]
    main_proj = float(projections[main].sum())
    others = torch.ones_like(projections, dtype=torch.bool)
    others[main] = False
    others &= (cos_sims >= ABSORPTION_FRACTION_PROBE_COS_THRESHOLD) & (projections > 0)
    absorbing = projections[others]
    top = absorbing.topk(min(ABSORPTION_FRACTION_MAX_ABSORBING_LATENTS, absorbing.numel())).values
    absorbing_proj = float(top.sum())
    if (
        main_proj >= act_probe_proj
        or absorbing_proj / act_probe_proj < ABSORPTION_PROBE_PROJECTION_PROPORTION_THRESHOLD
    ):
        fraction = 0.0
    elif main_proj <= 0.0:
        fraction = 1.0
    else:
        absorbed = min(absorbing_proj, act_probe_proj - main_proj)
        fraction = float(np.clip(absorbed / (absorbed + main_proj), 0.0, 1.0))

    top_feature = int(projections.topk(1).indices[0])
    full = (
        all(float(sae_acts[i]) < EPS for i in main)
        and float(cos_sims[top_feature]) >= FULL_ABSORPTION_PROBE_COS_THRESHOLD
        and act_probe_proj >= 0
        and float(projections[top_feature]) / act_probe_proj
        >= ABSORPTION_PROBE_PROJECTION_PROPORTION_THRESHOLD
    )
    return fraction, full


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run the probes on one thread: their matrices are tiny, and on a busy 2-core machine
    threads waiting on each other cost more than the work (4x slower, measured)."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def absorption_scores(
    sae: Any, train: ProbeData, test: ProbeData, config: AbsorptionConfig
) -> AbsorptionScores:
    """Steps 2-4 of the module docstring on probe data already gathered."""
    with _one_thread():
        return _absorption_scores(sae, train, test, config)


def _absorption_scores(
    sae: Any, train: ProbeData, test: ProbeData, config: AbsorptionConfig
) -> AbsorptionScores:
    probe_w, probe_b = train_multi_probe(
        train.acts,
        train.letters,
        epochs=config.probe_num_epochs,
        batch_size=config.probe_batch_size,
        seed=config.random_seed,
    )
    test_scores = test.acts @ probe_w.T + probe_b  # [n_test, 26]
    probe_f1 = {
        LETTERS[i]: _f1((test.letters == i).numpy(), (test_scores[:, i] > 0).numpy())
        for i in range(len(LETTERS))
    }

    def encode(acts: torch.Tensor) -> torch.Tensor:
        return sae.encode(acts.to(sae.W_dec.device, sae.W_dec.dtype)).float().cpu()

    train_feats, test_feats = encode(train.acts), encode(test.acts)
    splits = split_features(train_feats, train.letters, test_feats, test.letters, config)
    decoder = torch.nn.functional.normalize(sae.W_dec.detach().float().cpu(), dim=1)
    results = []
    for i, letter in enumerate(LETTERS):
        if probe_f1[letter] <= config.min_GT_probe_f1:
            continue
        direction = torch.nn.functional.normalize(probe_w[i], dim=0)
        cos_sims = decoder @ direction  # [d_sae]
        positives = torch.nonzero((test.letters == i) & (test_scores[:, i] > 0))[:, 0]
        fractions, full = [], 0
        for row in positives.tolist():
            fraction, is_full = _word_absorption(
                float(test.acts[row] @ direction), test_feats[row], cos_sims, splits[i]
            )
            fractions.append(fraction)
            full += is_full
        n_tp = len(positives)
        results.append(
            LetterResult(
                first_letter=letter,
                mean_absorption_fraction=sum(fractions) / n_tp if n_tp else 0.0,
                full_absorption_rate=full / n_tp if n_tp else 0.0,
                num_full_absorption=full,
                num_probe_true_positives=n_tp,
                num_split_features=len(splits[i]),
                split_features=splits[i],
                probe_f1=probe_f1[letter],
            )
        )
    return AbsorptionScores(results, probe_f1)


def evaluate_absorption(
    model: HookedModel,
    sae: Any,
    config: AbsorptionConfig,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The `absorption_first_letter` eval output of `sae` (SAE-Bench's schema)."""
    hook_name = sae_hook(model, sae)
    words = spelling_words(model.tokenizer, max_words=config.max_words, seed=config.random_seed)
    if len(words) < 2 * config.icl_examples + len(LETTERS):
        raise InvalidInput(f"the vocabulary has only {len(words)} single-token alphabetic words")
    random.Random(config.random_seed).shuffle(words)
    cut = int(len(words) * config.train_fraction)
    train_words, test_words = words[:cut], words[cut:]
    data, done = [], 0
    for part, seed in ((train_words, config.random_seed), (test_words, config.random_seed + 1)):
        prompts = spelling_prompts(model.tokenizer, part, train_words, config, seed)

        def progress(n: int, _total: int, offset: int = done) -> None:
            if on_progress is not None:
                on_progress(offset + n, len(words))

        data.append(probe_data(model, hook_name, part, prompts, config.llm_batch_size, progress))
        done += len(part)
    scores = absorption_scores(sae, data[0], data[1], config)
    evaluated = len(scores.letters)
    eval_config = {
        **asdict(config),
        "model_name": model.model_id,
        "llm_dtype": str(model.loaded.dtype).removeprefix("torch."),
        "prompt_token_pos": prompts.position,
        "n_words": len(words),
        "prompts_from_token_ids": True,
    }
    return sae_bench_output(
        ABSORPTION,
        eval_config,
        {"mean": scores.mean_metrics()},
        sae,
        details=[
            {k: v for k, v in asdict(r).items() if k not in ("split_features", "probe_f1")}
            for r in scores.letters
        ],
        unstructured={
            "letters_evaluated": evaluated,
            "enough_letters": evaluated >= config.min_feats_for_eval,
            "probe_f1": scores.probe_f1,
            "split_features": {r.first_letter: r.split_features for r in scores.letters},
        },
    )
