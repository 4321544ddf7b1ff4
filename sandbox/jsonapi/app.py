"""A JSON API (FastAPI on uvicorn, Debian's packages): `/` names no endpoint, and every
endpoint reads its own data file, so only the OpenAPI document leads to them."""

import json
from enum import Enum
from pathlib import Path as FilePath

from fastapi import FastAPI, HTTPException, Path, Query
from pydantic import BaseModel

DATA = FilePath("/app/data")
app = FastAPI(title="inventory", version="1.0")
admin = FastAPI(title="inventory admin", version="1.0")  # its own document, under /admin


class Format(str, Enum):
    csv = "csv"
    json = "json"


class Order(BaseModel):
    item: str
    count: int


def _json(path: FilePath):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise HTTPException(status_code=404, detail="no such record") from exc


@app.get("/")
def root():
    return {"service": "inventory", "status": "ok"}


@app.get("/items/{item_id}")
def item(item_id: str = Path(..., example="apple")):
    return _json(DATA / "items" / f"{FilePath(item_id).name}.json")


@app.get("/reports")
def report(format: Format = Query(...)):
    return {"report": (DATA / "reports" / f"summary.{format.value}").read_text()}


@app.post("/orders", status_code=201)
def order(order: Order):
    template = _json(DATA / "orders" / "template.json")
    return {**template, "item": order.item, "count": order.count}


@app.get("/internal/stats", include_in_schema=False)
def stats():
    return _json(DATA / "stats.json")


@admin.get("/audit")
def audit():
    return {"lines": (DATA / "audit.log").read_text().splitlines()}


app.mount("/admin", admin)
