"""End-to-end tests of the agent's file requests (protocol version 3, docs/protocol.md "Files")
through emberd-init --agent-only under ASan, as root with execs and files as uid 65534.

Run from tests/e2e: /usr/bin/python3 -m unittest test_agent_files -v
Shares its agent fixture with test_agent.py (one agent per class, sanitizer reports checked).
"""

import hashlib
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emberproto as ep  # noqa: E402
import test_agent  # noqa: E402  (the module, so its AgentTest is not collected here again)

NOBODY = test_agent.NOBODY
_BASE = test_agent.AgentTest.__dict__


class AgentFilesTest(unittest.TestCase):
    agent_stderr = _BASE["agent_stderr"]
    tearDownClass = _BASE["tearDownClass"]
    setUp = test_agent.AgentTest.setUp
    tearDown = test_agent.AgentTest.tearDown

    @classmethod
    def setUpClass(cls):
        _BASE["setUpClass"].__func__(cls)
        # The work dir (the agent's home for relative paths) is root's; the user gets a box.
        cls.box = os.path.join(cls.tmp, "box")
        os.mkdir(cls.box, 0o755)
        os.chown(cls.box, NOBODY, NOBODY)

    def connect(self, version=3):
        c = ep.Client.connect_unix(self.sock_path, timeout=60)
        self.clients.append(c)
        self.assertEqual(c.hello(version=version)["version"], version)
        return c

    def assertGuestError(self, code, fn, *args, **kwargs):
        with self.assertRaises(ep.GuestError) as cm:
            fn(*args, **kwargs)
        self.assertEqual(cm.exception.code, code, cm.exception.message)

    def test_upload_and_download_round_trip_with_credit_both_ways(self):
        c = self.connect()
        data = os.urandom(3 * 1024 * 1024 + 5)
        written = c.write_file("box/up/big.bin", data, parents=True, mode=0o640)
        self.assertEqual(written, {"path": os.path.join(self.box, "up", "big.bin"),
                                   "size": len(data),
                                   "sha256": hashlib.sha256(data).hexdigest()})
        st = os.stat(os.path.join(self.box, "up", "big.bin"))
        self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o7777), (NOBODY, NOBODY, 0o640))
        self.assertEqual(st.st_uid, NOBODY)
        entry, back = c.read_file(os.path.join(self.box, "up", "big.bin"))
        self.assertEqual(entry["name"], "big.bin")
        self.assertEqual(entry["type"], "file")
        self.assertEqual(back, data)
        self.assertEqual([n for n in os.listdir(os.path.join(self.box, "up"))], ["big.bin"])

    def test_stat_list_mkdir_move_remove(self):
        c = self.connect()
        self.assertEqual(c.fs("mkdir", "box/d/e", parents=True), {})
        c.write_file("box/d/e/f.txt", b"hello")
        self.assertEqual(c.fs("move", "box/d/e/f.txt", to="box/d/g.txt"), {})
        listing = c.fs("list", "box/d")
        self.assertFalse(listing["truncated"])
        self.assertEqual([(e["name"], e["type"], e["size"]) for e in listing["entries"]],
                         [("e", "dir", listing["entries"][0]["size"]), ("g.txt", "file", 5)])
        self.assertEqual(c.fs("stat", "box/d/g.txt")["entry"]["mode"], 0o644)
        self.assertGuestError("not_empty", c.fs, "remove", "box/d")
        self.assertEqual(c.fs("remove", "box/d", recursive=True), {})
        self.assertGuestError("not_found", c.fs, "stat", "box/d")

    def test_root_files_are_out_of_reach(self):
        c = self.connect()
        secret = os.path.join(self.tmp, "secret")
        with open(secret, "wb") as f:
            f.write(b"root only")
        os.chmod(secret, 0o600)
        os.symlink(secret, os.path.join(self.box, "link-to-secret"))
        self.assertGuestError("permission_denied", c.read_file, secret)
        self.assertGuestError("permission_denied", c.read_file, "box/link-to-secret")
        # writing through the link would replace root's file: refused too
        self.assertGuestError("permission_denied", c.write_file, "box/link-to-secret", b"x")
        self.assertGuestError("permission_denied", c.write_file, "not-mine.txt", b"x")
        self.assertGuestError("permission_denied", c.fs, "remove", secret)
        with open(secret, "rb") as f:
            self.assertEqual(f.read(), b"root only")

    def test_cancel_abandons_an_upload_and_the_session_goes_on(self):
        c = self.connect()
        frame_id = c.start_write("box/cancelled.bin")
        c.send_file_data(frame_id, b"x" * 100000, fin=False)
        c.cancel(frame_id)
        c.send(ep.DATA, frame_id, b"late", ep.FLAG_FIN)  # crosses the CANCEL: dropped
        self.assertEqual(c.fs("stat", "box")["entry"]["type"], "dir")
        self.assertEqual([n for n in os.listdir(self.box) if "cancelled" in n], [])

    def test_file_request_in_a_version_1_session_ends_it(self):
        c = self.connect(version=1)
        c.send(ep.FS, 1, b'{"op":"stat","path":"box"}')
        frames = c.wait_closed()
        self.assertTrue(any(f.type == ep.ERROR and f.id == 0 and f.json()["code"] == "protocol"
                            for f in frames), frames)


if __name__ == "__main__":
    unittest.main()
