// test-interp.mjs - the E2B code interpreter (port 49999) against emberd, through the unmodified
// @e2b/code-interpreter SDK: runCode with state, results, logs, errors, streaming callbacks,
// env vars (kept to their cell, also among concurrent cells), contexts (create, list, isolation, restart, remove) and the errors users get.
// Run with E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY pointing at emberd's --e2b-addr
// (tests/e2e/test_e2b.py does). EMBERD_SANDBOX_ID (optional) uses that sandbox, made through
// the native API, instead of Sandbox.create(). Prints one line per check; exit 0 on success.
import assert from 'node:assert/strict'
import { Sandbox, NotFoundError, SandboxError, TimeoutError } from '@e2b/code-interpreter'

const checks = []
function check(name, fn) {
  checks.push([name, fn])
}

let sbx
const own = !process.env.EMBERD_SANDBOX_ID

check('x = 20 then x + 22 gives the main result 42', async () => {
  const first = await sbx.runCode('x = 20')
  assert.equal(first.error, undefined)
  assert.deepEqual(first.results, [])
  const second = await sbx.runCode('x + 22')
  assert.equal(second.error, undefined)
  assert.equal(second.results.length, 1)
  assert.equal(second.results[0].text, '42')
  assert.equal(second.results[0].isMainResult, true)
  assert.equal(second.text, '42')
})

check('print goes to logs.stdout, stderr to logs.stderr', async () => {
  const ex = await sbx.runCode('import sys\nprint("hello")\nprint("oops", file=sys.stderr)')
  assert.equal(ex.error, undefined)
  assert.equal(ex.logs.stdout.join(''), 'hello\n')
  assert.equal(ex.logs.stderr.join(''), 'oops\n')
})

check('a string result is its text without quotes', async () => {
  const ex = await sbx.runCode("'a' + 'b'")
  assert.equal(ex.text, 'ab')
})

check('an exception is execution.error with name, value and traceback', async () => {
  const ex = await sbx.runCode('x / 0')
  assert.ok(ex.error, 'no error')
  assert.equal(ex.error.name, 'ZeroDivisionError')
  assert.equal(ex.error.value, 'division by zero')
  assert.match(ex.error.traceback, /ZeroDivisionError/)
  assert.deepEqual(ex.results, [])
  // the state survives it
  assert.equal((await sbx.runCode('x')).text, '20')
})

check('onStdout, onStderr and onResult callbacks get the output', async () => {
  const out = []
  const err = []
  const results = []
  let errors = 0
  const ex = await sbx.runCode(
    'import sys, time\nfor i in range(3):\n    print("line", i, flush=True)\n    time.sleep(0.2)\nprint("e", file=sys.stderr)\n7 * 6',
    {
      onStdout: (m) => out.push(m.line),
      onStderr: (m) => err.push(m.line),
      onResult: (r) => results.push(r.text),
      onError: () => errors++,
    }
  )
  assert.equal(out.join(''), 'line 0\nline 1\nline 2\n')
  assert.ok(out.length >= 2, `stdout came in ${out.length} piece(s)`)
  assert.equal(err.join(''), 'e\n')
  assert.deepEqual(results, ['42'])
  assert.equal(errors, 0)
  assert.equal(ex.text, '42')
})

check('rich results: html and json of the final value', async () => {
  const ex = await sbx.runCode(
    'class R:\n    def __repr__(self): return "R()"\n    def _repr_html_(self): return "<b>r</b>"\n    def _repr_json_(self): return {"a": 1}\nR()'
  )
  assert.equal(ex.results.length, 1)
  assert.equal(ex.results[0].text, 'R()')
  assert.equal(ex.results[0].html, '<b>r</b>')
  assert.deepEqual(ex.results[0].json, { a: 1 })
  assert.deepEqual(ex.results[0].formats(), ['html', 'json'])
})

check('envs are set for the run and restored after it', async () => {
  const ex = await sbx.runCode("import os\nos.environ['GREETING']", { envs: { GREETING: 'hi "there"' } })
  assert.equal(ex.error, undefined)
  assert.equal(ex.text, 'hi "there"')
  // and put back after it, as E2B's server does; variables it did not name stay
  assert.equal((await sbx.runCode("os.environ.get('GREETING', 'unset')")).text, 'unset')
  await sbx.runCode("os.environ['KEEP'] = 'old'")
  const again = await sbx.runCode("os.environ['KEEP'] + os.environ['NEW']", { envs: { KEEP: 'new', NEW: '!' } })
  assert.equal(again.text, 'new!')
  assert.equal((await sbx.runCode("os.environ['KEEP'] + os.environ.get('NEW', '-')")).text, 'old-')
})

check('cells sent at once to one context take turns', async () => {
  const runs = await Promise.all([1, 2, 3].map((i) => sbx.runCode(`import time\ntime.sleep(0.3)\n${i} * 10`)))
  assert.deepEqual(runs.map((r) => r.text), ['10', '20', '30'])
})

