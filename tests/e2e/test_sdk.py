"""The Python SDK (sdk/python, package emberd; issue 16) against a real daemon: every call of
its README's table, the error classes, streaming both ways, a >1 MiB file round trip, the
context manager deleting its sandbox, and the README's quick starts run as written.

The SDK talks to the daemon by itself, so these exchanges do not pass harness.Daemon's contract
checker. The daemon has --auth-token-file and --unix: the SDK reaches it over TCP with the token
(from EMBERD_TOKEN_FILE, as emberctl) and over the Unix socket without one.

Boots: one python sandbox for the class, one shell sandbox for the context manager, and one
(python, a clone of the first's template) per README example.
"""

import ast
import glob
import hashlib
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SDK = os.path.join(harness.REPO, "sdk", "python")
sys.path.insert(0, SDK)
import emberd  # noqa: E402
from emberd import Sandbox  # noqa: E402

TOKEN = "sdk-test-token-0123456789"


def fenced(text, info):
    """The bodies of the ```info blocks of a Markdown text."""
    return re.findall(r"^```" + info + r"\n(.*?)^```", text, re.S | re.M)


def section(text, heading):
    """A Markdown text from its `## heading` to the next `## `."""
    start = text.index("\n## " + heading + "\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


class OfflineTest(unittest.TestCase):
    """What needs no daemon: addresses, the error table, Python 3.9 syntax, pip install."""

    def test_addresses_follow_emberctl(self):
        cases = {"127.0.0.1:7777": ("127.0.0.1", 7777), "localhost:80": ("localhost", 80),
                 "http://127.0.0.1:9": ("127.0.0.1", 9), "[::1]:7777": ("::1", 7777)}
        for text, (host, port) in cases.items():
            a = emberd.parse_addr(text)
            self.assertEqual((a.host, a.port, a.unix_path), (host, port, None), text)
        self.assertEqual(emberd.parse_addr("unix:/run/emberd/api.sock").unix_path,
                         "/run/emberd/api.sock")
        for bad in ("127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", "::1:7777", ":7777",
                    "http://127.0.0.1:7777/", "host:+80", "unix:"):
            with self.assertRaises(ValueError, msg=bad):
                emberd.parse_addr(bad)
        env = dict(os.environ, EMBERD_ADDR="unix:/tmp/x.sock")
        env.pop("EMBERD_TOKEN_FILE", None)
        out = subprocess.run([sys.executable, "-c", "import emberd; c = emberd.Client(); "
                              "print(c.address, c.token)"], env={**env, "PYTHONPATH": SDK},
                             capture_output=True, text=True, check=True)
        self.assertEqual(out.stdout, "unix:/tmp/x.sock None\n")

    def test_one_exception_class_per_api_error_code(self):
        with open(os.path.join(harness.REPO, "docs", "openapi.yaml"), encoding="utf-8") as f:
            spec = f.read()
        m = re.search(r"code:\s*\n\s*type: string\s*\n\s*enum: \[([^\]]*)\]", spec)
        codes = {c.strip() for c in m.group(1).split(",")}
        self.assertEqual(set(emberd.ERROR_CLASSES), codes)
        for code, cls in emberd.ERROR_CLASSES.items():
            self.assertTrue(issubclass(cls, emberd.EmberdError))
            e = emberd.errors.error_for(code, "msg", 499)
            self.assertIs(type(e), cls)
            self.assertEqual((e.code, e.message, e.status), (code, "msg", 499))
        unknown = emberd.errors.error_for("brand_new", "x", 418)
        self.assertIs(type(unknown), emberd.EmberdError)
        self.assertEqual(unknown.code, "brand_new")

    def test_sources_are_python_3_9(self):
        for path in glob.glob(os.path.join(SDK, "emberd", "*.py")):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            ast.parse(text, path, feature_version=(3, 9))  # no match, no new syntax
            if not path.endswith("__init__.py"):
                # annotations stay strings: typing's newer spellings never run on 3.9
                self.assertIn("from __future__ import annotations", text, path)
        self.assertTrue(os.path.exists(os.path.join(SDK, "emberd", "py.typed")))

    def test_types_check_strictly(self):
        out = subprocess.run(["mypy", "--strict", "--python-version", "3.9",
                              "--cache-dir", "/dev/null", "emberd"], cwd=SDK,
                             capture_output=True, text=True, timeout=600)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_pip_installs_it_offline(self):
        # a copy: pip builds in the source tree (build/, *.egg-info); the build backend is the
        # setuptools already installed (build isolation would download one)
        tmp = tempfile.mkdtemp(prefix="emberd-sdk-pip.")
        try:
            src = os.path.join(tmp, "src")
            shutil.copytree(SDK, src, ignore=shutil.ignore_patterns("__pycache__"))
            target = os.path.join(tmp, "target")
            out = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index",
                                  "--no-build-isolation", "--no-deps", "--quiet", "--target",
                                  target, src], capture_output=True, text=True, timeout=300)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertTrue(os.path.exists(os.path.join(target, "emberd", "py.typed")))
            out = subprocess.run([sys.executable, "-c", "import emberd; print(emberd.__file__)"],
                                 env=dict(os.environ, PYTHONPATH=target), cwd=tmp,
                                 capture_output=True, text=True, check=True)
            self.assertTrue(out.stdout.startswith(target), out.stdout)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class RetryTest(unittest.TestCase):
    """A GET is tried again after a broken connection; a POST never is. A local listener that
    hangs up on its first connection stands in for a daemon restarting."""

    def serve(self, answers):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        self.addCleanup(listener.close)
        self.listener = listener
        seen = []

        def run():
            for answer in answers:
                conn, _ = listener.accept()
                with conn:
                    seen.append(conn.recv(65536).split(b"\r\n", 1)[0])
                    if answer is not None:
                        conn.sendall(answer)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return emberd.Client(addr=f"127.0.0.1:{listener.getsockname()[1]}", timeout=30), seen

    def test_get_retried_after_a_hang_up(self):
        body = b'{"sandboxes": []}'
        ok = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
              + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        client, seen = self.serve([None, ok])
        self.assertEqual(Sandbox.list(client=client), [])
        self.assertEqual(seen, [b"GET /sandboxes HTTP/1.1"] * 2)

    def test_post_not_retried(self):
        client, seen = self.serve([None])
        with self.assertRaises(emberd.ConnectionFailed):
            Sandbox.create(pack="shell", client=client)
        self.assertEqual(seen, [b"POST /sandboxes HTTP/1.1"])
        self.listener.settimeout(1)  # nothing came after it
        with self.assertRaises(socket.timeout):
            self.listener.accept()


