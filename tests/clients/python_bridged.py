"""Drive a container-backed server hosted by Berth with the official Python SDK (mcp 2.3.0).

Usage: python_bridged.py URL MODE SERVER
  MODE:   auto | legacy | 2026-07-28          env BERTH_TOKEN: bearer key
  SERVER: everything  (@modelcontextprotocol/server-everything over stdio)
          fastmcp     (tests/images/fastmcp/server.py over Streamable HTTP)
Prints one JSON object with what each call returned; exits non-zero on any failure.
"""

import json
import os
import sys

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


async def elicit(context, params):
    return types.ElicitResult(action="accept", content={"name": "octocat", "check": True, "email": "o@example.com"})


async def sample(context, params):
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text="Paris"),
        model="test-model",
        stopReason="endTurn",
    )


def text_of(result):
    return " ".join(c.text for c in result.content if getattr(c, "text", None))


async def everything(c, out, on_progress):
    out["echo"] = text_of(await c.call_tool("echo", {"message": "hi"}))
    out["sum"] = text_of(await c.call_tool("get-sum", {"a": 2, "b": 3}))
    call = await c.call_tool("trigger-long-running-operation", {"duration": 1, "steps": 3}, progress_callback=on_progress)
    out["long_running"] = text_of(call)
    out["sampling"] = text_of(await c.call_tool("trigger-sampling-request", {"prompt": "Capital of France?"}))
    out["elicitation"] = text_of(await c.call_tool("trigger-elicitation-request", {}))
    resources = (await c.list_resources()).resources
    out["resources"] = len(resources)
    templates = (await c.list_resource_templates()).resource_templates
    out["templates"] = sorted(t.uri_template for t in templates)
    read = await c.read_resource("demo://resource/dynamic/text/1")
    out["resource"] = read.contents[0].text
    out["prompts"] = sorted(p.name for p in (await c.list_prompts()).prompts)
    prompt = await c.get_prompt("args-prompt", {"city": "Paris"})
    out["prompt"] = prompt.messages[0].content.text


async def fastmcp(c, out, on_progress):
    out["add"] = text_of(await c.call_tool("add", {"a": 2, "b": 3}))
    out["greet"] = text_of(await c.call_tool("greet", {"name": "Ada", "excited": True}))
    weather = await c.call_tool("weather", {"city": "Oslo"})
    out["weather"] = weather.structured_content
    call = await c.call_tool("count", {"steps": 3}, progress_callback=on_progress)
    out["count"] = text_of(call)
    out["templates"] = sorted(t.uri_template for t in (await c.list_resource_templates()).resource_templates)
    out["resource"] = (await c.read_resource("notes://rust")).contents[0].text
    prompt = await c.get_prompt("review", {"code": "fn main() {}"})
    out["prompt"] = prompt.messages[0].content.text


async def main(url: str, mode: str, server: str) -> None:
    token = os.environ.get("BERTH_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    progress = []

    async def on_progress(value, total, message):
        progress.append(value)

    out = {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60, read=90)) as http:
        client = Client(
            streamable_http_client(url, http_client=http),
            mode=mode,
            elicitation_callback=elicit,
            sampling_callback=sample,
        )
        async with client as c:
            out["protocol_version"] = str(c.session.protocol_version)
            out["tools"] = sorted(t.name for t in (await c.list_tools()).tools)
            await (everything if server == "everything" else fastmcp)(c, out, on_progress)
    out["progress"] = progress
    print(json.dumps(out))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3])
