"""API documents into requests: exact requests for OpenAPI 3.x and Swagger 2.0 documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from probes.apispec import (
    ApiRequest,
    load_apispec_file,
    looks_like_spec_path,
    parse_document,
    plan_requests,
)
from probes.errors import ProbeSpecError

OPENAPI3 = {
    "openapi": "3.0.2",
    "info": {"title": "shop", "version": "1"},
    "servers": [{"url": "/api/{version}", "variables": {"version": {"default": "v1"}}}],
    "paths": {
        "/items/{item_id}": {
            "parameters": [{"$ref": "#/components/parameters/ItemId"}],
            "get": {"parameters": [
                {"name": "verbose", "in": "query", "schema": {"type": "boolean"}},
                {"name": "fields", "in": "query", "required": True,
                 "schema": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}}},
            ]},
            "delete": {},
        },
        "/reports": {"get": {"parameters": [
            {"name": "format", "in": "query",
             "schema": {"allOf": [{"$ref": "#/components/schemas/Format"}], "default": "csv"}},
            {"name": "limit", "in": "query", "required": True,
             "schema": {"type": "integer", "minimum": 5, "maximum": 50}},
            {"name": "X-Tenant", "in": "header", "required": True,
             "examples": {"main": {"value": "acme"}}},
        ]}},
        "/users/{uid}/since/{day}": {"get": {"parameters": [
            {"name": "uid", "in": "path", "required": True,
             "schema": {"type": "string", "format": "uuid"}},
            {"name": "day", "in": "path", "required": True,
             "schema": {"$ref": "#/components/schemas/Day"}},
        ]}},
        "/orders": {
            "post": {"requestBody": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Order"}}}}},
            "head": {},
        },
        "/upload": {"put": {"requestBody": {"content": {"multipart/form-data": {}}}}},
        "/broken/{id}": {"get": {}},
    },
    "components": {
        "parameters": {"ItemId": {"name": "item_id", "in": "path", "required": True,
                                  "schema": {"type": "string"}, "example": "apple pie"}},
        "schemas": {
            "Format": {"type": "string", "enum": ["json", "csv"]},
            "Day": {"type": "string", "format": "date"},
            "Order": {"type": "object", "required": ["item", "count", "tags", "note"],
                      "properties": {
                          "item": {"$ref": "#/components/schemas/Item"},
                          "count": {"type": "integer", "exclusiveMinimum": 0},
                          "tags": {"type": "array", "items": {"type": "string"}},
                          "note": {"type": ["null", "string"], "minLength": 10},
                          "optional": {"type": "string"}}},
            "Item": {"type": "object", "required": ["name"],
                     "properties": {"name": {"type": "string", "example": "apple"},
                                    "parent": {"$ref": "#/components/schemas/Item"}}},
        },
    },
}


def _doc(doc: dict, source: str = "/openapi.json"):
    return parse_document(json.dumps(doc).encode(), source)


def test_get_and_head_operations_by_default_each_value_from_the_document() -> None:
    plan = plan_requests(_doc(OPENAPI3))
    assert plan.operations == 8
    assert plan.requests == (
        ApiRequest("GET", "/api/v1/items/apple%20pie?fields=a", (), None,
                   "GET /items/{item_id}"),
        ApiRequest("GET", "/api/v1/reports?format=csv&limit=5", (("X-Tenant", "acme"),), None,
                   "GET /reports"),
        ApiRequest("GET", "/api/v1/users/00000000-0000-0000-0000-000000000000/since/2024-01-01",
                   (), None, "GET /users/{uid}/since/{day}"),
        ApiRequest("HEAD", "/api/v1/orders", (), None, "HEAD /orders"),
    )
    assert plan.skipped == (
        "DELETE /items/{item_id}: not sent (only GET and HEAD by default; "
        "--http-probe-apispec-methods all sends it)",
        "POST /orders: not sent (only GET and HEAD by default; "
        "--http-probe-apispec-methods all sends it)",
        "PUT /upload: not sent (only GET and HEAD by default; "
        "--http-probe-apispec-methods all sends it)",
        "GET /broken/{id}: path parameter 'id' is not described",
    )


def test_all_methods_build_minimal_valid_json_bodies() -> None:
    plan = plan_requests(_doc(OPENAPI3), "all")
    by_op = {r.operation: r for r in plan.requests}
    assert by_op["DELETE /items/{item_id}"] == ApiRequest(
        "DELETE", "/api/v1/items/apple%20pie", (), None, "DELETE /items/{item_id}")
    post = by_op["POST /orders"]
    assert post.headers == (("Content-Type", "application/json"),)
    assert json.loads(post.body) == {"item": {"name": "apple"}, "count": 1, "tags": ["example"],
                                     "note": "examplexxx"}
    assert plan.skipped == (
        "PUT /upload: request body multipart/form-data is not generated (only JSON bodies are)",
        "GET /broken/{id}: path parameter 'id' is not described",
    )


def test_swagger_2_document() -> None:
    doc = {
        "swagger": "2.0", "basePath": "/v2/",
        "paths": {
            "/pets/{petId}": {"get": {"parameters": [
                {"name": "petId", "in": "path", "required": True, "type": "integer",
                 "x-example": 42},
                {"name": "status", "in": "query", "type": "string",
                 "enum": ["available", "sold"]},
                {"name": "page", "in": "query", "type": "integer"},
            ]}},
            "/pets": {"post": {"parameters": [
                {"name": "body", "in": "body", "schema": {"$ref": "#/definitions/Pet"}}]}},
        },
        "definitions": {"Pet": {"type": "object", "required": ["name"],
                                "properties": {"name": {"type": "string", "example": "rex"}},
                                "example": {"name": "tom", "age": 3}}},
    }
    api = _doc(doc, "/v2/api-docs")
    assert (api.version, api.base_path) == ("2.0", "/v2")
    plan = plan_requests(api, "all")
    assert plan.requests == (
        ApiRequest("GET", "/v2/pets/42?status=available", (), None, "GET /pets/{petId}"),
        ApiRequest("POST", "/v2/pets", (("Content-Type", "application/json"),),
                   b'{"name":"tom","age":3}', "POST /pets"),
    )


def test_request_body_examples_win_over_the_schema() -> None:
    doc = {"openapi": "3.1.0", "paths": {"/a": {"post": {"requestBody": {"content": {
        "application/json; charset=utf-8": {
            "examples": {"first": {"$ref": "#/components/examples/One"}},
            "schema": {"type": "object", "required": ["x"]}}}}}}},
        "components": {"examples": {"One": {"value": {"x": [1, 2]}}}}}
    (req,) = plan_requests(_doc(doc), "all").requests
    assert req.body == b'{"x":[1,2]}'


def test_servers_relative_and_absolute_urls_keep_only_the_path() -> None:
    absolute = {"openapi": "3.0.0", "servers": [{"url": "https://api.example.com/base/"}],
                "paths": {"/a": {"get": {}}}}
    assert _doc(absolute).base_path == "/base"
    relative = {"openapi": "3.0.0", "servers": [{"url": "v2"}], "paths": {"/a": {"get": {}}}}
    assert _doc(relative, "/docs/openapi.json").base_path == "/docs/v2"
    assert plan_requests(_doc(relative, "/docs/openapi.json")).requests[0].path == "/docs/v2/a"
    none = {"openapi": "3.0.0", "paths": {"/a": {"get": {}}}}
    assert _doc(none).base_path == ""


def test_reference_loops_and_foreign_references_end() -> None:
    doc = {"openapi": "3.0.0", "paths": {"/a/{x}": {"get": {"parameters": [
        {"name": "x", "in": "path", "required": True, "schema": {"$ref": "#/components/schemas/L"}},
        {"name": "y", "in": "query", "required": True,
         "schema": {"$ref": "https://example.com/schemas.json#/Y"}},
    ]}}}, "components": {"schemas": {"L": {"$ref": "#/components/schemas/L"}}}}
    (req,) = plan_requests(_doc(doc)).requests
    assert req.path == "/a/example?y=example"


def test_yaml_file_and_errors(tmp_path: Path) -> None:
    spec = tmp_path / "api.yaml"
    spec.write_text("openapi: 3.0.3\npaths:\n  /ping:\n    get: {}\n")
    api = load_apispec_file(spec)
    assert (api.source, api.version) == (str(spec), "3.0.3")
    assert plan_requests(api).requests == (ApiRequest("GET", "/ping", (), None, "GET /ping"),)
    with pytest.raises(ProbeSpecError, match=r"nope.yaml: cannot read: No such file"):
        load_apispec_file(tmp_path / "nope.yaml")
    for text, why in [
        ("[1, 2]", "not an OpenAPI or Swagger document (no object at the top level)"),
        ('{"openapi": "2.5", "paths": {}}', "not an OpenAPI 3.x or Swagger 2.0 document"),
        ('{"swagger": "2.0"}', "paths: expected an object of API paths"),
        ("a: [unclosed", "neither JSON nor YAML"),
        ("<html><body>not found</body></html>", "not an OpenAPI or Swagger document"),
    ]:
        with pytest.raises(ProbeSpecError) as info:
            parse_document(text.encode(), "/spec")
        assert info.value.message.startswith(f"/spec: {why}"), info.value.message


@pytest.mark.parametrize("path,expected", [
    ("/openapi.json", True), ("/v3/api-docs?group=x", True), ("/static/Swagger.yaml", True),
    ("/internal/spec.YML", True), ("/data.json", True),
    ("/docs", False), ("/api/items", False), ("/json/items", False),
])
def test_looks_like_spec_path(path: str, expected: bool) -> None:
    assert looks_like_spec_path(path) is expected
