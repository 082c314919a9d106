// The official MCP TypeScript SDK's client against emberd (tests/e2e/test_mcp.py runs it):
//   node client.mjs http http://127.0.0.1:PORT/mcp
//   node client.mjs stdio /path/to/emberctl --addr 127.0.0.1:PORT mcp
// initialize, tools/list, run_code twice (state kept: x=41, then x+1 is 42), write_file and
// read_file, then a summary as one JSON line on stdout. Any failure exits 1 with the reason.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [kind, target, ...rest] = process.argv.slice(2);

function check(cond, what, value) {
  if (!cond) {
    throw new Error(`${what}: ${JSON.stringify(value)}`);
  }
}

async function main() {
  let transport;
  if (kind === "http") {
    transport = new StreamableHTTPClientTransport(new URL(target));
  } else if (kind === "stdio") {
    transport = new StdioClientTransport({ command: target, args: rest, stderr: "inherit" });
  } else {
    throw new Error("usage: client.mjs http URL | stdio COMMAND [ARG]...");
  }
  const client = new Client({ name: "emberd-test", version: "1.0.0" });
  await client.connect(transport);
  const server = client.getServerVersion();
  check(server.name === "emberd", "serverInfo", server);

  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name).sort();
  for (const t of tools) {
    check(t.inputSchema?.type === "object", "inputSchema", t);
    check(t.outputSchema?.type === "object", "outputSchema", t);
  }

  // callTool validates structuredContent against the tool's outputSchema.
  const first = await client.callTool({
    name: "run_code",
    arguments: { language: "python", code: "x = 41\nprint('x is', x)" },
  });
  check(!first.isError, "run_code x = 41", first);
  check(first.structuredContent.stdout === "x is 41\n", "run_code stdout", first);
  const second = await client.callTool({ name: "run_code", arguments: { code: "x + 1" } });
  check(!second.isError && second.structuredContent.result === "42", "run_code x + 1", second);
  check(second.content[0].type === "text" && second.content[0].text.includes("42"),
    "run_code text", second);

  const wrote = await client.callTool({
    name: "write_file",
    arguments: { path: "mcp/hello.txt", content: "hello from mcp\n" },
  });
  check(!wrote.isError && wrote.structuredContent.size === 15, "write_file", wrote);
  const read = await client.callTool({ name: "read_file", arguments: { path: "mcp/hello.txt" } });
  check(!read.isError && read.structuredContent.content === "hello from mcp\n", "read_file", read);

  const summary = {
    transport: kind,
    protocolVersion: transport.protocolVersion ?? null,
    sessionId: transport.sessionId ?? null,
    server,
    tools: names,
    sandbox_id: first.structuredContent.sandbox_id,
    result: second.structuredContent.result,
    read: read.structuredContent.content,
  };
  if (kind === "http") {
    await transport.terminateSession();
  }
  await client.close();
  process.stdout.write(JSON.stringify(summary) + "\n");
}

main().catch((e) => {
  process.stderr.write(`client.mjs: ${e.stack || e}\n`);
  process.exit(1);
});