check('a cell past the SDK timeoutMs is TimeoutError; its context goes on, afresh', async () => {
  await assert.rejects(sbx.runCode('import time\ntime.sleep(60)', { timeoutMs: 2000 }), TimeoutError)
  // the client left: the cell was cancelled (its interpreter killed and replaced, docs/e2b.md)
  const ex = await sbx.runCode('x', { requestTimeoutMs: 60000 })
  assert.equal(ex.error?.name, 'NameError')
  assert.equal((await sbx.runCode('x = 20\nx')).text, '20')
})

check("a cell's envs reach no other cell, even sent at once, and nothing stays after", async () => {
  const peek = "import os\nos.environ.get('SECRET', 'unset') + '/' + os.environ.get('OTHER', 'unset')"
  for (let round = 0; round < 3; round++) {
    // cells queued behind and around two env cells: none may run between a set and its restore
    const withEnvs = sbx.runCode("import os, time\ntime.sleep(0.5)\nos.environ['SECRET']", { envs: { SECRET: 'a' } })
    const peeks = Array.from({ length: 12 }, () => sbx.runCode(peek))
    const other = sbx.runCode("import os\nos.environ['SECRET'] + os.environ['OTHER']", {
      envs: { SECRET: 'b', OTHER: 'c' },
    })
    const [a, b, ...seen] = await Promise.all([withEnvs, other, ...peeks])
    assert.equal(a.error, undefined)
    assert.equal(a.text, 'a')
    assert.equal(b.text, 'bc')
    assert.deepEqual(
      seen.map((r) => r.text),
      seen.map(() => 'unset/unset')
    )
    assert.equal((await sbx.runCode(peek)).text, 'unset/unset')
  }
})

let ctx
check('a new context does not see x', async () => {
  ctx = await sbx.createCodeContext({ cwd: '/tmp' })
  assert.match(ctx.id, /^ctx_[0-9a-f]+$/)
  assert.equal(ctx.language, 'python')
  assert.equal(ctx.cwd, '/tmp')
  const ex = await sbx.runCode('x', { context: ctx })
  assert.equal(ex.error?.name, 'NameError')
  assert.equal((await sbx.runCode('import os\nos.getcwd()', { context: ctx })).text, '/tmp')
  await sbx.runCode('y = 5', { context: ctx })
  assert.equal((await sbx.runCode('y', { context: ctx })).text, '5')
  // and the default context still has its own
  assert.equal((await sbx.runCode('x')).text, '20')
  assert.equal((await sbx.runCode('y')).error?.name, 'NameError')
})

check('listCodeContexts lists the default and the new context', async () => {
  const list = await sbx.listCodeContexts()
  const ids = list.map((c) => c.id)
  assert.ok(ids.includes(ctx.id), JSON.stringify(list))
  assert.ok(list.length >= 2, JSON.stringify(list))
  for (const c of list) assert.equal(c.language, 'python')
})

check('restartCodeContext forgets the state', async () => {
  await sbx.restartCodeContext(ctx)
  assert.equal((await sbx.runCode('y', { context: ctx })).error?.name, 'NameError')
})

check('removeCodeContext removes it; running in it is NotFoundError', async () => {
  await sbx.removeCodeContext(ctx.id)
  const ids = (await sbx.listCodeContexts()).map((c) => c.id)
  assert.ok(!ids.includes(ctx.id))
  await assert.rejects(sbx.runCode('1', { context: ctx }), NotFoundError)
  await assert.rejects(sbx.removeCodeContext(ctx.id), NotFoundError)
})

check('bash runs in a shell context', async () => {
  const ex = await sbx.runCode('echo "$((6 * 7))"', { language: 'bash' })
  assert.equal(ex.logs.stdout.join(''), '42\n')
})

check('a language emberd has no context for is a SandboxError', async () => {
  await assert.rejects(sbx.runCode('1', { language: 'r' }), SandboxError)
  await assert.rejects(sbx.runCode('1', { language: 'javascript' }), SandboxError) // python pack
})

async function main() {
  if (own) {
    sbx = await Sandbox.create()
  } else {
    sbx = new Sandbox({ sandboxId: process.env.EMBERD_SANDBOX_ID, envdVersion: '0.2.4' })
  }
  let failed = 0
  try {
    for (const [name, fn] of checks) {
      const t0 = Date.now()
      try {
        await fn()
        console.log(`ok   ${name} (${Date.now() - t0} ms)`)
      } catch (e) {
        failed++
        console.log(`FAIL ${name}: ${e?.stack ?? e}`)
      }
    }
  } finally {
    if (own) await sbx.kill().catch(() => {})
  }
  process.exit(failed ? 1 : 0)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
