"""Draw docs/_generated/how-it-works.png: encode, look up, sum, on one real fit.

Run by docs/conf.py at build time (or by hand: ``python docs/scripts/how_it_works.py``).
A small ApproxMatrix (D = 16, M = 6, 4 codebooks) is fitted on seeded synthetic rows;
the figure follows one row through the three steps of a call, using the fitted
level's own parameters, so it shows what the library computes.
"""

import pathlib

import numpy as np

OUT = pathlib.Path(__file__).resolve().parents[1] / "_generated" / "how-it-works.png"


def main(out=OUT):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import approxmat as am
    from approxmat._reference import encode

    rng = np.random.default_rng(7)
    D, M, C = 16, 6, 4
    basis = rng.standard_normal((4, D))
    X = (rng.standard_normal((3000, 4)) @ basis + 0.3 * rng.standard_normal((3000, D)))
    X = X.astype(np.float32)
    weights = rng.standard_normal((D, M)).astype(np.float32)
    W = am.ApproxMatrix(weights).fit(X, ncodebooks=[C], random_state=0)
    level = W._levels[0]
    x = X[:1]
    codes = encode(x, level.split_dims, level.thresholds)[0]
    luts = level.luts.astype(np.float64)
    picked = luts[np.arange(C), codes]  # (C, M) table rows the call reads
    approx = (x @ W)[0]
    exact = (x @ weights)[0]

    colors = [f"C{c}" for c in range(C)]
    fig = plt.figure(figsize=(10, 3.6), layout="constrained")
    grid = fig.add_gridspec(1, 3, width_ratios=[1.15, 1.3, 1.0])

    # 1. encode: the row, and the column each tree level of each codebook tests.
    ax = fig.add_subplot(grid[0])
    ax.bar(np.arange(D), x[0], color="0.75", width=0.8)
    ax.axhline(0, color="0.5", lw=0.6)
    low = min(x[0].min(), 0) - 0.4
    for c in range(C):
        cols = level.split_dims[c]
        ax.plot(cols, np.full(len(cols), low - 0.5 * c), "o", color=colors[c], ms=5)
        ax.text(D - 0.3, low - 0.5 * c, f"codebook {c}: code {codes[c]:>2}", va="center",
                fontsize=7, color=colors[c])
    ax.set_xlim(-0.8, D + 6.5)
    ax.set_ylim(low - 0.5 * C, x[0].max() + 0.5)
    ax.set_xticks([0, 5, 10, 15])
    ax.set_title("1. encode: 4 comparisons per codebook", fontsize=9)
    ax.set_xlabel("column d of the row x (D = 16); dots: columns\n"
                  "a codebook's tree compares with its thresholds", fontsize=8)
    ax.set_ylabel("x[d]", fontsize=8)

    # 2. look up: one table per codebook, 16 rows (leaves) x M columns; the row
    #    selected by the code is outlined.
    ax = fig.add_subplot(grid[1])
    stacked = np.concatenate([luts[c] for c in range(C)], axis=0)  # (C*16, M)
    ax.imshow(stacked.T, aspect="auto", cmap="Greys", interpolation="nearest")
    for c in range(C):
        ax.axvline(c * 16 - 0.5, color="w", lw=2)
        ax.add_patch(plt.Rectangle((c * 16 + codes[c] - 0.5, -0.5), 1, M,
                                   fill=False, edgecolor=colors[c], lw=2))
    ax.set_xticks([c * 16 + 7.5 for c in range(C)], [f"table {c}" for c in range(C)],
                  fontsize=8)
    ax.set_yticks(range(M), [f"m={m}" for m in range(M)], fontsize=7)
    ax.set_title("2. look up: each code picks 1 of 16 entries per output", fontsize=9)
    ax.set_xlabel("8-bit tables: 16 leaves x M outputs per codebook", fontsize=8)

    # 3. sum: the C picked entries per output add up (exactly, as integers), then
    #    one scale and offset per column give the estimate.
    ax = fig.add_subplot(grid[2])
    bottom = np.zeros(M)
    for c in range(C):
        ax.barh(np.arange(M), picked[c], left=bottom, color=colors[c], height=0.6)
        bottom += picked[c]
    ax.set_yticks(range(M), [f"m={m}" for m in range(M)], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("sum of table entries (integer)", fontsize=8)
    ax.set_title("3. sum, then y = sum * scale + offset", fontsize=9)
    rel = np.linalg.norm(approx - exact) / np.linalg.norm(exact)
    for m in range(M):
        ax.text(bottom[m] + 5, m, f"{approx[m]:+.2f} (exact {exact[m]:+.2f})",
                va="center", fontsize=7)
    ax.set_xlim(0, bottom.max() * 1.9)
    ax.text(0.98, 0.02, f"this row: relative error {rel:.2f}", transform=ax.transAxes,
            ha="right", fontsize=7)

    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(main())
