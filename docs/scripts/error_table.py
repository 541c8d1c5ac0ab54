"""Write docs/_generated/error-table.md: bad inputs tried and the messages they get.

Every row runs the real library at docs build time, so the table cannot drift from
the code; an input that stops raising breaks the build.
"""

import io
import pathlib
import warnings

import numpy as np

import approxmat as am
from approxmat import _testing

OUT = pathlib.Path(__file__).resolve().parents[1] / "_generated" / "error-table.md"

rng = np.random.default_rng(0)
weights = rng.standard_normal((16, 4))
W = am.ApproxMatrix(weights).fit(rng.standard_normal((400, 16)), ncodebooks=[4], random_state=0)


def bad_file():
    buf = io.BytesIO()
    W.save(buf)
    data = bytearray(buf.getvalue())
    data[100] ^= 1
    return io.BytesIO(bytes(data))


def truncated_file():
    buf = io.BytesIO()
    W.save(buf)
    return io.BytesIO(buf.getvalue()[:-50])


def readonly():
    out = np.empty((3, 4))
    out.flags.writeable = False
    return np.matmul(np.ones((3, 16)), W, out=out)


def strict_budget():
    tolerance = W.levels[0].error * 1.01  # the level qualifies on paper ...
    far = 50 * rng.standard_normal((100, 16))  # ... but these rows are far from calibration
    with am.config(verify=100, tolerance=tolerance, on_violation="raise"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", am.DriftWarning)
            # Costs by size, not timing: on this small shape the exact product may well
            # be predicted faster, and the budget would not approximate at all.
            return far @ _testing.with_costs(W)


CASES = [
    ("weights of 1 dimension", lambda: am.ApproxMatrix(np.ones(5))),
    ("complex weights", lambda: am.ApproxMatrix(np.ones((2, 2), complex))),
    ("weights with NaN", lambda: am.ApproxMatrix(np.array([[1.0, np.nan]]))),
    ("`x` of the wrong width", lambda: np.ones((3, 5)) @ W),
    ("`np.dot` with the wrong width", lambda: np.dot(np.ones((3, 5)), W)),
    ("`out=` of the wrong shape", lambda: np.matmul(np.ones((3, 16)), W, out=np.empty((3, 5)))),
    ("`out=` of an integer dtype", lambda: np.matmul(np.ones((3, 16)), W, out=np.empty((3, 4), int))),
    ("read-only `out=`", readonly),
    ("writing into `W`", lambda: W.__setitem__(0, 1.0)),
    ("`W += 1`", lambda: W.__iadd__(1)),
    ("too few calibration rows", lambda: am.ApproxMatrix(weights).fit(np.ones((10, 16)))),
    ("calibration rows of the wrong width", lambda: am.ApproxMatrix(weights).fit(np.ones((400, 3)))),
    ("NaN in calibration rows", lambda: am.ApproxMatrix(weights).fit(np.full((400, 16), np.nan))),
    ("more codebooks than columns", lambda: am.ApproxMatrix(weights).fit(np.ones((400, 16)), ncodebooks=32)),
    ("negative tolerance", lambda: am.config(tolerance=-1)),
    ("zero threads", lambda: am.config(threads=0)),
    ("unknown setting", lambda: am.config(tolerence=0.1)),
    ("`verify=0`", lambda: am.config(verify=0)),
    ("bit-flipped file", lambda: am.load(bad_file())),
    ("truncated file", lambda: am.load(truncated_file())),
    ("budget exceeded with `on_violation='raise'`", strict_budget),
]


def main():
    lines = ["| input | exception | message |", "|---|---|---|"]
    for what, action in CASES:
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - recording what users see
            message = str(exc).replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {what} | `{type(exc).__name__}` | {message} |")
        else:
            raise SystemExit(f"error_table.py: {what!r} no longer raises")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
