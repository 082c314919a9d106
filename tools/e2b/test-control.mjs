// test-control.mjs - the E2B control plane (docs/e2b.md "Control plane") through the unmodified
// `e2b` and `@e2b/code-interpreter` SDKs: create (both SDKs' default templates), getInfo,
// setTimeout, list by metadata and state, connect, pause and connect resuming, fork, snapshots
// (and sandboxes made of them), kill, and the errors users get for an unknown template, a wrong
// API key and the calls emberd does not serve.
//
// Run by tests/e2e/test_e2b.py with E2B_API_URL, E2B_SANDBOX_URL (both the daemon's --e2b-addr),
// E2B_API_KEY (its --auth-token-file token) and EMBERD_VMM (qemu or firecracker) set; prints
// one line per check, exits 0 when every check passed. Every sandbox and snapshot it makes is
// deleted before it exits, whatever happened.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'

import { Sandbox as InterpreterSandbox } from '@e2b/code-interpreter'
import { AuthenticationError, Sandbox, SandboxError, SandboxNotFoundError } from 'e2b'

// A create boots a VM: seconds under KVM, much longer under TCG on a busy machine.
const SLOW = { requestTimeoutMs: 600_000 }
const made = []
const snapshots = []
const run = randomBytes(6).toString('hex')

async function check(name, fn) {
  try {
    await fn()
  } catch (err) {
    console.log(`not ok - ${name}: ${err?.stack ?? err}`)
    throw err
  }
  console.log(`ok - ${name}`)
}

async function rejects(promise, klass, status, pattern) {
  let err = null
  try {
    await promise
  } catch (e) {
    err = e
  }
  assert.ok(err, `expected ${klass.name}, but the call succeeded`)
  assert.ok(err instanceof klass, `expected ${klass.name}, got ${err?.name}: ${err?.message}`)
  if (status !== undefined) assert.equal(err.statusCode, status, err.message)
  if (pattern !== undefined) assert.match(err.message, pattern)
  return err
}

async function listIds(query) {
  const paginator = Sandbox.list({ query })
  const ids = []
  while (paginator.hasNext) ids.push(...(await paginator.nextItems()).map((s) => s.sandboxId))
  return ids
}

