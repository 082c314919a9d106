# context.py - the interpreter loop of a python code context (docs/guest.md "Contexts").
#
# Started by the guest agent as the sandbox user, in the context's own cgroup and session:
#   fd 0  commands from the agent, one per line: "run <path of the code file>"
#   fd 1  the context's stdout (a pipe the agent reads), fd 2 its stderr
#   fd 3  replies to the agent, one per line: "ready", then per run "done <JSON>"
# Globals, imports, the working directory and the environment persist between runs. A run's
# JSON: {"exit_code", "result", "error", "results"} (src/proto/ctxmsg.h). The agent trusts none
# of it: it parses it strictly and bounded. SIGINT during a run raises KeyboardInterrupt in the
# code (reported as its error; the context survives); between runs it is ignored.
import ast
import base64
import builtins
import io
import json
import linecache
import os
import signal
import sys
import traceback
import types

RESULT_MAX = 60 * 1024          # PROTO_RESULT_TEXT_MAX, with room for the JSON escaping
ERROR_MAX = 60 * 1024           # PROTO_ERROR_TEXT_MAX, likewise
RESULTS_MAX = 8                 # PROTO_RESULTS_MAX
RESULTS_BYTES_MAX = 600 * 1024  # PROTO_RESULTS_BYTES_MAX, likewise
REPLY_MAX = 1000 * 1024         # under GUEST_CONTEXT_REPLY_MAX, with "done " and the newline
TEXT_CUT = 16 * 1024            # a text cut to fit the reply: escaped, three of them fit
CELLS_KEPT = 256                # cell sources kept for tracebacks of functions defined in them
RICH = (("_repr_png_", "image/png", True), ("_repr_jpeg_", "image/jpeg", True),
        ("_repr_svg_", "image/svg+xml", False), ("_repr_html_", "text/html", False),
        ("_repr_markdown_", "text/markdown", False), ("_repr_latex_", "text/latex", False),
        ("_repr_json_", "application/json", False))


def cut(text, limit):
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data.decode("utf-8")
    return data[:limit].decode("utf-8", "ignore") + "\n[... cut]"


def rich_results(value, out):
    """Appends value's _repr_*_ renderings to out, within the bounds out leaves room for."""
    total = results_size(out)
    for attr, mime, binary in RICH:
        method = getattr(type(value), attr, None)
        if method is None or len(out) >= RESULTS_MAX:
            continue
        try:
            data = method(value)
        except Exception:  # a broken _repr_*_ is no result, not a failed run
            continue
        if data is None:
            continue
        if isinstance(data, tuple) and len(data) == 2:  # (data, metadata)
            data = data[0]
        if binary:
            if isinstance(data, str):
                data = data.encode("latin-1", "replace")
            if not isinstance(data, (bytes, bytearray)):
                continue
            text = base64.b64encode(bytes(data)).decode("ascii")
        elif mime == "application/json":
            try:
                text = json.dumps(data)
            except (TypeError, ValueError):
                continue
        else:
            if isinstance(data, bytes):
                data = data.decode("utf-8", "replace")
            if not isinstance(data, str):
                continue
            text = data
        size = len(text.encode("utf-8"))
        if total + size > RESULTS_BYTES_MAX:
            continue  # too large to carry: the text/plain result still is
        total += size
        out.append({"mime": mime, "data": text})


def results_size(results):
    return sum(len(r["data"].encode("utf-8")) for r in results)


def figure_results(out):
    """Like Jupyter's inline backend: every figure the run left open is appended to out as a PNG
    (within the bounds) and closed. Only when the user's code imported pyplot: never imports it."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return
    try:
        from matplotlib._pylab_helpers import Gcf
        figures = [manager.canvas.figure for manager in Gcf.get_all_fig_managers()]
    except Exception:  # a pyplot this does not know: no figures rather than a failed run
        return
    total = results_size(out)
    for figure in figures:
        try:
            if len(out) < RESULTS_MAX:
                buf = io.BytesIO()
                figure.savefig(buf, format="png", dpi="figure")
                text = base64.b64encode(buf.getvalue()).decode("ascii")
                if total + len(text) <= RESULTS_BYTES_MAX:
                    total += len(text)
                    out.append({"mime": "image/png", "data": text})
        except Exception:  # a figure that cannot render is left out, the others still come
            pass
        finally:
            try:
                pyplot.close(figure)
            except Exception:
                pass


def compile_cell(source, filename):
    """The cell as (body, last expression or None), like a notebook runs it."""
    tree = ast.parse(source, filename, "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    body = compile(tree, filename, "exec")
    return body, (compile(last, filename, "eval") if last is not None else None)


def describe(exc):
    """The exception as {name, value, traceback}, without this file's frames."""
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell-"):
        tb = tb.tb_next
    if isinstance(exc, SyntaxError):
        tb = None
    try:
        value = str(exc)
    except BaseException:  # the user's __str__ may raise too: the context lives on
        value = "<str() failed>"
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except BaseException:
        text = "%s: %s\n" % (type(exc).__name__, value)
    return {"name": type(exc).__name__, "value": cut(value, ERROR_MAX),
            "traceback": cut(text, ERROR_MAX)}


