#!/usr/bin/env node
// Minimal TypeScript-SDK (v1.32.x, legacy era: initialize + Mcp-Session-Id, max 2025-11-25)
// Streamable HTTP client: tools/list, then optionally tools/call; prints one JSON object.
//
//   .tools/bin/node scripts/tools/ts_client.mjs URL [TOOL [JSON_ARGS]]
//   BERTH_TOKEN=... adds `Authorization: Bearer ...` to every HTTP request.
//
// stdout: {"protocolVersion","serverInfo","tools":[...],"call":{"tool","arguments","result"}}
// Exit: 0 ok, 2 usage, 5 tool returned isError, 1 anything else (JSON error on stderr).
// The SDK is loaded from $BERTH_TOOLS_DIR/mcp (default <repo>/.tools/mcp, see install-tools.sh).
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const tools = process.env.BERTH_TOOLS_DIR ?? resolve(here, "../../.tools");
const sdk = join(tools, "mcp/node_modules/@modelcontextprotocol/sdk/dist/esm");
const load = (p) => import(pathToFileURL(join(sdk, p)).href);

const [url, toolName, argsJson = "{}"] = process.argv.slice(2);
if (!url) {
  console.error("usage: ts_client.mjs URL [TOOL [JSON_ARGS]]  (env BERTH_TOKEN for a bearer token)");
  process.exit(2);
}

try {
  const { Client } = await load("client/index.js");
  const { StreamableHTTPClientTransport } = await load("client/streamableHttp.js");
  const args = JSON.parse(argsJson);
  const headers = process.env.BERTH_TOKEN ? { Authorization: `Bearer ${process.env.BERTH_TOKEN}` } : {};
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  const client = new Client({ name: "berth-ts-client", version: "0.1.0" });
  await client.connect(transport); // initialize + notifications/initialized
  const out = {
    protocolVersion: transport.protocolVersion,
    serverInfo: client.getServerVersion(),
    tools: (await client.listTools()).tools,
  };
  if (toolName) {
    out.call = { tool: toolName, arguments: args, result: await client.callTool({ name: toolName, arguments: args }) };
  }
  await transport.terminateSession().catch(() => {}); // DELETE the session (405 is fine)
  await client.close();
  console.log(JSON.stringify(out));
  process.exit(out.call?.result?.isError ? 5 : 0);
} catch (err) {
  console.error(JSON.stringify({ error: { message: String(err?.message ?? err), code: err?.code } }));
  process.exit(1);
}
