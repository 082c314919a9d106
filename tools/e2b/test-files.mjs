// The unmodified `e2b` SDK's sandbox.files against emberd's E2B listener (docs/e2b.md "Files"):
// write/read round trips (text, a 5 MiB random binary over multipart and over octet-stream),
// several files in one write, list (depth 1 and 2), exists, getInfo, makeDir, rename, remove,
// relative paths under /home/user, a missing file as FileNotFoundError, reads as 'bytes' and
// 'stream', an upload cut off midway leaving nothing, the polling watcher (its entries, its
// per-sandbox cap), and the clear refusals of gzip uploads and watchDir.
// Run with E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY set (tests/e2e/test_e2b.py does);
// prints one line per check, exits 0 when every check passed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import { FileNotFoundError, InvalidArgumentError, Sandbox } from 'e2b';

const checks = [];
function check(name, fn) {
  checks.push([name, fn]);
}

async function readStream(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

const dir = `/home/user/e2b-files-${process.pid}`;
const big = randomBytes(5 * 1024 * 1024);

check('write then read text', async (sbx) => {
  const info = await sbx.files.write(`${dir}/hello.txt`, 'hello, ember\n');
  assert.equal(info.path, `${dir}/hello.txt`);
  assert.equal(info.name, 'hello.txt');
  assert.equal(info.type, 'file');
  assert.equal(await sbx.files.read(`${dir}/hello.txt`), 'hello, ember\n');
});

check('a 5 MiB random binary round trip (multipart)', async (sbx) => {
  await sbx.files.write(`${dir}/big.bin`, big);
  const back = await sbx.files.read(`${dir}/big.bin`, { format: 'bytes' });
  assert.ok(back instanceof Uint8Array);
  assert.equal(back.length, big.length);
  assert.ok(Buffer.from(back).equals(big), '5 MiB read back differs');
});

check('a 5 MiB random binary round trip (octet-stream, read as a stream)', async (sbx) => {
  await sbx.files.write(`${dir}/big2.bin`, big, { useOctetStream: true });
  const back = await readStream(await sbx.files.read(`${dir}/big2.bin`, { format: 'stream' }));
  assert.equal(back.length, big.length);
  assert.ok(back.equals(big), '5 MiB streamed read differs');
});

check('several files in one write', async (sbx) => {
  const written = await sbx.files.write([
    { path: `${dir}/many/a.txt`, data: 'A' },
    { path: `${dir}/many/b.txt`, data: 'BB' },
    { path: `${dir}/many/sub/c.txt`, data: new Uint8Array([0, 255, 1]) },
  ]);
  assert.deepEqual(written.map((w) => w.path).sort(),
    [`${dir}/many/a.txt`, `${dir}/many/b.txt`, `${dir}/many/sub/c.txt`]);
  assert.equal(await sbx.files.read(`${dir}/many/b.txt`), 'BB');
  const c = await sbx.files.read(`${dir}/many/sub/c.txt`, { format: 'bytes' });
  assert.deepEqual([...c], [0, 255, 1]);
});

check('list, depth 1 and 2', async (sbx) => {
  const top = await sbx.files.list(`${dir}/many`);
  assert.deepEqual(top.map((e) => e.name), ['a.txt', 'b.txt', 'sub']);
  const sub = top.find((e) => e.name === 'sub');
  assert.equal(sub.type, 'dir');
  assert.equal(sub.path, `${dir}/many/sub`);
  const a = top.find((e) => e.name === 'a.txt');
  assert.equal(a.type, 'file');
  assert.equal(a.size, 1);
  assert.ok(a.modifiedTime instanceof Date && !Number.isNaN(a.modifiedTime.getTime()));
  const deep = await sbx.files.list(`${dir}/many`, { depth: 2 });
  assert.deepEqual(deep.map((e) => e.path),
    [`${dir}/many/a.txt`, `${dir}/many/b.txt`, `${dir}/many/sub`, `${dir}/many/sub/c.txt`]);
});

check('exists', async (sbx) => {
  assert.equal(await sbx.files.exists(`${dir}/hello.txt`), true);
  assert.equal(await sbx.files.exists(`${dir}/nope.txt`), false);
});

check('getInfo', async (sbx) => {
  const info = await sbx.files.getInfo(`${dir}/hello.txt`);
  assert.equal(info.name, 'hello.txt');
  assert.equal(info.type, 'file');
  assert.equal(info.path, `${dir}/hello.txt`);
  assert.equal(info.size, 'hello, ember\n'.length);
  assert.equal(info.permissions, '-rw-r--r--');
  assert.equal(info.mode, 0o644);
  const d = await sbx.files.getInfo(dir);
  assert.equal(d.type, 'dir');
});

check('makeDir', async (sbx) => {
  assert.equal(await sbx.files.makeDir(`${dir}/made/deeper`), true);
  assert.equal(await sbx.files.makeDir(`${dir}/made/deeper`), false);
  assert.equal((await sbx.files.getInfo(`${dir}/made/deeper`)).type, 'dir');
});

check('rename', async (sbx) => {
  await sbx.files.write(`${dir}/old.txt`, 'moving');
  const moved = await sbx.files.rename(`${dir}/old.txt`, `${dir}/moved/new.txt`);
  assert.equal(moved.path, `${dir}/moved/new.txt`);
  assert.equal(moved.name, 'new.txt');
  assert.equal(await sbx.files.exists(`${dir}/old.txt`), false);
  assert.equal(await sbx.files.read(`${dir}/moved/new.txt`), 'moving');
});

check('remove (a file, a directory tree, a missing path)', async (sbx) => {
  await sbx.files.remove(`${dir}/moved/new.txt`);
  assert.equal(await sbx.files.exists(`${dir}/moved/new.txt`), false);
  await sbx.files.remove(`${dir}/many`);
  assert.equal(await sbx.files.exists(`${dir}/many`), false);
  await sbx.files.remove(`${dir}/never-was`);
});

check('relative paths are under /home/user', async (sbx) => {
  const name = `e2b-rel-${process.pid}.txt`;
  const info = await sbx.files.write(name, 'relative');
  assert.equal(info.path, `/home/user/${name}`);
  assert.equal(await sbx.files.read(`/home/user/${name}`), 'relative');
  assert.equal(await sbx.files.read(`~/${name}`), 'relative');
  await sbx.files.remove(name);
});

check('a missing file is FileNotFoundError', async (sbx) => {
  await assert.rejects(sbx.files.read(`${dir}/missing.txt`), FileNotFoundError);
  await assert.rejects(sbx.files.getInfo(`${dir}/missing.txt`), FileNotFoundError);
  await assert.rejects(sbx.files.list(`${dir}/missing-dir`), FileNotFoundError);
  await assert.rejects(sbx.files.rename(`${dir}/missing.txt`, `${dir}/x.txt`),
    FileNotFoundError);
});

check('an upload cut off midway leaves no file behind', async (sbx) => {
  await sbx.files.makeDir(`${dir}/cut`);
  const ac = new AbortController();
  let sent = 0;
  const body = new ReadableStream({
    pull(controller) {
      if (sent >= 1024 * 1024) {
        ac.abort();
        return new Promise(() => {}); // never more
      }
      controller.enqueue(new Uint8Array(64 * 1024).fill(7));
      sent += 64 * 1024;
      return undefined;
    },
  });
  await assert.rejects(sbx.files.write(`${dir}/cut/partial.bin`, body, { signal: ac.signal }));
  // The daemon notices the closed connection and the guest drops its temporary file.
  const deadline = Date.now() + 60000;
  let names;
  do {
    names = (await sbx.files.list(`${dir}/cut`)).map((e) => e.name);
    if (names.length === 0) break;
    await new Promise((r) => setTimeout(r, 200));
  } while (Date.now() < deadline);
  assert.deepEqual(names, []);
});

check('a gzip upload is refused clearly', async (sbx) => {
  await assert.rejects(sbx.files.write(`${dir}/gz.txt`, 'zipped', { gzip: true }),
    (err) => err instanceof InvalidArgumentError && /gzip/.test(err.message));
});

// The Python SDK's sync watch_dir polls CreateWatcher/GetWatcherEvents/RemoveWatcher, which the
// JS SDK has no call for: spoken here as that SDK speaks it (Connect JSON, the same headers).
async function rpc(sbx, method, body) {
  const headers = {
    'Content-Type': 'application/json',
    'Connect-Protocol-Version': '1',
    'E2b-Sandbox-Id': sbx.sandboxId,
    'E2b-Sandbox-Port': '49983',
  };
  if (sbx.envdAccessToken) headers['X-Access-Token'] = sbx.envdAccessToken;
  const res = await fetch(`${process.env.E2B_SANDBOX_URL}/filesystem.Filesystem/${method}`,
    { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

check('the polling watcher reports create, write and remove', async (sbx) => {
  const w = `${dir}/watched`;
  await sbx.files.write([{ path: `${w}/keep.txt`, data: 'k' }, { path: `${w}/gone.txt`, data: 'g' },
    { path: `${w}/sub/deep.txt`, data: 'd' }]);
  const created = await rpc(sbx, 'CreateWatcher', { path: w, recursive: true });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const watcherId = created.body.watcherId;
  assert.deepEqual((await rpc(sbx, 'GetWatcherEvents', { watcherId })).body, { events: [] });
  await sbx.files.write(`${w}/sub/new.txt`, 'n');
  await sbx.files.remove(`${w}/gone.txt`);
  await sbx.files.write(`${w}/keep.txt`, 'a longer content');
  const got = await rpc(sbx, 'GetWatcherEvents', { watcherId });
  assert.equal(got.status, 200, JSON.stringify(got.body));
  assert.deepEqual(got.body.events.map((e) => `${e.type} ${e.name}`), [
    'EVENT_TYPE_REMOVE gone.txt', 'EVENT_TYPE_WRITE keep.txt', 'EVENT_TYPE_CREATE sub/new.txt']);
  assert.equal((await rpc(sbx, 'RemoveWatcher', { watcherId })).status, 200);
  const after = await rpc(sbx, 'GetWatcherEvents', { watcherId });
  assert.equal(after.status, 404);
  assert.equal(after.body.code, 'not_found');
});

check('includeEntry events carry the entry; a sandbox keeps at most 8 watchers', async (sbx) => {
  const w = `${dir}/watched2`;
  await sbx.files.makeDir(w);
  const first = await rpc(sbx, 'CreateWatcher', { path: w, includeEntry: true });
  assert.equal(first.status, 200, JSON.stringify(first.body));
  await sbx.files.write(`${w}/e.txt`, 'five!');
  const got = await rpc(sbx, 'GetWatcherEvents', { watcherId: first.body.watcherId });
  assert.equal(got.status, 200, JSON.stringify(got.body));
  assert.equal(got.body.events.length, 1, JSON.stringify(got.body));
  const ev = got.body.events[0];
  assert.equal(ev.type, 'EVENT_TYPE_CREATE');
  assert.equal(ev.name, 'e.txt');
  assert.equal(ev.entry.name, 'e.txt');
  assert.equal(ev.entry.path, `${w}/e.txt`);
  assert.equal(ev.entry.type, 'FILE_TYPE_FILE');
  assert.equal(ev.entry.size, '5');
  // 8 more: the 9th replaces this sandbox's watcher polled least recently (the first one)
  const ids = [];
  for (let i = 0; i < 8; i++) {
    const c = await rpc(sbx, 'CreateWatcher', { path: w });
    assert.equal(c.status, 200, JSON.stringify(c.body));
    ids.push(c.body.watcherId);
  }
  const gone = await rpc(sbx, 'GetWatcherEvents', { watcherId: first.body.watcherId });
  assert.equal(gone.body.code, 'not_found', JSON.stringify(gone.body));
  for (const watcherId of ids) {
    const r = await rpc(sbx, 'GetWatcherEvents', { watcherId });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((await rpc(sbx, 'RemoveWatcher', { watcherId })).status, 200);
  }
});

check('watchDir is refused with a clear message', async (sbx) => {
  await assert.rejects(sbx.files.watchDir(dir, () => {}), /does not stream directory events/);
});

async function main() {
  const sbx = await Sandbox.create();
  let failed = 0;
  try {
    for (const [name, fn] of checks) {
      try {
        await fn(sbx);
        console.log(`ok   ${name}`);
      } catch (err) {
        failed++;
        console.log(`FAIL ${name}: ${err && err.stack ? err.stack : err}`);
      }
    }
    await sbx.files.remove(dir).catch(() => {});
  } finally {
    await sbx.kill().catch(() => {});
  }
  console.log(`${checks.length - failed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((err) => {
  console.log(`FAIL setup: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
