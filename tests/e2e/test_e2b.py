"""The E2B-compatible listener (issue 17, docs/e2b.md) driven by the unmodified E2B SDKs.

E2bQemuTest and E2bFirecrackerTest each start one daemon (QEMU; the fake Firecracker of
tests/fakes/firecracker) with `--e2b-addr 127.0.0.1:0` and an auth token, and run every
tools/e2b/test-*.mjs against it as a test method of its own (generated from a glob, so each
part's script is picked up), with E2B_API_URL and E2B_SANDBOX_URL naming the E2B listener and
E2B_API_KEY the token. A script passes when it exits 0; a failure shows its output. After each
script no sandbox may be left: the scripts kill what they make. One test speaks plain HTTP to
the listener for what the SDKs never show: the API key and each sandbox's envd access token are
checked, a token opens only its own sandbox, envVars reach the sandbox's programs, and unknown
calls get E2B's error shape; another (under QEMU: the statuses are the API layer's) checks the
statuses of pause and the deprecated resume that the SDK hides. The scripts get EMBERD_VMM
(qemu, firecracker). E2bRestartTest: template, metadata, envVars and the access token
survive a restart with --keep-sandboxes.

test-files.mjs needs packs built with the `user` alias (rootfs/common/prepare-root.sh:
/home/user); older images fail it with permission_denied on /home/user.

The SDKs are tools/e2b's (pinned in its package-lock.json; scripts/install-deps.sh runs npm ci
there); without them, or without node, the classes are skipped saying so.
"""

import glob
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

E2B_DIR = os.path.join(harness.REPO, "tools", "e2b")
SCRIPTS = sorted(glob.glob(os.path.join(E2B_DIR, "test-*.mjs")))
FAKE_FC = os.path.join(harness.REPO, "tests", "fakes", "firecracker")
TOKEN = "e2b_0123456789abcdef0123456789abcdef01234567"
# A script boots a few VMs; under TCG on a shared machine each may take a minute.
SCRIPT_TIMEOUT_S = 1800
INSTALLED = os.path.isdir(os.path.join(E2B_DIR, "node_modules", "e2b")) and shutil.which("node")