def dump(outcome):
    # Lone surrogates (source read with surrogateescape) are no UTF-8: "?" instead.
    return json.dumps(outcome, ensure_ascii=False).encode("utf-8", "replace").decode("utf-8")


def encode(outcome):
    """The outcome as one JSON line the agent takes (GUEST_CONTEXT_REPLY_MAX): escaping may
    grow it past that, so rich results go first, then the texts are cut."""
    text = dump(outcome)
    if len(text.encode("utf-8")) <= REPLY_MAX:
        return text
    outcome["results"] = []
    text = dump(outcome)
    if len(text.encode("utf-8")) <= REPLY_MAX:
        return text
    if outcome["result"] is not None:
        outcome["result"] = cut(outcome["result"], TEXT_CUT)
    if outcome["error"] is not None:
        for key in ("value", "traceback"):
            outcome["error"][key] = cut(outcome["error"][key], TEXT_CUT)
    return dump(outcome)


class Context:
    def __init__(self, commands, replies):
        self.commands = commands
        self.replies = replies
        self.runs = 0
        self.main = types.ModuleType("__main__")
        self.main.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = self.main

    def reply(self, text):
        self.replies.write(text + "\n")
        self.replies.flush()

    def run(self, path):
        outcome = {"exit_code": 0, "result": None, "error": None, "results": []}
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                source = f.read()
            self.runs += 1
            filename = "<cell-%d>" % self.runs
            # Tracebacks show the cell's lines, also from functions an earlier cell defined.
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
            linecache.cache.pop("<cell-%d>" % (self.runs - CELLS_KEPT), None)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            try:
                body, last = compile_cell(source, filename)
                exec(body, self.main.__dict__)
                if last is not None:
                    value = eval(last, self.main.__dict__)
                    if value is not None:
                        builtins._ = value
                        outcome["result"] = cut(repr(value), RESULT_MAX)
                        rich_results(value, outcome["results"])
            finally:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
        except SystemExit as e:
            code = e.code
            outcome["exit_code"] = code if isinstance(code, int) and 0 <= code <= 255 else \
                (0 if code is None else 1)
            if code is not None and not isinstance(code, int):
                try:
                    print(code, file=sys.stderr)
                except BaseException:
                    pass
        except BaseException as e:  # KeyboardInterrupt too: the context lives on
            outcome["exit_code"] = 1
            outcome["error"] = describe(e)
            try:
                sys.stderr.write(outcome["error"]["traceback"])
            except Exception:
                pass
        try:
            figure_results(outcome["results"])
        except BaseException:  # KeyboardInterrupt is ignored here, but be sure the context lives
            pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        return outcome

    def serve(self):
        self.reply("ready")
        for line in self.commands:
            if not line.startswith("run "):
                continue
            self.reply("done " + encode(self.run(line[4:].rstrip("\n"))))


def main():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    commands = os.fdopen(os.dup(0), "r", encoding="utf-8", errors="replace")
    replies = os.fdopen(os.dup(3), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.close(3)
    for fd in (commands.fileno(), replies.fileno()):
        os.set_inheritable(fd, False)
    # Unbuffered like `python3 -u`: output streams while a run is still going.
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True,
                                  encoding="utf-8", errors="backslashreplace")
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True,
                                  encoding="utf-8", errors="backslashreplace")
    sys.argv = [""]
    sys.path[0] = ""
    Context(commands, replies).serve()


if __name__ == "__main__":
    main()
