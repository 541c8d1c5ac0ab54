"""Render the measured tables of the performance page from committed JSON runs.

Run by docs/conf.py at build time (or by hand). Reads ``docs/data/demo-*.json``,
each written by ``python -m approxmat demo --json PATH``, and writes
``docs/_generated/demo-tables.md``, one table per run with the exact command and
the machine facts the run recorded. Nothing here measures anything: refresh a
table by running its command again and committing the JSON.
"""

import json
import pathlib

import matplotlib.ticker  # noqa: F401 (used by _plot)

DOCS = pathlib.Path(__file__).resolve().parents[1]
OUT = DOCS / "_generated" / "demo-tables.md"


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
        "",
        "Command:",
        "",
        "```bash",
        facts["command"],
        "```",
        "",
        "| codebooks | table KiB | validated error | test error (same photo) "
        "| error (new photo) | `x @ W` ms | NumPy ms | speedup |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in facts["levels"]:
        lines.append(
            f"| {lv['ncodebooks']} | {lv['table_bytes'] / 1024:.0f} | {lv['val_err']:.4f} "
            f"| {lv['test_err']:.4f} | {lv['new_err']:.4f} | {lv['seconds'] * 1e3:.1f} "
            f"| {t_np * 1e3:.1f} | {t_np / lv['seconds']:.2f} |"
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
        ax.annotate(f"C={lv['ncodebooks']}", (lv["new_err"], s), textcoords="offset points",
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


def main(out=OUT):
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
