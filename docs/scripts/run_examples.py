"""Sphinx extension: run the examples of the documentation pages at build time.

An example is a fenced ``python`` code block right after the line ``<!-- example -->``
in a Markdown page. When the page is read, all of its examples run in order in one
fresh Python process (the interpreter of the docs build, so the installed approxmat),
in one namespace with ``__name__ == "__main__"``, like the cells of a notebook, in a
temporary working directory. What a block prints is shown below it in the built page.

A block that raises, or that warns (other than a deprecation warning of a library),
is reported as a Sphinx warning, which ``docs/build.sh`` (``-W``) turns into a failed
build. Pages with examples are read again on every build, so their examples always
run against the approxmat that is installed, even when the page did not change.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
import tempfile

from sphinx.util import logging

logger = logging.getLogger(__name__)

MARKER = "<!-- example -->"
#: Seconds a page's examples may take together before the build gives up on them.
TIMEOUT = 300
CAPTION = "Output, as printed when this page was built"

_FENCE = re.compile(r"^(`{3,})python\s*$")

# Runs in the child process: the blocks arrive as JSON on stdin, the results go to the
# file named by the first argument (stdout belongs to the examples).
_DRIVER = r"""
import contextlib, io, json, sys, time, traceback, warnings

request = json.load(sys.stdin)
namespace = {"__name__": "__main__"}
results = []
for number, code in enumerate(request["blocks"], 1):
    printed = io.StringIO()
    error = None
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with contextlib.redirect_stdout(printed):
            try:
                exec(compile(code, f"<{request['page']} example {number}>", "exec"),
                     namespace)
            except BaseException:
                error = traceback.format_exc()
    shown = [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})"
             for w in caught
             if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))]
    results.append({"printed": printed.getvalue(), "error": error, "warnings": shown,
                    "seconds": time.perf_counter() - start})
    if error is not None:
        break
with open(sys.argv[1], "w") as f:
    json.dump(results, f)
"""


def _blocks(lines):
    """``(index of the closing fence, code)`` of every example in ``lines``."""
    found = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != MARKER:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        fence = _FENCE.match(lines[j]) if j < len(lines) else None
        if fence is None:
            raise ValueError(f"line {i + 1}: {MARKER} is not followed by a ```python block")
        close = j + 1
        while close < len(lines) and lines[close].rstrip() != fence.group(1):
            close += 1
        if close == len(lines):
            raise ValueError(f"line {j + 1}: the example's code block is not closed")
        found.append((close, "\n".join(lines[j + 1 : close]) + "\n"))
        i = close + 1
    return found


def _run(docname, codes):
    with tempfile.TemporaryDirectory(prefix="approxmat-docs-") as tmp:
        report = pathlib.Path(tmp) / "results.json"
        work = pathlib.Path(tmp) / "work"
        work.mkdir()
        proc = subprocess.run(
            [sys.executable, "-c", _DRIVER, str(report)],
            input=json.dumps({"page": docname, "blocks": codes}),
            capture_output=True, text=True, cwd=work, timeout=TIMEOUT,
        )
        if not report.exists():
            raise RuntimeError(f"the examples' process ended with code {proc.returncode}:\n"
                               f"{proc.stderr[-4000:]}")
        return json.loads(report.read_text())


def _output_block(text):
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return ["", f"{fence}{{code-block}} text", f":caption: {CAPTION}", "",
            *text.rstrip("\n").split("\n"), fence]


def _source_read(app, docname, source):
    text = source[0]
    if MARKER not in text:
        return
    lines = text.split("\n")
    try:
        found = _blocks(lines)
        results = _run(docname, [code for _, code in found])
    except Exception as exc:  # noqa: BLE001 - reported as a build warning (an error)
        logger.warning("examples of %s could not run: %s", docname, exc, location=docname)
        return
    for number, ((close, _), result) in enumerate(zip(found, results), 1):
        where = f"example {number} of {docname}"
        if result["error"] is not None:
            logger.warning("%s raised:\n%s", where, result["error"], location=docname)
        for warning in result["warnings"]:
            logger.warning("%s warned: %s", where, warning, location=docname)
        logger.verbose("%s ran in %.2f s", where, result["seconds"])
    if len(results) < len(found):
        logger.warning("the examples of %s after number %d did not run", docname,
                       len(results), location=docname)
    # Insert the outputs from the last block up, so the earlier indices stay valid.
    for (close, _), result in reversed(list(zip(found, results))):
        if result["printed"].strip():
            lines[close + 1 : close + 1] = _output_block(result["printed"])
    source[0] = "\n".join(lines)


def _always_outdated(app, env, added, changed, removed):
    """The pages with examples, to be read (and their examples run) again."""
    pages = []
    for docname in sorted(env.found_docs - set(added) - set(changed) - set(removed)):
        path = pathlib.Path(env.doc2path(docname))
        if path.suffix == ".md" and MARKER in path.read_text(encoding="utf-8"):
            pages.append(docname)
    return pages


def setup(app):
    app.connect("source-read", _source_read)
    app.connect("env-get-outdated", _always_outdated)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
