"""The planner's figure: the Pareto front of output tokens/s per GPU against tokens/s per user
(1/TPOT) over the configurations that meet the targets, built without pyplot."""

from __future__ import annotations

from costmodel.lazy import deferred

mfigure = deferred("matplotlib.figure")


def pareto_chart(df, title: str = ""):
    """Every kept configuration (grey) and the Pareto front (coloured by GPU, joined), with
    the cheapest marked; ``df`` is :func:`costmodel.plan.search.plan`'s table."""
    fig = mfigure.Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    ax.scatter(df["tokens_per_s_per_user"], df["tokens_per_s_per_gpu"], s=8, color="0.8",
               label="meets the targets")
    front = df[df["pareto"]].sort_values("tokens_per_s_per_user")
    ax.plot(front["tokens_per_s_per_user"], front["tokens_per_s_per_gpu"], color="0.3",
            linewidth=1, zorder=1)
    for gpu, rows in front.groupby("gpu", sort=False):
        ax.scatter(rows["tokens_per_s_per_user"], rows["tokens_per_s_per_gpu"], s=28,
                   label=f"Pareto front: {gpu}", zorder=2)
    best = df.iloc[0]
    ax.scatter([best["tokens_per_s_per_user"]], [best["tokens_per_s_per_gpu"]], marker="*",
               s=180, color="black", zorder=3,
               label=f"cheapest: {best['gpu']} × {best['gpus']}, "
                     f"${best['usd_per_mtok']:.3f}/Mtok")
    ax.set_xlabel("output tokens/s per user (1 / TPOT)")
    ax.set_ylabel("output tokens/s per GPU")
    ax.set_title(title or "configurations that meet the targets")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


__all__ = ["pareto_chart"]
