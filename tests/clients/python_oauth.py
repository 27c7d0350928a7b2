"""The Python SDK's OAuthClientProvider (mcp 2.3.0) against a Berth-hosted server, end to end.

Usage: python_oauth.py URL EMAIL PASSWORD

The SDK discovers Protected Resource Metadata from the 401, then the tenant's authorization
server metadata, registers dynamically, and hands us the authorization URL. Instead of a
browser, `redirect_handler` follows it with an HTTP client: it signs in with the member's
email and password (posting the login form with its CSRF token), approves the consent page,
and captures the redirect that carries the code. The SDK exchanges the code (PKCE, resource),
calls a tool, and, once its access token is made to look expired, refreshes it.

Prints one JSON object; exits non-zero on any failure.
"""

import html
import json
import re
import sys
import time
from urllib.parse import parse_qs, urljoin, urlparse

import anyio
import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

REDIRECT_URI = "http://127.0.0.1:33418/callback"


class MemoryStorage:
    def __init__(self):
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


def hidden_fields(page: str) -> dict:
    fields = {}
    for tag in re.findall(r"<input[^>]*>", page):
        if 'type="hidden"' not in tag:
            continue
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and value:
            fields[html.unescape(name.group(1))] = html.unescape(value.group(1))
    return fields


def form_action(page: str) -> str:
    return html.unescape(re.search(r'<form method="post" action="([^"]*)"', page).group(1))


class Member:
    """Plays the person at the browser: sign in, approve, hand the code back."""

    def __init__(self, email: str, password: str):
        self.email = email
        self.password = password
        self.result = None
        self.pages = []

    async def redirect_handler(self, authorization_url: str) -> None:
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as browser:
            login = await browser.get(authorization_url)
            assert login.status_code == 200, f"login page: {login.status_code} {login.text}"
            self.pages.append("login")
            fields = hidden_fields(login.text)
            fields.update(email=self.email, password=self.password)
            signed_in = await browser.post(urljoin(authorization_url, form_action(login.text)), data=fields)
            assert signed_in.status_code == 303, f"sign-in: {signed_in.status_code} {signed_in.text}"
            consent = await browser.get(urljoin(authorization_url, signed_in.headers["location"]))
            assert consent.status_code == 200 and "Allow access?" in consent.text, consent.text
            assert urlparse(REDIRECT_URI).netloc in consent.text, "the consent page names the redirect host"
            self.pages.append("consent")
            fields = hidden_fields(consent.text)
            fields["decision"] = "approve"
            done = await browser.post(urljoin(authorization_url, form_action(consent.text)), data=fields)
            assert done.status_code == 303, f"consent: {done.status_code} {done.text}"
            location = done.headers["location"]
            assert location.startswith(REDIRECT_URI), location
            query = parse_qs(urlparse(location).query)
            self.result = AuthorizationCodeResult(
                code=query["code"][0], state=query.get("state", [None])[0], iss=query.get("iss", [None])[0]
            )

    async def callback_handler(self) -> AuthorizationCodeResult:
        return self.result


async def main(url: str, email: str, password: str) -> None:
    member = Member(email, password)
    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="Berth OAuth test (Python SDK)",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=member.redirect_handler,
        callback_handler=member.callback_handler,
    )
    out = {}
    async with httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30, read=60)) as http:
        async with Client(streamable_http_client(url, http_client=http), mode="auto") as c:
            out["protocol_version"] = str(c.session.protocol_version)
            out["tools"] = sorted(t.name for t in (await c.list_tools()).tools)
            out["echo"] = (await c.call_tool("echo", {"message": "hi"})).content[0].text
            first = storage.tokens
            out["pages"] = member.pages
            out["client_id"] = storage.client_info.client_id
            out["scope"] = first.scope
            # Make the access token look expired: the provider refreshes before the next call.
            provider.context.token_expiry_time = time.time() - 1
            out["add"] = (await c.call_tool("add", {"a": 2, "b": 3})).structured_content
            second = storage.tokens
            out["refreshed"] = second.access_token != first.access_token
            out["refresh_rotated"] = second.refresh_token != first.refresh_token
            out["access_token"] = second.access_token
            out["refresh_token"] = second.refresh_token
    print(json.dumps(out))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3])
