"""What goes over the wire, read as bytes: UTF-8 JSON with Chinese text as is."""

from __future__ import annotations


async def test_chinese_text_is_utf8_on_the_wire_not_escapes(client):
    r = await client.get("/api/v1/does-not-exist")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "未找到该资源".encode() in r.content  # the title, as UTF-8 bytes
    assert b"\\u" not in r.content and b"\\/" not in r.content
    assert r.json()["instance"] == "/api/v1/does-not-exist"
