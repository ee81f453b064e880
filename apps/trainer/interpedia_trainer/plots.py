"""Training curves as a PNG next to the SAE: loss, L0 and explained variance vs tokens."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt


def plot_training(history: list[dict[str, float]], path: Path, title: str = "") -> Path:
    """Write `path` (PNG) from the training loop's history rows; returns the path."""
    tokens = [row["tokens"] for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = [
        ("loss", "loss", True),
        ("l0", "mean L0", False),
        ("explained_variance", "explained variance", False),
    ]
    for ax, (key, label, log) in zip(axes, panels, strict=True):
        ax.plot(tokens, [row.get(key, float("nan")) for row in history], label="train")
        held = [(row["tokens"], row[f"eval/{key}"]) for row in history if f"eval/{key}" in row]
        if held:
            ax.plot(*zip(*held, strict=True), "o-", label="held-out")
            ax.legend()
        ax.set_xlabel("tokens")
        ax.set_title(label)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
