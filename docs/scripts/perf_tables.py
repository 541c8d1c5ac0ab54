"""Render the measured tables of the performance pages from committed JSON runs.

Run by docs/conf.py at build time (or by hand). Nothing here measures anything:
refresh a table by running its command again and committing the JSON.

* ``docs/data/demo-*.json``, each written by ``python -m approxmat demo --json PATH``,
  become ``docs/_generated/demo-tables.md``: one table and one figure per run.
* ``docs/data/kernels-*.json``, each written by ``python benchmarks/speed.py --json
  PATH``, become ``docs/_generated/kernel-tables.md``: the run's tables, grouped as
  the kernel benchmarks page explains them. At least one such file must exist: the
  build stops with an error naming the command otherwise (:data:`KERNELS_COMMAND`).

Every table comes with the exact command and the machine facts its run recorded.
"""

import json
import pathlib
import sys

import matplotlib.ticker  # noqa: F401 (used by _plot)

DOCS = pathlib.Path(__file__).resolve().parents[1]
OUT = DOCS / "_generated" / "demo-tables.md"
KERNELS_OUT = DOCS / "_generated" / "kernel-tables.md"

#: The command that writes the committed kernel run, from the repository root.
KERNELS_COMMAND = "python benchmarks/speed.py --reps 11 --json docs/data/kernels-avx512.json"


def _command_block(facts):
    """The lines that show the command a run recorded, as a shell block."""
    return ["", "Command:", "", "```bash", facts["command"], "```", ""]


def _name(lv):
    """``lut 16`` or ``rank 8`` (files written before low-rank points: lookup tables)."""
    kind = lv.get("kind", "lut")
    size = lv.get("size", lv.get("ncodebooks"))
    return f"lut {size}" if kind == "lut" else f"rank {size}"


