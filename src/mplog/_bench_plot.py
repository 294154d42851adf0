"""``mplog bench --plot``: records/s against the process count, drawn with matplotlib
(the ``plot`` extra), imported only when a plot is asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._bench_contenders import installed

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ._bench import BenchResult

__all__ = ["PLOT_EXTRA", "figure", "plot", "require_matplotlib"]

PLOT_EXTRA = "pip install 'mplog[plot]'"


def require_matplotlib() -> None:
    """Raise ImportError naming the ``plot`` extra if matplotlib is not installed."""
    if not installed("matplotlib"):  # not imported: see installed()
        raise ImportError(f"plotting needs matplotlib, which is not installed: {PLOT_EXTRA}")


def _figure_class() -> type[Figure]:
    require_matplotlib()  # matplotlib.figure may be cached while matplotlib is blocked
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            f"plotting needs matplotlib, which failed to import: {PLOT_EXTRA}"
        ) from err
    return Figure


def plot(result: BenchResult, path: str) -> None:
    """Draw records/s against the process count, one line per contender; save a PNG.

    A contender that lost records is drawn dashed, with "lost N" at each such
    point: a high line that loses records is not a fast handler.  The legend
    sits outside the plot, off the lines.
    """
    figure(result).savefig(path, dpi=120)


def figure(result: BenchResult) -> Figure:
    """The figure :func:`plot` saves."""
    drawing = _figure_class()(figsize=(9, 5), layout="constrained")
    from matplotlib.ticker import StrMethodFormatter

    axes = drawing.subplots()
    procs = sorted(dict.fromkeys(s.procs for s in result.summaries))
    for name in dict.fromkeys(s.contender for s in result.summaries):
        rows = sorted((s for s in result.summaries if s.contender == name), key=lambda s: s.procs)
        lossy = any(s.lost or s.duplicated or s.torn for s in rows)  # None: writes nothing
        label = f"{name} (LOSES RECORDS)" if lossy else name
        (line,) = axes.plot(
            [s.procs for s in rows],
            [s.rate for s in rows],
            marker="o",
            linestyle="--" if lossy else "-",
            label=label,
        )
        for s in rows:
            if s.lost:
                axes.annotate(
                    f"lost {s.lost:,}",
                    (s.procs, s.rate),
                    textcoords="offset points",
                    xytext=(6, -12),
                    color=line.get_color(),
                    fontsize=8,
                )
    axes.set_xscale("log", base=2)
    axes.set_xticks(procs, [str(n) for n in procs])
    axes.set_ylim(bottom=0)
    axes.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    axes.set_xlabel("processes")
    axes.set_ylabel(f"records/s (median of {result.environment.get('repeat', '?')})")
    records = result.summaries[0].records if result.summaries else 0
    axes.set_title(f"{records:,} records per process, {result.environment.get('cpus', '?')} CPUs")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
    return drawing
