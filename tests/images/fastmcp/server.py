"""An MCP server written the way most teams write one today: the `mcp` package's FastMCP-style
decorators (`MCPServer`, the 2.x name of `FastMCP`), served over Streamable HTTP.

Tools with typed arguments, a resource template, a prompt, and progress and logging through the
context. Berth runs it as a container image (`tests/images/build.sh fastmcp`):

    python /app/server.py            # listens on 0.0.0.0:$PORT (default 8000), endpoint /mcp
"""

import os

import anyio
from pydantic import BaseModel

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings

mcp = MCPServer(name="berth-test-fastmcp", version="0.1.0", instructions="A FastMCP-style test server.")


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@mcp.tool()
def greet(name: str, excited: bool = False) -> str:
    """Greet someone by name."""
    return f"Hello, {name}{'!' if excited else '.'}"


class Weather(BaseModel):
    city: str
    celsius: float


@mcp.tool()
def weather(city: str) -> Weather:
    """A made-up forecast, as structured content."""
    return Weather(city=city, celsius=21.5)


@mcp.tool()
async def count(steps: int, ctx: Context) -> str:
    """Count to `steps`, reporting progress and logging each step."""
    for step in range(1, steps + 1):
        await ctx.info(f"step {step}")
        await ctx.report_progress(step, steps, f"step {step}")
        await anyio.sleep(0.05)
    return f"counted to {steps}"


@mcp.resource("notes://{topic}")
def note(topic: str) -> str:
    """A note about a topic."""
    return f"Notes about {topic}"


@mcp.resource("config://app")
def app_config() -> str:
    """Static configuration."""
    return "mode=test"


@mcp.prompt()
def review(code: str) -> str:
    """Ask for a code review."""
    return f"Please review this code:\n\n{code}"


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8000"))
    # Reached only through Berth on the container's own loopback; no browser can get here.
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    mcp.run(transport="streamable-http", host="0.0.0.0", port=port, transport_security=security)
