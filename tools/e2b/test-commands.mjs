// test-commands.mjs - envd's process service (docs/e2b.md "Commands") through the unmodified
// `e2b` SDK: commands.run with its result and CommandExitError, envs and cwd, output streamed
// while the command runs, background commands with list / kill / sendStdin / closeStdin /
// connect, the timeoutMs that ends a command, and the errors users get for a PTY, an unknown
// pid and the root user.
//
// Run by tests/e2e/test_e2b.py with E2B_API_URL, E2B_SANDBOX_URL (both the daemon's --e2b-addr)
// and E2B_API_KEY (its --auth-token-file token) set; prints one line per check, exits 0 when
// every check passed. Its one sandbox is killed before it exits, whatever happened. Order is
// checked by events (a command waits for a file the script creates), never by the clock.
import assert from 'node:assert/strict'

import { CommandExitError, NotFoundError, Sandbox, SandboxError, TimeoutError } from 'e2b'

// A create boots a VM: seconds under KVM, much longer under TCG on a busy machine.
const SLOW = { requestTimeoutMs: 600_000 }
const made = []

async function check(name, fn) {
  try {
    await fn()
  } catch (err) {
    console.log(`not ok - ${name}: ${err?.stack ?? err}`)
    throw err
  }
  console.log(`ok - ${name}`)
}

async function rejects(promise, klass, pattern) {
  let err = null
  try {
    await promise
  } catch (e) {
    err = e
  }
  assert.ok(err, `expected ${klass.name}, but the call succeeded`)
  assert.ok(err instanceof klass, `expected ${klass.name}, got ${err?.name}: ${err?.message}`)
  if (pattern !== undefined) assert.match(err.message, pattern)
  return err
}

