import json


async def test_live(client):
    r = await client.get("/health/live")
    assert r.status_code == 200
    r = await client.get("/health/ready")
    assert r.status_code == 200, r.text
    assert r.json()["checks"]["database"] == "ok"


async def test_spec(client):
    r = await client.get("/docs/openapi.json")
    assert r.status_code == 200
    open("/tmp/spec.json", "w").write(json.dumps(r.json(), indent=1, ensure_ascii=False))
    r = await client.post("/api/v1/auth/sms-codes", json={"phone": "123"})
    print(r.status_code, r.headers.get("content-type"), r.text)
    r = await client.post("/api/v1/auth/sms-codes", content=b"{bad")
    print(r.status_code, r.text)
    r = await client.get("/api/v1/me")
    print(r.status_code, r.text)
    r = await client.get("/api/v1/me", headers={"Authorization": "Bearer abc", "Accept-Language": "en"})
    print(r.status_code, r.text)
    r = await client.get("/nope")
    print(r.status_code, r.text)
    r = await client.post("/api/v1/auth/sms-codes", json={"phone": "13900000001"})
    print(r.status_code, r.text)
