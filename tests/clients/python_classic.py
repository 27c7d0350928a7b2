"""Drive the classic WASM examples hosted by Berth with the official Python SDK (mcp 2.3.0).

Usage: python_classic.py URL MODE   (MODE: legacy | 2026-07-28 | auto; env BERTH_TOKEN: bearer key)
"""

import json
import os
import sys

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


async def main(url: str, mode: str) -> None:
    token = os.environ.get("BERTH_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    progress = []

    async def on_progress(value, total, message):
        progress.append(value)

    out = {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            out["tools"] = sorted(tools)
            out["add"] = (await c.call_tool("add", {"a": 2, "b": 3})).structured_content
            out["word_count"] = (await c.call_tool("word_count", {"text": "one two three"})).structured_content
            templates = (await c.list_resource_templates()).resource_templates
            out["templates"] = [t.uri_template for t in templates]
            out["greeting"] = (await c.read_resource("greeting://Ada")).contents[0].text
            prompt = await c.get_prompt("code_review", {"code": "fn main() {}", "language": "rust"})
            out["prompt"] = json.dumps([m.model_dump(mode="json") for m in prompt.messages])
            slow = [name for name in tools if "progress" in name or "slow" in name]
            if slow:
                await c.call_tool(slow[0], {"steps": 3}, progress_callback=on_progress)
            out["progress"] = progress
    print(json.dumps(out))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2])