class SdkTest(unittest.TestCase):
    """One daemon and one python sandbox for every check."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emberd-sdk.", dir="/tmp")
        cls.token_file = os.path.join(cls.tmp, "token")
        with open(cls.token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(cls.token_file, 0o600)
        cls.sock = os.path.join(cls.tmp, "api.sock")
        cls.d = harness.Daemon("--auth-token-file", cls.token_file, "--unix", cls.sock)
        try:
            cls.client = emberd.Client(addr=cls.d.addr, token_file=cls.token_file)
            cls.sb = Sandbox.create(pack="python", labels={"suite": "sdk"}, client=cls.client)
        except BaseException:
            cls.d.stop(check=False)
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.sb.delete()
        finally:
            cls.d.stop()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_exec_buffered(self):
        r = self.sb.exec("import os; print(input(), os.environ['FOO'])", stdin="hello",
                         env={"FOO": "bar"}, timeout=60)
        self.assertIsInstance(r, emberd.ExecResult)
        self.assertEqual((r.stdout, r.stderr, r.exit_code, r.timed_out, r.ok),
                         ("hello bar\n", "", 0, False, True))
        self.assertEqual(set(r.timing), {"queued_us", "spawn_us", "run_us"})
        r = self.sb.exec("import sys; sys.stdout.buffer.write(b'\\x00\\xff'); sys.exit(4)")
        self.assertEqual((r.stdout_bytes, r.exit_code, r.ok), (b"\x00\xff", 4, False))
        r = self.sb.exec("import time; time.sleep(60)", timeout=2)
        self.assertEqual((r.timed_out, r.exit_code, r.signal), (True, -1, 9))
        r = self.sb.exec("print('x' * 100)", max_output_bytes=10, fresh_interpreter=True)
        self.assertEqual((r.stdout, r.truncated), ("x" * 10, True))

    def test_exec_stream(self):
        code = "import sys, time\nprint('one', flush=True)\ntime.sleep(0.5)\n" \
               "print('two', file=sys.stderr, flush=True)\nsys.exit(3)"
        with self.sb.exec_stream(code, timeout=60) as stream:
            events = list(stream)
        self.assertEqual([e.type for e in events], ["stdout", "stderr", "exit"])
        self.assertEqual((events[0].data, events[1].text), (b"one\n", "two\n"))
        self.assertEqual((stream.result.exit_code, stream.result.stdout, stream.result.stderr),
                         (3, "one\n", "two\n"))
        self.assertIs(events[2].result, stream.result)
        self.assertEqual(self.sb.exec_stream("print(5 * 5)").wait().stdout, "25\n")
        # a stream dropped early cancels its exec (the daemon kills it) and the sandbox goes on
        stream = self.sb.exec_stream("import time\nprint('go', flush=True)\ntime.sleep(600)")
        self.assertEqual(next(iter(stream)).text, "go\n")
        stream.close()
        self.assertEqual(self.sb.exec("print('after')").stdout, "after\n")

    def test_contexts(self):
        with self.sb.create_context(env={"GREETING": "hi"}) as ctx:
            self.assertEqual(ctx.language, "python")
            r = ctx.run("import os\nx = 6")
            self.assertEqual((r.result, r.error, r.exit_code), (None, None, 0))
            r = ctx.run("print(os.environ['GREETING'])\nx * 7")
            self.assertEqual((r.stdout, r.result), ("hi\n", "42"))
            r = ctx.run("x / 0")
            self.assertEqual((r.error.name, r.error.value, r.exit_code, r.ok),
                             ("ZeroDivisionError", "division by zero", 1, False))
            self.assertIn("ZeroDivisionError", r.error.traceback)
            r = ctx.run("class B:\n    def _repr_html_(self):\n        return '<b>x</b>'\nB()")
            self.assertEqual([(x.mime, x.data) for x in r.results], [("text/html", "<b>x</b>")])
            events = list(ctx.run_stream("print('s')\nx"))
            # a context's print may come as more than one event ("s", then "\n")
            self.assertEqual({e.type for e in events[:-1]}, {"stdout"})
            self.assertEqual(b"".join(e.data for e in events[:-1]), b"s\n")
            self.assertEqual((events[-1].type, events[-1].result.result), ("exit", "6"))
            self.assertEqual([c.id for c in self.sb.contexts()], [ctx.id])
            self.assertEqual(self.sb.context(ctx.id).refresh().info["execs"], 5)
            self.assertEqual(ctx.restart().info["restarts"], 1)
            self.assertEqual(ctx.run("x").error.name, "NameError")
        with self.assertRaises(emberd.NotFound):
            ctx.refresh()

    def test_files(self):
        f = self.sb.files
        written = f.write("sdk/notes/hello.txt", "hello\n", mkdir=True)
        self.assertEqual((written.path, written.size, written.sha256),
                         ("/home/sandbox/sdk/notes/hello.txt", 6,
                          hashlib.sha256(b"hello\n").hexdigest()))
        self.assertEqual(f.read("sdk/notes/hello.txt"), b"hello\n")
        self.assertEqual(f.read_text("/home/sandbox/sdk/notes/hello.txt"), "hello\n")
        f.mkdir("sdk/out/deep", parents=True)
        with self.assertRaises(emberd.Conflict) as cm:
            f.mkdir("sdk/notes")
        self.assertEqual((cm.exception.status, cm.exception.code), (409, "conflict"))
        self.assertEqual([(e.name, e.type) for e in f.list("sdk")],
                         [("notes", "dir"), ("out", "dir")])
        entry, = f.list("sdk/notes/hello.txt")
        self.assertEqual((entry.name, entry.type, entry.size, entry.mode),
                         ("hello.txt", "file", 6, "0644"))
        self.assertIn(("sdk", "dir"), [(e.name, e.type) for e in f.list()])  # /home/sandbox
        f.move("sdk/notes/hello.txt", "sdk/out/hello.txt")
        self.assertEqual((f.exists("sdk/notes/hello.txt"), f.exists("sdk/out/hello.txt")),
                         (False, True))
        with self.assertRaises(emberd.Forbidden):
            f.write("/etc/passwd", b"x")
        with self.assertRaises(emberd.NotFound):
            f.read("sdk/nothing")
        f.remove("sdk", recursive=True)
        self.assertFalse(f.exists("sdk"))

    def test_large_file_round_trip_streams(self):
        size = 3 * 1024 * 1024 + 12345  # > 1 MiB, not a multiple of a piece
        data = os.urandom(size)
        digest = hashlib.sha256(data).hexdigest()
        written = self.sb.files.write("big.bin", io.BytesIO(data), mode="0600")
        self.assertEqual((written.size, written.sha256), (size, digest))
        with self.sb.files.open_read("big.bin") as src:
            self.assertEqual(src.size, size)
            h, total = hashlib.sha256(), 0
            while True:
                piece = src.read(100000)
                if not piece:
                    break
                h.update(piece)
                total += len(piece)
        self.assertEqual((total, h.hexdigest()), (size, digest))
        # a writer fed piece by piece; the guest sees the same bytes
        with self.sb.files.open_write("big2.bin") as out:
            for start in range(0, size, 300000):
                out.write(data[start:start + 300000])
        self.assertEqual(out.result.sha256, digest)
        self.assertEqual(self.sb.files.read("big2.bin"), data)
        r = self.sb.exec("import hashlib; print(hashlib.sha256(open('big2.bin', 'rb')"
                         ".read()).hexdigest())")
        self.assertEqual(r.stdout, digest + "\n")
        # a writer dropped by an exception leaves nothing behind
        with self.assertRaises(RuntimeError):
            with self.sb.files.open_write("partial.bin") as out:
                out.write(data[:200000])
                raise RuntimeError("changed my mind")
        self.assertFalse(self.sb.files.exists("partial.bin"))
        self.sb.files.remove("big.bin")
        self.sb.files.remove("big2.bin")

    def test_processes(self):
        p = self.sb.processes
        proc = p.start(cmd=["sh", "-c", 'read line; echo "got $line"; exit 3'], stdin=True,
                       tag="sdk")
        self.assertEqual((proc.state, proc.info["tag"]), ("running", "sdk"))
        proc.send_stdin("hello\n", close=True)
        events = list(p.follow(proc.pid))
        self.assertEqual([(e.type, e.text) for e in events[:-1]], [("stdout", "got hello\n")])
        self.assertEqual((events[-1].type, events[-1].raw["exit_code"]), ("exit", 3))
        got = p.get(proc.pid)
        self.assertEqual((got.state, got.exit_code, got.stdout), ("exited", 3, "got hello\n"))
        sleeper = p.start(code="import time\nprint('up', flush=True)\ntime.sleep(600)")
        self.assertIn(sleeper.pid, [x.pid for x in p.list()])
        first = next(iter(sleeper.follow()))
        self.assertEqual(first.text, "up\n")
        sleeper.signal("TERM")
        done = sleeper.wait()
        self.assertEqual((done.state, done.info["signal"]), ("exited", 15))
        with self.assertRaises(emberd.Conflict):
            sleeper.signal("KILL")
        with self.assertRaises(emberd.InvalidArgument):
            p.signal(proc.pid, "TERMINATE")

    def test_set_timeout_and_refresh(self):
        before = self.sb.refresh().info["expires_at"]
        self.assertEqual(self.sb.set_timeout(1200).info["timeout_s"], 1200)
        self.assertNotEqual(self.sb.info["expires_at"], before)
        self.assertEqual(Sandbox.connect(self.sb.id, client=self.client).info["timeout_s"], 1200)
        self.assertIn("boot done", self.sb.console())

    def test_errors(self):
        with self.assertRaises(emberd.NotFound) as cm:
            Sandbox.connect("sb_00000000000000000000000000000000", client=self.client)
        e = cm.exception
        self.assertEqual((e.status, e.code), (404, "not_found"))
        self.assertIn("sb_00000000000000000000000000000000", e.message)
        self.assertIsInstance(e, emberd.EmberdError)
        with self.assertRaises(emberd.InvalidArgument) as cm:
            Sandbox.create(vcpus=0, client=self.client)
        self.assertEqual(cm.exception.status, 400)
        self.assertIn("vcpus", cm.exception.message)
        with self.assertRaises(emberd.InvalidArgument):
            self.sb.exec("print(1)", timeout=601)  # over --max-exec-timeout-ms
        # no token over TCP: 401; the Unix socket needs none
        with self.assertRaises(emberd.Unauthorized):
            Sandbox.list(client=emberd.Client(addr=self.d.addr, token_file=""))
        unix = emberd.Client(addr="unix:" + self.sock, token_file="")
        self.assertIn(self.sb.id, [s.id for s in Sandbox.list(client=unix)])
        with self.assertRaises(emberd.ConnectionFailed):
            emberd.Client(addr="unix:" + self.sock + ".none").health()

    def test_list_by_labels(self):
        ids = [s.id for s in Sandbox.list(labels={"suite": "sdk"}, client=self.client)]
        self.assertEqual(ids, [self.sb.id])
        self.assertEqual([s.id for s in Sandbox.list(labels=["suite"], state="ready",
                                                     client=self.client)], [self.sb.id])
        self.assertEqual(Sandbox.list(labels={"suite": "other"}, client=self.client), [])
        self.assertEqual(self.client.health()["status"], "ok")
        self.assertIn("python", [p["name"] for p in self.client.packs()])

    def test_context_manager_deletes_the_sandbox(self):
        with Sandbox.create(pack="shell", labels={"owner": "with-block"},
                            client=self.client) as sb:
            self.assertEqual(sb.state, "ready")
            self.assertEqual(sb.labels, {"owner": "with-block"})
            self.assertEqual(sb.exec("echo $((6 * 7))").stdout, "42\n")
            self.assertEqual([s.id for s in Sandbox.list(labels={"owner": None},
                                                         client=self.client)], [sb.id])
            self.assertEqual(Sandbox.connect(sb.id, client=self.client).pack, "shell")
        with self.assertRaises(emberd.NotFound):
            Sandbox.connect(sb.id, client=self.client)
        self.assertEqual(Sandbox.list(labels={"owner": None}, client=self.client), [])

    def run_example(self, code):
        env = dict(os.environ, EMBERD_ADDR=self.d.addr, EMBERD_TOKEN_FILE=self.token_file,
                   PYTHONPATH=SDK)
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=self.tmp,
                             capture_output=True, text=True, timeout=600)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def test_readme_quick_start_runs_as_written(self):
        with open(os.path.join(SDK, "README.md"), encoding="utf-8") as f:
            text = section(f.read(), "Quick start")
        code, = fenced(text, "python")
        expected, = fenced(text, "text")
        self.assertLessEqual(len(code.strip().splitlines()), 12, "a quick start is short")
        self.assertEqual(self.run_example(code), expected)
        self.assertEqual(Sandbox.list(labels={"team": "docs"}, client=self.client), [])

    def test_top_level_readme_example_runs(self):
        with open(os.path.join(harness.REPO, "README.md"), encoding="utf-8") as f:
            text = section(f.read(), "Python SDK")
        code, = fenced(text, "python")
        expected, = fenced(text, "text")
        self.assertEqual(self.run_example(code), expected)


if __name__ == "__main__":
    unittest.main()
