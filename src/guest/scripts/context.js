// context.js - the interpreter loop of a node code context (docs/guest.md "Contexts").
//
// Started by the guest agent as the sandbox user, in the context's own cgroup and session, as
// `node --expose-internals context.js` (the flag lends us the REPL's own top-level-await rewrite):
//   fd 0  commands from the agent, one per line: "run <path of the code file>"
//   fd 1  the context's stdout (a pipe the agent reads), fd 2 its stderr
//   fd 3  replies to the agent, one per line: "ready", then per run "done <JSON>"
// The wire protocol is context.py's. Every run is a script in this one realm, as in the node
// REPL: top-level var/let/const/function/class declarations, globals, require()d modules, the
// working directory and process.env persist between runs (so, as in the REPL, declaring the same
// let/const again in a later run is a SyntaxError; assign it instead). A run's completion value
// is its result (util.inspect text); a run that uses top-level await is rewritten by the REPL's
// processTopLevelAwait and awaited. A run's JSON: {"exit_code", "result", "error", "results"}
// (src/proto/ctxmsg.h; "results" stays empty: node has no display protocol). The agent trusts
// none of it. SIGINT during a run interrupts it (synchronous code through vm's breakOnSigint, an
// await by rejecting it): the run's error, the context survives; between runs it is ignored.
"use strict";

const fs = require("fs");
const net = require("net");
const path = require("path");
const readline = require("readline");
const util = require("util");
const vm = require("vm");
const { createRequire } = require("module");

const RESULT_MAX = 60 * 1024; // PROTO_RESULT_TEXT_MAX, with room for the JSON escaping
const ERROR_MAX = 60 * 1024; // PROTO_ERROR_TEXT_MAX, likewise
const REPLY_MAX = 1000 * 1024; // under GUEST_CONTEXT_REPLY_MAX, with "done " and the newline
const TEXT_CUT = 16 * 1024; // a text cut to fit the reply: escaped, three of them fit
const INTERRUPTED = "Script execution was interrupted by `SIGINT`";
const realExit = process.exit.bind(process);

let processTopLevelAwait = null;
try {
  ({ processTopLevelAwait } = require("internal/repl/await"));
} catch {
  // started without --expose-internals: runs with top-level await are a SyntaxError
}

// Lone surrogates and NUL are no text the agent's JSON decoder takes: U+FFFD instead.
function clean(text) {
  return text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]|\0/g,
                      "\uFFFD");
}

function cut(text, limit) {
  const data = Buffer.from(clean(text), "utf8");
  if (data.length <= limit) return data.toString("utf8");
  // toString drops a sequence the cut split into U+FFFD: trim that one off.
  return data.subarray(0, limit).toString("utf8").replace(/\uFFFD$/, "") + "\n[... cut]";
}

function inspect(value) {
  try {
    return util.inspect(value);
  } catch (e) { // a Proxy or a getter may throw: the run still finished
    return "<util.inspect() failed>";
  }
}

// The stack without this file's frames (and vm's): everything up to the last frame in a cell
// (frames of node's own code called from a cell stay), or, when no cell is on it (a callback
// node called), all but ours.
function userStack(stack) {
  const lines = String(stack).split("\n");
  let last = -1;
  lines.forEach((line, i) => {
    if (/^\s+at /.test(line) && line.includes("<cell-")) last = i;
  });
  if (last >= 0) return lines.slice(0, last + 1).join("\n");
  return lines.filter((line) => !/^\s+at /.test(line) ||
                      !(line.includes(__filename) || line.includes("node:vm"))).join("\n");
}

function describe(exc) {
  let name;
  let value;
  let traceback;
  try {
    if (exc instanceof Error || (exc !== null && typeof exc === "object" && "stack" in exc)) {
      name = String(exc.name || "Error");
      value = String(exc.message);
      traceback = userStack(exc.stack) + "\n";
    } else {
      name = exc === null ? "null" : typeof exc;
      value = inspect(exc);
      traceback = "Uncaught " + value + "\n";
    }
  } catch { // the user's getters may throw too: the context lives on
    name = "Error";
    value = "<the thrown value could not be read>";
    traceback = "Uncaught " + value + "\n";
  }
  return { name: cut(name, 256), value: cut(value, ERROR_MAX), traceback: cut(traceback, ERROR_MAX) };
}

function encode(outcome) {
  // JSON.stringify leaves non-ASCII as is and escapes control characters.
  let text = JSON.stringify(outcome);
  if (Buffer.byteLength(text) <= REPLY_MAX) return text;
  if (outcome.result !== null) outcome.result = cut(outcome.result, TEXT_CUT);
  if (outcome.error !== null) {
    outcome.error.value = cut(outcome.error.value, TEXT_CUT);
    outcome.error.traceback = cut(outcome.error.traceback, TEXT_CUT);
  }
  return JSON.stringify(outcome);
}

class ExitRequest {
  constructor(code) {
    this.code = code;
  }
}

function exitCode(code) {
  const n = Number(code === undefined ? process.exitCode || 0 : code);
  return Number.isInteger(n) && n >= 0 && n <= 255 ? n : 1;
}