def render(facts, source):
    shape = facts["shape"]
    t_np = facts["numpy_seconds"]
    lines = [
        f"**{shape['N']:,} x {shape['D']} @ {shape['D']} x {shape['M']} float32**, "
        f"kernel variant `{facts['kernel_variant']}`, {facts['kernel_threads']} kernel "
        f"thread(s), NumPy BLAS threads {facts['blas_threads']}; "
        f"{facts['cpu']}, {facts['cores']} cores, {facts['platform']}; approxmat "
        f"{facts['approxmat']}, NumPy {facts['numpy']}; {facts['date']}. "
        f"Medians of {facts['repeat']} interleaved calls.",
        *_command_block(facts),
        "| point | KiB | validated error | test error (same photo) "
        "| error (new photo) | `x @ W` ms | NumPy ms | speedup |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in facts["levels"]:
        lines.append(
            f"| {_name(lv)} | {lv['table_bytes'] / 1024:.0f} | {lv['val_err']:.4f} "
            f"| {lv['test_err']:.4f} | {lv['new_err']:.4f} | {lv['seconds'] * 1e3:.1f} "
            f"| {t_np * 1e3:.1f} | {t_np / lv['seconds']:.2f} |"
        )
    if facts.get("budgets"):
        lines += [
            "",
            "Under a budget, the point each call took (for all rows, and for one row):",
            "",
            "| `tolerance` | chosen | error (new photo) | `x @ W` ms | speedup "
            "| chosen for one row |",
            "|---:|---|---:|---:|---:|---|",
        ]
        for b in facts["budgets"]:
            lines.append(
                f"| {b['tolerance']:g} | {b['chosen']} | {b['new_err']:.4f} "
                f"| {b['seconds'] * 1e3:.1f} | {t_np / b['seconds']:.2f} "
                f"| {b['chosen_one_row']} |"
            )
    if facts.get("note"):
        lines += ["", f"Note: {facts['note']}"]
    figure = _plot(facts, source)
    lines += ["", f"![Speedup against error, from docs/data/{source}]({figure})", "",
              f"(Source: `docs/data/{source}`.)", ""]
    return "\n".join(lines)


def _plot(facts, source):
    """Speedup against error for one run; returns the image path relative to docs/."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t_np = facts["numpy_seconds"]
    levels = facts["levels"]
    speed = [t_np / lv["seconds"] for lv in levels]
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    ax.plot([lv["test_err"] for lv in levels], speed, "o--", color="C1",
            label="error on unseen patches of the same photo")
    ax.plot([lv["new_err"] for lv in levels], speed, "o-", color="C0",
            label="error on the new photo")
    for lv, s in zip(levels, speed):
        ax.annotate(_name(lv), (lv["new_err"], s), textcoords="offset points",
                    xytext=(5, 4), fontsize=8)
    ax.plot([0], [1], "s", color="C3", label="NumPy (exact)")
    ax.axhline(1, color="0.7", lw=0.8, zorder=0)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("relative error of x @ W")
    ax.set_ylabel("speedup over NumPy")
    fig.legend(fontsize=8, loc="outside lower center", ncols=3)
    name = pathlib.Path(source).with_suffix(".png").name
    fig.savefig(OUT.parent / name, dpi=100)
    plt.close(fig)
    return f"/{OUT.parent.name}/{name}"  # from the docs source root


# -- Kernel benchmarks (benchmarks/speed.py --json) ----------------------------------

#: How the columns of ``speed.py``'s first table are split into the tables of the page
#: (the page explains each column). Columns a run has beyond these get a table of
#: their own, so a new column shows up without a change here.
KERNEL_TABLES = [
    ("The whole call `x @ W` through the API, against NumPy's `x @ weights`",
     ["numpy", "api 1t", "api 2t"]),
    ("The kernel alone, row-major x, against the memory floor",
     ["C 1t", "C nofl", "fl%", "fl%med", "floor", "C/floor"]),
    ("The kernel alone, column-major x",
     ["F 1t", "F+fl", "F 2t", "2t gain", "ref F", "ref/F1t", "F floor", "Glk/s"]),
]

_DIGITS = {"ms": 3, "us": 2, "%": 1, "ratio": 2, "G lookups/s": 1}
#: Units shown after a column's name in a header; the others are in the name itself.
_SHOWN_UNITS = {"ms": "ms", "us": "\u00b5s"}


def _cell(value, unit):
    if value is None:
        return ""
    if isinstance(value, int):
        return f"{value:,}".replace(",", "\u2009")  # thin space between thousands
    return f"{value:.{_DIGITS.get(unit, 3)}f}"


def _markdown_table(columns, rows, names):
    """Markdown table of the columns ``names`` (after the shape columns) of ``rows``."""
    index = {c["name"]: i for i, c in enumerate(columns)}
    shape = [c["name"] for c in columns if c["group"] == "shape"]
    picked = shape + [n for n in names if n in index]
    head = []
    for name in picked:
        unit = columns[index[name]]["unit"]
        label = name if name in shape else f"`{name}`"
        head.append(f"{label} {_SHOWN_UNITS[unit]}" if unit in _SHOWN_UNITS else label)
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(picked)]
    for row in rows:
        cells = [_cell(row[index[n]], columns[index[n]]["unit"]) for n in picked]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_kernels(facts, source):
    variant = f"`{facts['kernel_variant']}`"
    if facts.get("forced_isa"):
        variant += f" (forced by `APPROXMAT_FORCE_ISA={facts['forced_isa']}`)"
    lines = [
        f"**{facts['cpu']}**, {facts['usable_cores']} of {facts['cores']} cores usable, "
        f"{facts['platform']}; kernel variant {variant}; approxmat {facts['approxmat']}, "
        f"NumPy {facts['numpy']}; {facts['date']}. Times are minimums over "
        f"{facts['reps']} interleaved repetitions"
        + (" (`--quick`: the smaller configurations only)." if facts.get("quick") else "."),
        *_command_block(facts),
    ]
    kernels = facts["tables"]["kernels"]
    columns = kernels["columns"]
    known = {n for _, names in KERNEL_TABLES for n in names}
    extra = [c["name"] for c in columns if c["group"] != "shape" and c["name"] not in known]
    for title, names in KERNEL_TABLES + ([("Other columns", extra)] if extra else []):
        lines += [f"*{title}:*", ""] + _markdown_table(columns, kernels["rows"], names) + [""]
    latency = facts["tables"].get("latency")
    if latency and latency["rows"]:
        names = [c["name"] for c in latency["columns"] if c["group"] != "shape"]
        lines += [f"*Small calls: {latency['title']}:*", ""]
        lines += _markdown_table(latency["columns"], latency["rows"], names) + [""]
    lines += [f"(Source: `docs/data/{source}`.)", ""]
    return "\n".join(lines)


def main_kernels(out=KERNELS_OUT):
    runs = sorted((DOCS / "data").glob("kernels-*.json"))
    if not runs:
        msg = (f"docs/scripts/perf_tables.py: no docs/data/kernels-*.json, so the kernel "
               f"benchmarks page has no figures. Measure and commit a run, from the "
               f"repository root on an otherwise idle machine:\n    {KERNELS_COMMAND}")
        print(f"\nerror: {msg}\n", file=sys.stderr)  # Sphinx buries the traceback
        raise FileNotFoundError(msg)
    text = "\n".join(render_kernels(json.loads(p.read_text()), p.name) for p in runs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out


def main(out=OUT):
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = sorted((DOCS / "data").glob("demo-*.json"))
    if runs:
        text = "\n".join(render(json.loads(p.read_text()), p.name) for p in runs)
    else:
        text = "*No measured run is committed yet (see the command above).*\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out


if __name__ == "__main__":
    print(main())
    print(main_kernels())
