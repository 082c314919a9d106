"""The python-data pack (issue 14): python3 with numpy, pandas, scipy and matplotlib from Debian,
matplotlib on Agg with a font cache built into the image, and figures a code context leaves open
coming back as image/png rich results (src/guest/scripts/context.py, figure_results).

Skipped when the images directory has no python-data pack (IMAGES_DIR, `make images`).
"""

import base64
import json
import os
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# The pack's smoke test (what the build runs before publishing it): code and expected stdout.
SMOKE_CODE = ("import numpy, pandas, scipy.linalg, matplotlib\n"
              "print(int(numpy.arange(10).sum()), pandas.Series([1, 2, 3]).mean(),\n"
              "      round(scipy.linalg.det([[2, 0], [0, 3]])), matplotlib.get_backend())\n")
SMOKE_STDOUT = "45 2.0 6 agg\n"
# Imports under QEMU TCG take many seconds: generous, whatever the pack's default.
SLOW_MS = 300000


def pack_built():
    try:
        with open(os.path.join(harness.ALL_IMAGES_DIR, "packs.json"), encoding="utf-8") as f:
            return any(p["name"] == "python-data" for p in json.load(f)["packs"])
    except (OSError, ValueError, KeyError):
        return False


def png_size(data):
    """(width, height) from a PNG's IHDR, after checking the signature and chunk order."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise AssertionError(f"not a PNG: {data[:16]!r}")
    length, kind = struct.unpack(">I4s", data[8:16])
    if kind != b"IHDR" or length != 13:
        raise AssertionError(f"first chunk is {kind!r} of {length} bytes, not IHDR")
    return struct.unpack(">II", data[16:24])


@unittest.skipUnless(pack_built(), "no python-data pack in IMAGES_DIR (PACKS=python-data make images)")
class PythonDataTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon(all_packs=True)
        try:
            cls.sb = cls.d.create(language_pack="python-data")
        except Exception:
            cls.d.stop(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.d.delete(cls.sb["id"])
        cls.d.stop()

    def exec_ok(self, code, **fields):
        status, res, _ = self.d.exec(self.sb["id"], code, timeout_ms=SLOW_MS, **fields)
        self.assertEqual(status, 200, res)
        self.assertEqual(res["exit_code"], 0, res)
        return res

    def open_context(self):
        status, ctx, _ = self.d.request("POST", f"/sandboxes/{self.sb['id']}/contexts", {})
        self.assertEqual(status, 201, ctx)
        self.addCleanup(self.d.request, "DELETE",
                        f"/sandboxes/{self.sb['id']}/contexts/{ctx['id']}")
        return ctx

    def test_smoke_test_through_the_api(self):
        self.assertEqual(self.exec_ok(SMOKE_CODE)["stdout"], SMOKE_STDOUT)

    def test_numpy_pandas_scipy_compute(self):
        res = self.exec_ok(
            "import numpy as np, pandas as pd\n"
            "from scipy import integrate, optimize, stats\n"
            "x = np.linalg.solve([[3, 1], [1, 2]], [9, 8])\n"
            "print(x.round(6).tolist())\n"
            "df = pd.DataFrame({'k': ['a', 'b', 'a', 'b'], 'v': [1, 2, 3, 4]})\n"
            "print(df.groupby('k')['v'].sum().to_dict())\n"
            "print(round(integrate.quad(lambda t: t * t, 0, 3)[0], 6))\n"
            "print(round(optimize.brentq(lambda t: t * t - 2, 0, 2), 6))\n"
            "print(round(stats.norm.cdf(0), 6))\n")
        self.assertEqual(res["stdout"], "[2.0, 3.0]\n{'a': 4, 'b': 6}\n9.0\n1.414214\n0.5\n")

    def test_matplotlib_uses_agg_and_the_image_font_cache(self):
        # The font list built into the image is read, not regenerated (that takes seconds
        # under TCG, in every sandbox), and plt.show() on Agg returns instead of waiting.
        res = self.exec_ok(
            "import logging, os\n"
            "logging.basicConfig(level=logging.DEBUG, format='%(message)s')\n"
            "import matplotlib\n"
            "cache = matplotlib.get_cachedir()\n"
            "before = sorted(os.listdir(cache))\n"
            "import matplotlib.pyplot as plt\n"
            "plt.plot([1, 2, 3]); plt.title('text needs fonts')\n"
            "plt.gcf().canvas.draw()\n"
            "plt.show()\n"
            "print(matplotlib.get_backend(), cache, before == sorted(os.listdir(cache)))\n")
        self.assertEqual(res["stdout"], "agg /home/sandbox/.cache/matplotlib True\n")
        self.assertIn("Using fontManager instance from /home/sandbox/.cache/matplotlib/",
                      res["stderr"])
        self.assertNotIn("generated new fontManager", res["stderr"])

    def test_context_figures_come_back_as_png(self):
        ctx = self.open_context()
        run = self.d.exec
        status, res, _ = run(self.sb["id"], "import sys\n'matplotlib' in sys.modules",
                             context_id=ctx["id"], timeout_ms=SLOW_MS)
        self.assertEqual((status, res["result"], res["results"]), (200, "False", []), res)
        status, res, _ = run(self.sb["id"], (
            "import matplotlib.pyplot as plt\n"
            "fig = plt.figure(figsize=(4, 3), dpi=50)\n"
            "plt.plot([1, 4, 9])\n"
            "plt.figure(figsize=(2, 2), dpi=40)\n"
            "plt.bar(['a', 'b'], [1, 2])\n"
            "plt.show()\n"
            "len(plt.get_fignums())"), context_id=ctx["id"], timeout_ms=SLOW_MS)
        self.assertEqual(status, 200, res)
        self.assertEqual((res["exit_code"], res["result"]), (0, "2"), res)
        pngs = [r for r in res["results"] if r["mime"] == "image/png"]
        self.assertEqual(len(pngs), 2, [r["mime"] for r in res["results"]])
        self.assertEqual(png_size(base64.b64decode(pngs[0]["data"])), (200, 150))
        self.assertEqual(png_size(base64.b64decode(pngs[1]["data"])), (80, 80))
        # rendered figures are closed: the next run without plotting brings no image
        status, res, _ = run(self.sb["id"], "x = 1\nplt.get_fignums()",
                             context_id=ctx["id"], timeout_ms=SLOW_MS)
        self.assertEqual((status, res["result"], res["results"]), (200, "[]", []), res)
        # a figure left open by a failing run still comes back, next to the error
        status, res, _ = run(self.sb["id"], "plt.plot([1, 2])\nraise ValueError('after plot')",
                             context_id=ctx["id"], timeout_ms=SLOW_MS)
        self.assertEqual((status, res["error"]["name"]), (200, "ValueError"), res)
        self.assertEqual([r["mime"] for r in res["results"]], ["image/png"])
        self.assertEqual(png_size(base64.b64decode(res["results"][0]["data"])), (640, 480))
        self.assertFalse(res["context_restarted"])


if __name__ == "__main__":
    unittest.main()