class E2bTestBase(unittest.TestCase):
    """One daemon with --e2b-addr for the class; test_<script> methods are added below."""
    daemon_args = ()
    vmm = "qemu"  # the scripts get it as EMBERD_VMM

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="eme2b.", dir="/tmp")
        cls.token_file = os.path.join(cls.tmp, "token")
        with open(cls.token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(cls.token_file, 0o600)
        try:
            cls.d = harness.Daemon("--e2b-addr", "127.0.0.1:0", "--auth-token-file",
                                   cls.token_file, *cls.daemon_args)
        except Exception:
            shutil.rmtree(cls.tmp, ignore_errors=True)  # tearDownClass will not run
            raise
        try:
            cls.e2b_port = cls.wait_e2b_port()
        except Exception:
            cls.d.stop(check=False)
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def wait_e2b_port(cls):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = re.search(r"E2B-compatible API on \S+ \(port (\d+)\)", cls.d.read_log())
            if m:
                return int(m.group(1))
            time.sleep(0.05)
        raise AssertionError("the daemon did not log its E2B listener:\n" + cls.d.read_log())

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def native_sandboxes(self):
        status, body, _ = self.d.request("GET", "/sandboxes",
                                         headers={"Authorization": "Bearer " + TOKEN})
        self.assertEqual(status, 200, body)
        return body["sandboxes"]

    def e2b(self, method, path, body=None, headers=None):
        """(status, parsed JSON or None) of one request to the E2B listener."""
        conn = http.client.HTTPConnection("127.0.0.1", self.e2b_port, timeout=600)
        try:
            data = json.dumps(body).encode() if body is not None else None
            hdrs = {"Content-Type": "application/json"} if data is not None else {}
            hdrs.update(headers or {})
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, json.loads(payload) if payload else None
        finally:
            conn.close()

    def test_access_tokens_open_only_their_sandbox(self):
        """The control plane wants the token as X-API-KEY; each sandbox's envd access token (an
        HMAC of the daemon token and its id) opens its sandbox planes and no other; envVars
        reach the sandbox's programs."""
        key = {"X-API-KEY": TOKEN}
        status, body = self.e2b("POST", "/v2/sandboxes", {"templateID": "shell"})
        self.assertEqual((status, body["code"]), (401, 401), body)
        status, sb = self.e2b("POST", "/v2/sandboxes",
                              {"templateID": "shell", "envVars": {"E2B_VAR": "from create"}},
                              key)
        self.assertEqual(status, 201, sb)
        try:
            # envVars are the sandbox's own environment: every program starts with them, and a
            # request's own env wins (seen here through the native exec)
            bearer = {"Authorization": "Bearer " + TOKEN}
            for env, want in (({}, "from create\n"), ({"E2B_VAR": "mine"}, "mine\n")):
                status, res, _ = self.d.request("POST", f"/sandboxes/{sb['sandboxID']}/exec",
                                                {"code": 'echo "$E2B_VAR"', "env": env},
                                                headers=bearer)
                self.assertEqual((status, res["stdout"]), (200, want), res)
            token = sb["envdAccessToken"]
            self.assertRegex(token, r"^[0-9a-f]{64}$")
            self.assertEqual((sb["templateID"], sb["envdVersion"], sb["domain"]),
                             ("shell", "0.5.7", None))
            status, detail = self.e2b("GET", f"/sandboxes/{sb['sandboxID']}", headers=key)
            self.assertEqual((status, detail["envdAccessToken"]), (200, token), detail)
            plane = {"E2b-Sandbox-Id": sb["sandboxID"], "E2b-Sandbox-Port": "49983"}
            other = ("0" if token[0] != "0" else "1") + token[1:]
            for wrong in ({}, {"X-Access-Token": other}, {"X-Access-Token": TOKEN}):
                status, body = self.e2b("GET", "/health", headers={**plane, **wrong})
                self.assertEqual(status, 401, (wrong, body))
            status, body = self.e2b("GET", "/health",
                                    headers={**plane, "X-Access-Token": token})
            self.assertNotEqual(status, 401, body)
            # The code interpreter's context calls carry the create's trafficAccessToken (the
            # same token) as E2B-Traffic-Access-Token, not X-Access-Token; only on its port.
            self.assertEqual(sb["trafficAccessToken"], token)
            interp = {**plane, "E2b-Sandbox-Port": "49999"}
            for wrong in ({}, {"E2B-Traffic-Access-Token": other}):
                status, body = self.e2b("GET", "/contexts", headers={**interp, **wrong})
                self.assertEqual(status, 401, (wrong, body))
            status, body = self.e2b("GET", "/contexts",
                                    headers={**interp, "E2B-Traffic-Access-Token": token})
            self.assertEqual((status, body), (200, []))
            status, body = self.e2b("GET", "/health",
                                    headers={**plane, "E2B-Traffic-Access-Token": token})
            self.assertEqual(status, 401, body)
        finally:
            status, _ = self.e2b("DELETE", f"/sandboxes/{sb['sandboxID']}", headers=key)
            self.assertEqual(status, 204)
        status, body = self.e2b("GET", f"/sandboxes/{sb['sandboxID']}", headers=key)
        self.assertEqual((status, body["code"]), (404, 404), body)
        status, body = self.e2b("GET", "/no/such/call", headers=key)
        self.assertEqual((status, body["code"]), (404, 404), body)
        status, body = self.e2b("PATCH", "/sandboxes", headers=key)
        self.assertEqual(status, 405, body)

    def run_script(self, script):
        url = f"http://127.0.0.1:{self.e2b_port}"
        env = dict(os.environ, E2B_API_URL=url, E2B_SANDBOX_URL=url, E2B_API_KEY=TOKEN,
                   EMBERD_VMM=self.vmm)
        for name in ("E2B_DOMAIN", "E2B_DEBUG", "E2B_ACCESS_TOKEN"):
            env.pop(name, None)
        try:
            proc = subprocess.run(["node", script], cwd=E2B_DIR, env=env, capture_output=True,
                                  text=True, timeout=SCRIPT_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            self.fail(f"{os.path.basename(script)} ran over {SCRIPT_TIMEOUT_S} s:\n"
                      f"{e.stdout or ''}\n{e.stderr or ''}")
        sys.stderr.write(proc.stdout)
        self.assertEqual(proc.returncode, 0,
                         f"{os.path.basename(script)} failed:\n{proc.stdout}\n{proc.stderr}")
        left = [s["id"] for s in self.native_sandboxes()]
        self.assertEqual(left, [], f"{os.path.basename(script)} left sandboxes behind")


def add_script_tests(cls):
    """test_<name> for each tools/e2b/test-<name>.mjs."""
    for script in SCRIPTS:
        stem = os.path.basename(script)[len("test-"):-len(".mjs")]
        name = "test_" + re.sub(r"[^0-9a-zA-Z]", "_", stem)

        def test(self, script=script):
            self.run_script(script)
        test.__name__ = name
        test.__doc__ = f"tools/e2b/{os.path.basename(script)} passes"
        setattr(cls, name, test)
    return cls


@unittest.skipUnless(INSTALLED, "tools/e2b is not installed (scripts/install-deps.sh runs npm ci "
                                "there) or node is missing")
@add_script_tests
class E2bQemuTest(E2bTestBase):
    daemon_args = ("--vmm", "qemu")

    def test_pause_and_the_deprecated_resume_speak_e2bs_statuses(self):
        """What no SDK call shows: pause is 204 then 409, the deprecated resume 201 then 409 and
        sets the lifetime it names, and a reboot (`memory: false`) of a paused sandbox is 400."""
        key = {"X-API-KEY": TOKEN}
        status, sb = self.e2b("POST", "/v2/sandboxes", {"templateID": "shell", "timeout": 600},
                              key)
        self.assertEqual(status, 201, sb)
        path = f"/sandboxes/{sb['sandboxID']}"
        try:
            self.assertEqual(self.e2b("POST", path + "/resume", {}, key)[0], 409)
            self.assertEqual(self.e2b("POST", path + "/pause", {"memory": False}, key)[0], 400)
            self.assertEqual(self.e2b("POST", path + "/pause", None, key), (204, None))
            status, body = self.e2b("POST", path + "/pause", None, key)
            self.assertEqual((status, body["code"]), (409, 409), body)
            status, body = self.e2b("GET", path, headers=key)
            self.assertEqual((status, body["state"]), (200, "paused"), body)
            status, body = self.e2b("POST", "/v2" + path + "/connect", {"memory": False}, key)
            self.assertEqual(status, 400, body)
            self.assertIn("memory", body["message"])
            status, body = self.e2b("POST", path + "/resume", {"autoPause": True}, key)
            self.assertEqual(status, 400, body)
            status, body = self.e2b("POST", path + "/resume", {"timeout": 120}, key)
            self.assertEqual((status, body["sandboxID"]), (201, sb["sandboxID"]), body)
            status, body = self.e2b("GET", path, headers=key)
            self.assertEqual((status, body["state"]), (200, "running"), body)
            status, _ = self.e2b("POST", path + "/resume", {}, key)
            self.assertEqual(status, 409)
            # the lifetime is the resume's 120 s, not what was left of the 600 s
            status, native, _ = self.d.request("GET", path,
                                               headers={"Authorization": "Bearer " + TOKEN})
            self.assertEqual((status, native["timeout_s"]), (200, 120), native)
        finally:
            status, _ = self.e2b("DELETE", path, headers=key)
            self.assertEqual(status, 204)


@unittest.skipUnless(INSTALLED, "tools/e2b is not installed (scripts/install-deps.sh runs npm ci "
                                "there) or node is missing")
@add_script_tests
class E2bFirecrackerTest(E2bTestBase):
    daemon_args = ("--vmm", "firecracker", "--firecracker-bin", FAKE_FC, "--no-jail")
    vmm = "firecracker"


def e2b_port_of(d):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.findall(r"E2B-compatible API on \S+ \(port (\d+)\)", d.read_log())
        if found:
            return int(found[-1])
        time.sleep(0.05)
    raise AssertionError("the daemon did not log its E2B listener:\n" + d.read_log())


def e2b_call(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data,
                     headers={"Content-Type": "application/json", "X-API-KEY": TOKEN,
                              **(headers or {})})
        resp = conn.getresponse()
        payload = resp.read()
        return resp.status, json.loads(payload) if payload else None
    finally:
        conn.close()


class E2bRestartTest(unittest.TestCase):
    """What the E2B API adds to a sandbox survives a daemon restart (--keep-sandboxes): the
    template asked for and the metadata (labels), envVars (the sandbox's own environment, in its
    record) and the envd access token (derived, so nothing to keep)."""

    def test_template_metadata_env_and_token_survive_a_restart(self):
        tmp = tempfile.mkdtemp(prefix="eme2b.", dir="/tmp")
        token_file = os.path.join(tmp, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(token_file, 0o600)
        args = ("--e2b-addr", "127.0.0.1:0", "--auth-token-file", token_file)
        d1 = harness.Daemon("--keep-sandboxes", *args)
        d2 = None
        try:
            status, sb = e2b_call(e2b_port_of(d1), "POST", "/v2/sandboxes",
                                  {"templateID": "shell", "metadata": {"keep": "me"},
                                   "envVars": {"KEPT": "across restarts"}})
            self.assertEqual(status, 201, sb)
            self.assertEqual(d1.sigterm(), 0)
            d2 = harness.Daemon(*args, reuse=d1)
            port = e2b_port_of(d2)
            status, info = e2b_call(port, "GET", f"/sandboxes/{sb['sandboxID']}")
            self.assertEqual(status, 200, info)
            self.assertEqual((info["templateID"], info["metadata"], info["envdAccessToken"]),
                             ("shell", {"keep": "me"}, sb["envdAccessToken"]))
            status, res, _ = d2.request("POST", f"/sandboxes/{sb['sandboxID']}/exec",
                                        {"code": 'echo "$KEPT"'},
                                        headers={"Authorization": "Bearer " + TOKEN})
            self.assertEqual((status, res["stdout"]), (200, "across restarts\n"), res)
            status, _ = e2b_call(port, "DELETE", f"/sandboxes/{sb['sandboxID']}")
            self.assertEqual(status, 204)
        finally:
            if d2 is not None:
                d2.stop()
            else:
                d1.stop(check=False)
            shutil.rmtree(tmp, ignore_errors=True)


del E2bTestBase  # only its subclasses run

if __name__ == "__main__":
    unittest.main()
