"""Tiny MCP reference server (Python `mcp` 2.3.0) for comparing Berth against a known-good peer.

Dual-era on one endpoint: legacy clients (`initialize` + `Mcp-Session-Id`) and modern
2026-07-28 clients (stateless, per-request `_meta`). Loopback only.

    .tools/venv/bin/python scripts/tools/ref_server.py [--port N] [--stateless] [--json-response]

Prints `READY http://127.0.0.1:PORT/mcp` on stdout once listening (port 0 = pick a free one).
"""

import argparse
import socket

from mcp.server.mcpserver import MCPServer

mcp = MCPServer(name="berth-ref-server", version="0.1.0")


@mcp.tool()
def echo(message: str) -> str:
    """Echo the message back."""
    return message


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--stateless", action="store_true", help="legacy path without sessions")
    ap.add_argument("--json-response", action="store_true", help="application/json instead of SSE")
    args = ap.parse_args()
    port = args.port
    if port == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    print(f"READY http://127.0.0.1:{port}/mcp", flush=True)
    mcp.run(
        transport="streamable-http",
        host="127.0.0.1",
        port=port,
        stateless_http=args.stateless,
        json_response=args.json_response,
    )


if __name__ == "__main__":
    main()
