// bench-roundtrip.mjs - the E2B SDK round trips bench/e2b.py measures: RUNS times
// `Sandbox.create()` + `commands.run('echo hi')` + `kill()` ("run"), and RUNS times
// `Sandbox.create()` + `kill()` ("bare"), each timed whole in this process, one after the other.
// Usage: node bench-roundtrip.mjs RUNS, with E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY set.
// Prints one JSON line {"run": [ms...], "bare": [ms...]}; exits 1 (saying why on stderr) when a
// round trip fails or `echo hi` does not print hi.
import { Sandbox } from 'e2b'

const runs = Number(process.argv[2] ?? '20')
const opts = { requestTimeoutMs: 600_000 }

async function timed(fn) {
  const t0 = performance.now()
  await fn()
  return performance.now() - t0
}

const out = { run: [], bare: [] }
try {
  for (let i = 0; i < runs; i++) {
    out.run.push(await timed(async () => {
      const sbx = await Sandbox.create(opts)
      try {
        const res = await sbx.commands.run('echo hi')
        if (res.stdout !== 'hi\n' || res.exitCode !== 0) {
          throw new Error(`echo hi gave ${JSON.stringify(res)}`)
        }
      } finally {
        await sbx.kill()
      }
    }))
    out.bare.push(await timed(async () => {
      const sbx = await Sandbox.create(opts)
      await sbx.kill()
    }))
  }
  console.log(JSON.stringify(out))
} catch (err) {
  console.error(`bench-roundtrip: ${err?.stack ?? err}`)
  process.exitCode = 1
}