async function main() {
  // An awkward value: the SDK encodes each key and value, then the whole query parameter.
  const metadata = { suite: 'control', run, note: 'a b&c=d/%41+é' }
  let sbx

  await check('Sandbox.create() makes a sandbox of the default template', async () => {
    sbx = await Sandbox.create({ ...SLOW, metadata, timeoutMs: 240_000, envs: { E2B_TEST: run } })
    made.push(sbx)
    assert.match(sbx.sandboxId, /^sb_[0-9a-f]{32}$/)
  })

  let info
  await check('getInfo returns the template, metadata, state and lifetime', async () => {
    info = await sbx.getInfo()
    assert.equal(info.sandboxId, sbx.sandboxId)
    assert.equal(info.templateId, 'base')
    assert.deepEqual(info.metadata, metadata)
    assert.equal(info.state, 'running')
    assert.ok(info.cpuCount >= 1 && info.memoryMB >= 64, JSON.stringify(info))
    // the lifetime counts from when the guest was ready, startedAt from the request
    const lifetime = info.endAt - info.startedAt
    assert.ok(lifetime >= 239_000 && lifetime <= 900_000, `lifetime ${lifetime} ms`)
    assert.ok(info.envdVersion >= '0.5.7', info.envdVersion)
  })

  await check('setTimeout moves the end of the sandbox', async () => {
    await sbx.setTimeout(600_000)
    const later = await Sandbox.getInfo(sbx.sandboxId)
    const left = later.endAt - Date.now()
    assert.ok(left > 500_000 && left <= 601_000, `${left} ms left`)
    assert.ok(later.endAt > info.endAt)
  })

  await check('Sandbox.list filters by metadata and state', async () => {
    assert.deepEqual(await listIds({ metadata: { run } }), [sbx.sandboxId])
    assert.deepEqual(await listIds({ metadata: { run, note: metadata.note } }), [sbx.sandboxId])
    assert.deepEqual(await listIds({ metadata: { run, note: 'other' } }), [])
    assert.deepEqual(await listIds({ metadata: { run }, state: ['paused'] }), [])
    assert.deepEqual(await listIds({ metadata: { run }, state: ['running', 'paused'] }),
      [sbx.sandboxId])
    const page = await Sandbox.list({ query: { metadata: { run } } }).nextItems()
    assert.equal(page[0].templateId, 'base')
    assert.deepEqual(page[0].metadata, metadata)
  })

  await check('Sandbox.connect(id) returns the running sandbox', async () => {
    const again = await Sandbox.connect(sbx.sandboxId)
    assert.equal(again.sandboxId, sbx.sandboxId)
    assert.equal((await again.getInfo()).templateId, 'base')
  })

  await check('the code interpreter SDK creates its default template', async () => {
    const ci = await InterpreterSandbox.create({ ...SLOW, metadata: { run, sdk: 'ci' } })
    made.push(ci)
    const ciInfo = await ci.getInfo()
    assert.equal(ciInfo.templateId, 'code-interpreter-v1')
    assert.deepEqual(await listIds({ metadata: { run, sdk: 'ci' } }), [ci.sandboxId])
    // pages of one, newest first, through X-Next-Token
    const paginator = Sandbox.list({ query: { metadata: { run } }, limit: 1 })
    const pages = []
    while (paginator.hasNext) pages.push((await paginator.nextItems()).map((s) => s.sandboxId))
    assert.deepEqual(pages, [[ci.sandboxId], [sbx.sandboxId]])
    assert.equal(await ci.kill(), true)
  })

  await check('pause, list as paused, connect resumes with files and processes', async () => {
    await sbx.files.write('/home/user/before-pause.txt', `written by ${run}`)
    await sbx.files.write('/tmp/before-pause.txt', `in /tmp by ${run}`)
    const ticker = await sbx.commands.run(
      'i=0; while true; do i=$((i+1)); echo $i > /home/user/ticks; sleep 0.2; done',
      { background: true })
    const ticks = async () => Number((await sbx.files.read('/home/user/ticks')).trim())
    for (let i = 0; i < 100 && !(await sbx.files.exists('/home/user/ticks')); i++)
      await new Promise((resolve) => setTimeout(resolve, 100))
    assert.ok(await ticks() > 0)
    assert.equal(await sbx.pause(), true)
    assert.equal(await Sandbox.pause(sbx.sandboxId), false) // already paused: 409
    assert.equal((await sbx.getInfo()).state, 'paused')
    assert.deepEqual(await listIds({ metadata: { run }, state: ['paused'] }), [sbx.sandboxId])
    assert.deepEqual(await listIds({ metadata: { run }, state: ['running'] }), [])
    assert.deepEqual(await listIds({ metadata: { run } }), [sbx.sandboxId])
    const back = await Sandbox.connect(sbx.sandboxId, { ...SLOW, timeoutMs: 300_000 })
    assert.equal(back.sandboxId, sbx.sandboxId)
    const info = await back.getInfo()
    assert.equal(info.state, 'running')
    const left = info.endAt - Date.now()
    assert.ok(left > 200_000 && left <= 601_000, `${left} ms left`)
    assert.equal(await back.files.read('/home/user/before-pause.txt'), `written by ${run}`)
    assert.equal(await back.files.read('/tmp/before-pause.txt'), `in /tmp by ${run}`)
    // the background loop runs on where it stopped
    const first = await ticks()
    await new Promise((resolve) => setTimeout(resolve, 1500))
    const later = await ticks()
    assert.ok(first > 0 && later > first, `ticks ${first} then ${later}`)
    assert.equal(await ticker.kill(), true)
    assert.equal((await back.commands.run('echo resumed')).stdout, 'resumed\n')
    // connecting to a running sandbox resumes nothing
    assert.equal((await Sandbox.connect(sbx.sandboxId)).sandboxId, sbx.sandboxId)
  })

  await check('options a pause or resume cannot honour are refused', async () => {
    await rejects(sbx.pause({ keepMemory: false }), SandboxError, 400, /memory/)
    assert.equal((await sbx.getInfo()).state, 'running')
  })

  await check('fork and snapshots copy the sandbox with its files and metadata', async () => {
    const note = `written by ${run}`
    const forks = await sbx.fork({ ...SLOW, count: 1, timeoutMs: 240_000 })
    assert.equal(forks.length, 1)
    assert.ok(forks[0] instanceof Sandbox, String(forks[0]))
    const fork = forks[0]
    made.push(fork)
    assert.notEqual(fork.sandboxId, sbx.sandboxId)
    assert.equal(await fork.files.read('/home/user/before-pause.txt'), note)
    const forkInfo = await fork.getInfo()
    assert.deepEqual([forkInfo.templateId, forkInfo.metadata], ['base', metadata])
    assert.equal(await fork.kill(), true)

    const name = `snap-${run}`
    const snap = await sbx.createSnapshot({ ...SLOW, name })
    snapshots.push(snap.snapshotId)
    assert.match(snap.snapshotId, /^snap_[0-9a-f]{32}$/)
    assert.deepEqual(snap.names, [name])
    assert.deepEqual((await sbx.listSnapshots().nextItems()).map((x) => x.snapshotId),
      [snap.snapshotId])
    assert.deepEqual((await Sandbox.listSnapshots({ name }).nextItems()), [snap])
    // createSnapshot's id, or its name, is a template
    for (const template of [snap.snapshotId, name]) {
      const copy = await Sandbox.create(template, { ...SLOW, metadata: { run, copy: '1' } })
      made.push(copy)
      assert.equal(await copy.files.read('/home/user/before-pause.txt'), note)
      assert.equal((await copy.getInfo()).templateId, template)
      assert.equal(await copy.kill(), true)
    }
    assert.equal(await Sandbox.deleteSnapshot(snap.snapshotId), true)
    assert.equal(await Sandbox.deleteSnapshot(snap.snapshotId), false)
    assert.deepEqual(await Sandbox.listSnapshots({ name }).nextItems(), [])
  })

  await check('kill ends the sandbox; it is then not found', async () => {
    assert.equal(await sbx.kill(), true)
    assert.equal(await Sandbox.kill(sbx.sandboxId), false)
    await rejects(Sandbox.getInfo(sbx.sandboxId), SandboxNotFoundError)
    await rejects(Sandbox.connect(sbx.sandboxId), SandboxNotFoundError)
    await rejects(Sandbox.setTimeout(sbx.sandboxId, 60_000), SandboxNotFoundError)
    assert.deepEqual(await listIds({ metadata: { run } }), [])
  })

  await check('an unknown template is a 404 naming it, and makes nothing', async () => {
    await rejects(Sandbox.create('no-such-template', SLOW), SandboxError, 404,
      /no-such-template/)
    assert.deepEqual(await listIds({ metadata: { run } }), [])
  })

  await check('options emberd cannot honour are refused at create', async () => {
    await rejects(Sandbox.create({ ...SLOW, lifecycle: { onTimeout: 'pause' } }),
      SandboxError, 400, /autoPause/)
    await rejects(Sandbox.create({ ...SLOW, metadata: { 'e2b.dev/template': 'x' } }),
      SandboxError, 400, /reserved/)
  })

  await check('a wrong API key is an AuthenticationError', async () => {
    await rejects(Sandbox.list({ apiKey: 'e2b_wrong_key_0000000000' }).nextItems(),
      AuthenticationError)
    await rejects(Sandbox.create({ ...SLOW, apiKey: 'e2b_wrong_key_0000000000' }),
      AuthenticationError)
  })
}

try {
  await main()
} catch {
  process.exitCode = 1
} finally {
  for (const s of made) await s.kill().catch(() => {})
  for (const id of snapshots) await Sandbox.deleteSnapshot(id).catch(() => {})
}