// Resolves once cond() holds, polling every 100 ms; fails after limitMs (a generous bound for a
// slow machine, not a measurement).
async function until(what, cond, limitMs = 120_000) {
  const end = Date.now() + limitMs
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

// A shell loop that waits for a file the script creates later.
const waitFor = (path) => `while [ ! -e ${path} ]; do sleep 0.1; done`

async function main() {
  let sbx

  await check('Sandbox.create() makes the sandbox the commands run in', async () => {
    sbx = await Sandbox.create({ ...SLOW, timeoutMs: 600_000 })
    made.push(sbx)
  })

  await check("commands.run('echo hi') gives stdout hi and exit code 0", async () => {
    const res = await sbx.commands.run('echo hi')
    assert.equal(res.stdout, 'hi\n')
    assert.equal(res.stderr, '')
    assert.equal(res.exitCode, 0)
  })

  await check('a failing command throws CommandExitError with its code and output', async () => {
    const err = await rejects(sbx.commands.run('echo out; echo oops >&2; exit 3'),
      CommandExitError, /exit status 3/)
    assert.equal(err.exitCode, 3)
    assert.equal(err.stdout, 'out\n')
    assert.equal(err.stderr, 'oops\n')
  })

  await check('envs and cwd reach the command, which runs as the sandbox user', async () => {
    const res = await sbx.commands.run('echo "$FOO"; pwd; id -u',
      { envs: { FOO: 'bar baz' }, cwd: '/tmp' })
    assert.equal(res.stdout, 'bar baz\n/tmp\n1000\n')
  })

  await check('a command starts in /home/user with HOME, USER and PWD as under envd', async () => {
    const res = await sbx.commands.run('pwd; echo "$HOME $USER $PWD"; cd ~ && pwd -P')
    assert.equal(res.stdout, '/home/user\n/home/user user /home/user\n/home/sandbox\n')
  })

  await check('onStdout receives the first line while the command still runs', async () => {
    const seen = []
    let ended = false
    const running = sbx.commands.run(`echo a; ${waitFor('/tmp/go-stream')}; echo b`, {
      onStdout: (data) => seen.push({ data, ended }),
    }).then((res) => {
      ended = true
      return res
    })
    await until('the first line', () => seen.length > 0)
    assert.deepEqual(seen[0], { data: 'a\n', ended: false })
    // only now may the command go on: the first line came while it was blocked
    await sbx.commands.run('touch /tmp/go-stream')
    const res = await running
    assert.equal(res.stdout, 'a\nb\n')
    assert.equal(seen.map((s) => s.data).join(''), 'a\nb\n')
  })

  await check('a background command is listed, kill() ends it and it is gone', async () => {
    const handle = await sbx.commands.run('sleep 600', { background: true })
    assert.ok(handle.pid > 0)
    const listed = (await sbx.commands.list()).find((p) => p.pid === handle.pid)
    assert.ok(listed, 'the command is not listed')
    assert.equal(listed.cmd, '/bin/bash')
    assert.deepEqual(listed.args, ['-l', '-c', 'sleep 600'])
    assert.equal(await handle.kill(), true)
    const err = await rejects(handle.wait(), CommandExitError, /signal: killed/)
    assert.equal(err.exitCode, -1)
    assert.ok(!(await sbx.commands.list()).some((p) => p.pid === handle.pid))
    // killing it again: the SDK's false for a pid that is not there
    assert.equal(await sbx.commands.kill(handle.pid), false)
  })

  await check('sendStdin reaches a cat started with stdin, closeStdin ends it', async () => {
    const cat = await sbx.commands.run('cat', { background: true, stdin: true })
    await sbx.commands.sendStdin(cat.pid, 'hello\n')
    await cat.sendStdin('again\n')
    await sbx.commands.closeStdin(cat.pid)
    const res = await cat.wait()
    assert.equal(res.stdout, 'hello\nagain\n')
    assert.equal(res.exitCode, 0)
  })

  await check('commands.connect(pid) follows a running command to its end', async () => {
    const handle = await sbx.commands.run(`${waitFor('/tmp/go-connect')}; echo late`,
      { background: true })
    await handle.disconnect()
    const attached = await sbx.commands.connect(handle.pid)
    assert.equal(attached.pid, handle.pid)
    await sbx.commands.run('touch /tmp/go-connect')
    const res = await attached.wait()
    assert.equal(res.stdout, 'late\n')
    assert.equal(res.exitCode, 0)
  })

  await check('connect to a pid that is not running is a NotFoundError', async () => {
    await rejects(sbx.commands.connect(99999), NotFoundError, /99999/)
  })

  await check("timeoutMs ends the command: TimeoutError, and it is killed", async () => {
    await rejects(sbx.commands.run('sleep 600 && echo never', { timeoutMs: 3000 }),
      TimeoutError)
    await until('the timed-out command to end', async () =>
      !(await sbx.commands.list()).some((p) => p.args?.[2] === 'sleep 600 && echo never'))
  })

  await check('a silent command\'s stream carries keepalives at Keepalive-Ping-Interval',
    async () => {
      // The SDK asks for one every 50 s; this raw Start asks for 1 s and reads the frames.
      const message = Buffer.from(JSON.stringify({
        process: { cmd: '/bin/bash', args: ['-l', '-c', `${waitFor('/tmp/go-ka')}; echo x`] },
      }))
      const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), message])
      envelope.writeUInt32BE(message.length, 1)
      const res = await fetch(`${process.env.E2B_SANDBOX_URL}/process.Process/Start`, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/connect+json',
          'Connect-Protocol-Version': '1',
          'Keepalive-Ping-Interval': '1',
          'E2b-Sandbox-Id': sbx.sandboxId,
          'E2b-Sandbox-Port': '49983',
          ...(sbx.envdAccessToken ? { 'X-Access-Token': sbx.envdAccessToken } : {}),
        },
        body: envelope,
      })
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('content-type'), 'application/connect+json')
      const reader = res.body.getReader()
      const frames = []
      let pending = Buffer.alloc(0)
      let released = false
      while (!frames.some((f) => f.flags === 2)) {
        const { done, value } = await reader.read()
        assert.ok(!done, `the stream ended without its end message: ${JSON.stringify(frames)}`)
        pending = Buffer.concat([pending, value])
        while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
          const len = pending.readUInt32BE(1)
          frames.push({ flags: pending[0], msg: JSON.parse(pending.subarray(5, 5 + len)) })
          pending = pending.subarray(5 + len)
        }
        if (!released && frames.some((f) => f.msg.event?.keepalive)) {
          released = true // a keepalive came while the command waited: let it finish
          await sbx.commands.run('touch /tmp/go-ka')
        }
      }
      const kinds = frames.map((f) => (f.flags === 2 ? 'eos' : Object.keys(f.msg.event)[0]))
      assert.equal(kinds[0], 'start')
      assert.ok(kinds.indexOf('keepalive') < kinds.indexOf('data'), kinds.join(' '))
      assert.deepEqual(kinds.slice(-3), ['data', 'end', 'eos'])
      assert.equal(Buffer.from(frames.at(-3).msg.event.data.stdout, 'base64').toString(), 'x\n')
      assert.equal(frames.at(-2).msg.event.end.exitCode, 0)
      assert.deepEqual(frames.at(-1).msg, {})
    })

  await check('the server ends a command at Connect-Timeout-Ms with deadline_exceeded', async () => {
    // The SDK's own abort usually fires first; here no client timer runs, so the end of the
    // stream is the server's: envd's deadline_exceeded, which the SDK raises as TimeoutError.
    const message = Buffer.from(JSON.stringify({
      process: { cmd: '/bin/bash', args: ['-l', '-c', 'sleep 600'] },
    }))
    const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), message])
    envelope.writeUInt32BE(message.length, 1)
    const res = await fetch(`${process.env.E2B_SANDBOX_URL}/process.Process/Start`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/connect+json',
        'Connect-Protocol-Version': '1',
        'Connect-Timeout-Ms': '2000',
        'E2b-Sandbox-Id': sbx.sandboxId,
        'E2b-Sandbox-Port': '49983',
        ...(sbx.envdAccessToken ? { 'X-Access-Token': sbx.envdAccessToken } : {}),
      },
      body: envelope,
    })
    assert.equal(res.status, 200)
    const body = Buffer.from(await res.arrayBuffer())
    const frames = []
    for (let off = 0; off + 5 <= body.length;) {
      const len = body.readUInt32BE(off + 1)
      frames.push({ flags: body[off], msg: JSON.parse(body.subarray(off + 5, off + 5 + len)) })
      off += 5 + len
    }
    const last = frames.at(-1)
    assert.equal(last.flags, 2, JSON.stringify(frames))
    assert.equal(last.msg.error?.code, 'deadline_exceeded', JSON.stringify(last.msg))
    assert.ok(!frames.some((f) => f.msg.event?.end), 'no normal end for a timed-out command')
  })

  await check('a PTY is not supported: SandboxError naming it', async () => {
    await rejects(sbx.pty.create({ cols: 80, rows: 24 }), SandboxError, /unimplemented.*PTY/)
  })

  await check('running as root is refused', async () => {
    await rejects(sbx.commands.run('id', { user: 'root' }), SandboxError, /root/)
  })
}

try {
  await main()
} catch {
  process.exitCode = 1
} finally {
  for (const s of made) await s.kill().catch(() => {})
}
