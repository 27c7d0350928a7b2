"""Drive a Berth-hosted fixture server with the official Python SDK (mcp 2.3.0).

Usage: python_client.py URL MODE   (MODE: auto | legacy | 2026-07-28; env BERTH_TOKEN: bearer key)
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
    return types.ElicitResult(action="accept", content={"name": "octocat"})


async def sample(context, params):
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text="Paris"),
        model="test-model",
        stopReason="endTurn",
    )


async def main(url: str, mode: str) -> None:
    token = os.environ.get("BERTH_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    progress = []

    async def on_progress(value, total, message):
        progress.append(value)

    out = {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http:
        client = Client(
            streamable_http_client(url, http_client=http),
            mode=mode,
            elicitation_callback=elicit,
            sampling_callback=sample,
        )
        async with client as c:
            out["protocol_version"] = str(c.session.protocol_version)
            out["tools"] = sorted(t.name for t in (await c.list_tools()).tools)
            out["echo"] = (await c.call_tool("echo", {"message": "hi"})).content[0].text
            out["add"] = (await c.call_tool("add", {"a": 2, "b": 3})).structured_content
            out["elicitation"] = (await c.call_tool("test_elicitation", {"message": "Who are you?"})).content[0].text
            out["sampling"] = (await c.call_tool("test_sampling", {"prompt": "Capital of France?"})).content[0].text
            call = await c.call_tool("test_tool_with_progress", {}, progress_callback=on_progress)
            out["progress_result"] = call.content[0].text
            out["progress"] = progress
            out["resource"] = (await c.read_resource("test://static-text")).contents[0].text
            out["templates"] = [t.uri_template for t in (await c.list_resource_templates()).resource_templates]
            prompt = await c.get_prompt("test_prompt_with_arguments", {"arg1": "a", "arg2": "b"})
            out["prompt_messages"] = len(prompt.messages)
    print(json.dumps(out))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2])