class Context {
  constructor(replyFd) {
    this.replyFd = replyFd;
    this.runs = 0;
    this.finish = null; // the running run's settle function
    this.interrupt = null; // rejects the running run's await
  }

  reply(text) {
    fs.writeSync(this.replyFd, text + "\n");
  }

  // Compiles the cell: a plain script, or (top-level await) the REPL's async rewrite of it.
  compile(source, filename) {
    try {
      return { script: new vm.Script(source, { filename }), wrapped: false };
    } catch (e) {
      if (!(e instanceof SyntaxError) || processTopLevelAwait === null || !/\bawait\b/.test(source))
        throw e;
      let wrapped = null;
      try {
        wrapped = processTopLevelAwait(source);
      } catch {
        // not parseable by acorn either: the original error says more
      }
      if (wrapped === null) throw e;
      return { script: new vm.Script(wrapped, { filename }), wrapped: true };
    }
  }

  async run(file) {
    const outcome = { exit_code: 0, result: null, error: null, results: [] };
    this.runs += 1;
    try {
      const source = fs.readFileSync(file, "utf8");
      // require() in a cell resolves from the working directory, as the REPL's does.
      let cwd = "/";
      try {
        cwd = process.cwd();
      } catch {
        // the code removed its working directory: resolve from /
      }
      globalThis.require = createRequire(path.join(cwd, "<cell>"));
      process.exitCode = undefined;
      const { script, wrapped } = this.compile(source, `<cell-${this.runs}>`);
      let value = script.runInThisContext({ breakOnSigint: true, displayErrors: false });
      if (wrapped) {
        const interrupted = new Promise((_, reject) => {
          this.interrupt = () => {
            const e = new Error(INTERRUPTED);
            e.code = "ERR_SCRIPT_EXECUTION_INTERRUPTED";
            reject(e);
          };
        });
        const settled = await Promise.race([value, interrupted]);
        value = settled && typeof settled === "object" && "value" in settled ? settled.value
          : undefined;
      }
      if (value !== undefined) {
        globalThis._ = value;
        outcome.result = cut(inspect(value), RESULT_MAX);
      }
      // process.exitCode = n is the run's exit code, as it is a plain exec's.
      if (process.exitCode !== undefined) outcome.exit_code = exitCode(process.exitCode);
    } catch (e) {
      if (e instanceof ExitRequest) {
        outcome.exit_code = e.code;
      } else {
        outcome.exit_code = 1;
        outcome.error = describe(e);
        fs.writeSync(2, outcome.error.traceback);
      }
    } finally {
      this.interrupt = null;
      process.exitCode = undefined;
    }
    return outcome;
  }

  serve(commands) {
    // Between runs SIGINT does nothing (a listener keeps node from dying of it); during a
    // synchronous stretch breakOnSigint throws in the code, during an await this rejects it.
    process.on("SIGINT", () => {
      if (this.interrupt !== null) this.interrupt();
    });
    // process.exit() ends the run with that code, not the interpreter (like python's sys.exit).
    process.exit = (code) => {
      throw new ExitRequest(exitCode(code));
    };
    // What a run left behind (a timer, a promise nobody awaited) that throws is reported on
    // stderr, and the context lives on, like an exception in a python thread.
    process.on("uncaughtException", (e) => {
      if (e instanceof ExitRequest) return;
      try {
        fs.writeSync(2, "Uncaught " + describe(e).traceback);
      } catch {
        // stderr gone: the agent is going away
      }
    });
    process.on("unhandledRejection", (e) => {
      if (e instanceof ExitRequest) return;
      try {
        fs.writeSync(2, "Uncaught (in promise) " + describe(e).traceback);
      } catch {
        // likewise
      }
    });
    const queue = [];
    let busy = false;
    const next = async () => {
      if (busy) return;
      busy = true;
      while (queue.length > 0) {
        const outcome = await this.run(queue.shift());
        this.reply("done " + encode(outcome));
      }
      busy = false;
    };
    readline.createInterface({ input: commands, crlfDelay: Infinity }).on("line", (line) => {
      if (!line.startsWith("run ")) return;
      queue.push(line.slice(4));
      next();
    }).on("close", () => {
      realExit(0); // the agent closed our commands: the context is gone
    });
    this.reply("ready");
  }
}

// Our own dups of the command and reply pipes (opened O_CLOEXEC, so the code's children do not
// inherit them); fd 0 becomes /dev/null (a run reads no input) and fd 3 is closed. Node has no
// dup2: the lowest free descriptor is the one just closed, and nothing else opens files yet.
function takeFds() {
  const cmd = fs.openSync("/proc/self/fd/0", "r");
  const rep = fs.openSync("/proc/self/fd/3", "w");
  fs.closeSync(0);
  const devnull = fs.openSync("/dev/null", "r");
  if (devnull !== 0) {
    fs.closeSync(devnull);
    throw new Error(`/dev/null opened as fd ${devnull}, not 0`);
  }
  fs.closeSync(3);
  return { cmd, rep };
}

function main() {
  const { cmd, rep } = takeFds();
  process.argv = [process.argv[0]];
  const commands = new net.Socket({ fd: cmd, readable: true, writable: false });
  new Context(rep).serve(commands);
}

main();
