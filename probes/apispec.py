"""API discovery: read an OpenAPI 3.x or Swagger 2.0 document and make one request per
operation, with parameter values taken from the document (example, examples, default,
the first enum value) or else a value of the right type.

Only local `$ref`s (`#/...`) are followed, with a depth bound, so an untrusted document
can neither reach out nor loop.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union
from urllib.parse import quote, urlencode, urljoin, urlsplit

from probes.errors import ProbeSpecError
from probes.records import ApiDocument

__all__ = ["WELL_KNOWN_PATHS", "DOC_PAGES", "ApiRequest", "ApiPlan", "parse_document",
           "load_apispec_file",
           "plan_requests", "looks_like_spec_path"]

# Where frameworks serve their document by default: FastAPI, springdoc, springfox,
# swagger-jsdoc/express setups, ASP.NET Swashbuckle, and a few common variants.
WELL_KNOWN_PATHS = ("/openapi.json", "/openapi.yaml", "/swagger.json", "/v3/api-docs",
                    "/v2/api-docs", "/api-docs", "/swagger/v1/swagger.json",
                    "/docs/openapi.json")
# Where frameworks serve the pages that show the document (Swagger UI, Redoc): FastAPI's
# /docs and /redoc, springdoc's /swagger-ui.html, springfox's /swagger-ui/, Swashbuckle's
# /swagger. Their pages and what the pages load are part of the app.
DOC_PAGES = ("/docs", "/redoc", "/swagger-ui.html", "/swagger-ui/", "/swagger")
_METHODS = ("get", "head", "options", "post", "put", "patch", "delete", "trace")
_SAFE = ("GET", "HEAD")
_BODY_METHODS = ("POST", "PUT", "PATCH")
_MAX_DEPTH = 12  # of $ref chains and nested schemas
_SPEC_NAME = re.compile(r"openapi|swagger|api-docs|\.json$|\.ya?ml$", re.I)
_TEMPLATE = re.compile(r"\{([^{}]+)\}")
_STRING_FORMATS = {
    "date": "2024-01-01", "date-time": "2024-01-01T00:00:00Z", "time": "00:00:00",
    "uuid": "00000000-0000-0000-0000-000000000000", "email": "user@example.com",
    "uri": "http://example.com/", "url": "http://example.com/", "hostname": "example.com",
    "ipv4": "192.0.2.1", "ipv6": "2001:db8::1", "byte": "AA==", "password": "secret",
}


@dataclass(frozen=True)
class ApiRequest:
    """One request made from one operation of a document."""

    method: str
    path: str  # path and query, as sent
    headers: tuple[tuple[str, str], ...] = ()
    body: Optional[bytes] = None
    operation: str = ""  # "GET /items/{item_id}", as the document names it


@dataclass(frozen=True)
class ApiPlan:
    """The requests for a document's operations, and the operations left out (why)."""

    requests: tuple[ApiRequest, ...]
    operations: int
    skipped: tuple[str, ...] = ()


def looks_like_spec_path(path: str) -> bool:
    """A path whose name suggests an API document (`/openapi.json`, `/api-docs`,
    `/spec.yaml`...)."""
    return bool(_SPEC_NAME.search(urlsplit(path).path))


def parse_document(data: Union[bytes, str], source: str) -> ApiDocument:
    """Parse JSON or YAML text into an ApiDocument; ProbeSpecError when it is not one."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        doc = json.loads(text)
    except ValueError:
        try:
            import yaml  # here: only a YAML document needs it, and it is slow to import

            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ProbeSpecError(f"{source}: neither JSON nor YAML ({_first_line(exc)})") from exc
    if not isinstance(doc, dict):
        raise ProbeSpecError(f"{source}: not an OpenAPI or Swagger document (no object at "
                             "the top level)")
    version = str(doc.get("openapi") or doc.get("swagger") or "")
    if not (version.startswith("3.") and "openapi" in doc or version == "2.0"):
        raise ProbeSpecError(f"{source}: not an OpenAPI 3.x or Swagger 2.0 document (no "
                             "'openapi: 3.x' or 'swagger: \"2.0\"' field)")
    if not isinstance(doc.get("paths"), dict):
        raise ProbeSpecError(f"{source}: paths: expected an object of API paths")
    return ApiDocument(source=source, version=version, doc=doc,
                       base_path=_base_path(doc, source if source.startswith("/") else "/"))


def load_apispec_file(path: Union[str, Path]) -> ApiDocument:
    """Read and parse an API document file (`--http-probe-apispec-file`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ProbeSpecError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse_document(data, str(path))


def plan_requests(api: ApiDocument, methods: str = "get") -> ApiPlan:
    """One request per operation; with methods "get" only GET and HEAD ones are made."""
    requests: list[ApiRequest] = []
    skipped: list[str] = []
    count = 0
    for template, item in api.doc["paths"].items():
        item = _deref(api.doc, item)
        if not isinstance(template, str) or not isinstance(item, dict):
            continue
        for method in _METHODS:
            operation = _deref(api.doc, item.get(method))
            if not isinstance(operation, dict):
                continue
            count += 1
            name = f"{method.upper()} {template}"
            if methods == "get" and method.upper() not in _SAFE:
                skipped.append(f"{name}: not sent (only GET and HEAD by default; "
                               "--http-probe-apispec-methods all sends it)")
                continue
            request, why = _request(api, template, item, method.upper(), operation)
            if request is None:
                skipped.append(f"{name}: {why}")
            else:
                requests.append(request)
    return ApiPlan(requests=tuple(requests), operations=count, skipped=tuple(skipped))


# -- one operation -------------------------------------------------------------------

def _request(api: ApiDocument, template: str, item: dict, method: str,
             operation: dict) -> tuple[Optional[ApiRequest], str]:
    params = _parameters(api.doc, item, operation)
    path_values, query, headers = {}, [], []
    body: Optional[bytes] = None
    for param in params:
        where, name = param.get("in"), param.get("name")
        if where == "body":  # Swagger 2.0
            body = _json_bytes(_sample(api.doc, param.get("schema") or {}, 0))
            continue
        if not isinstance(name, str) or where not in ("path", "query", "header"):
            continue
        if where != "path" and not param.get("required") and not _has_value(api.doc, param):
            continue  # an optional parameter with nothing to say: leave it out
        value = _param_value(api.doc, param)
        if where == "path":
            path_values[name] = value
        elif where == "query":
            query.extend((name, _text(v)) for v in (value if isinstance(value, list) else [value]))
        else:
            headers.append((name, _text(value)))
    missing = [n for n in _TEMPLATE.findall(template) if n not in path_values]
    if missing:
        return None, f"path parameter {missing[0]!r} is not described"
    path = _TEMPLATE.sub(lambda m: quote(_text(path_values[m.group(1)], ","), safe=""), template)
    path = api.base_path + (path if path.startswith("/") else "/" + path)
    if query:
        path += "?" + urlencode(query)
    if method in _BODY_METHODS and body is None:
        body, why = _request_body(api.doc, operation)
        if why:
            return None, why
    if body is not None:
        headers.append(("Content-Type", "application/json"))
    return ApiRequest(method=method, path=path, headers=tuple(headers), body=body,
                      operation=f"{method} {template}"), ""


def _parameters(doc: dict, item: dict, operation: dict) -> list[dict]:
    """Path-item parameters overridden by the operation's own (same name and place)."""
    merged: dict[tuple, dict] = {}
    for raw in [*(item.get("parameters") or []), *(operation.get("parameters") or [])]:
        param = _deref(doc, raw)
        if isinstance(param, dict):
            merged[(param.get("name"), param.get("in"))] = param
    return list(merged.values())


def _request_body(doc: dict, operation: dict) -> tuple[Optional[bytes], str]:
    body = _deref(doc, operation.get("requestBody"))
    if not isinstance(body, dict):
        return None, ""  # a POST without a body is a valid operation
    content = body.get("content") or {}
    media = next((c for t, c in content.items() if "json" in str(t).lower()), None)
    if media is None:
        if not content:
            return None, ""
        kinds = ", ".join(str(t) for t in content)
        return None, f"request body {kinds} is not generated (only JSON bodies are)"
    media = _deref(doc, media) if isinstance(media, dict) else {}
    found, value = _example(doc, media)
    if not found:
        value = _sample(doc, media.get("schema") or {}, 0)
    return _json_bytes(value), ""


def _has_value(doc: dict, param: dict) -> bool:
    schema = _deref(doc, param.get("schema")) or {}
    return (_example(doc, param)[0] or "x-example" in param
            or any(k in schema or k in param for k in ("example", "default", "enum")))


def _param_value(doc: dict, param: dict) -> Any:
    found, value = _example(doc, param)
    if found:
        return value
    if "x-example" in param:  # a common Swagger 2.0 extension
        return param["x-example"]
    if "schema" in param:
        return _sample(doc, param["schema"], 0)
    content = param.get("content")
    if isinstance(content, dict) and content:
        media = _deref(doc, next(iter(content.values()))) or {}
        return _sample(doc, media.get("schema") or {}, 0)
    return _sample(doc, param, 0)  # Swagger 2.0: the parameter is its own schema


def _example(doc: dict, holder: dict) -> tuple[bool, Any]:
    """(found, value) from `example` or the first of `examples` of a parameter or media."""
    if "example" in holder:
        return True, holder["example"]
    examples = holder.get("examples")
    if isinstance(examples, dict):
        for example in examples.values():
            example = _deref(doc, example)
            if isinstance(example, dict) and "value" in example:
                return True, example["value"]
    return False, None


# -- schemas -------------------------------------------------------------------------

def _sample(doc: dict, schema: Any, depth: int) -> Any:
    """A value the schema accepts: its own example/default/enum, else a minimal one."""
    schema = _deref(doc, schema)
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return "example"
    for key in ("example", "default", "const"):
        if key in schema:
            return schema[key]
    for key in ("examples", "enum"):
        if isinstance(schema.get(key), list) and schema[key]:
            return schema[key][0]
    if isinstance(schema.get("allOf"), list):
        return _sample(doc, _merge_all_of(doc, schema["allOf"]), depth + 1)
    for key in ("oneOf", "anyOf"):
        options = [_deref(doc, o) for o in schema.get(key) or []]
        options = [o for o in options if isinstance(o, dict) and o.get("type") != "null"]
        if options:
            return _sample(doc, options[0], depth + 1)
    return _typed(doc, schema, _type(schema), depth)


def _typed(doc: dict, schema: dict, kind: str, depth: int) -> Any:
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: _sample(doc, properties.get(name, {}), depth + 1)
                for name in schema.get("required") or [] if isinstance(name, str)}
    if kind == "array":
        return [_sample(doc, schema.get("items") or {}, depth + 1)]
    if kind in ("integer", "number"):
        low = schema.get("minimum")
        if not isinstance(low, (int, float)) and isinstance(schema.get("exclusiveMinimum"),
                                                           (int, float)):
            low = schema["exclusiveMinimum"] + 1
        value = low if isinstance(low, (int, float)) else 1
        high = schema.get("maximum")
        if isinstance(high, (int, float)) and value > high:
            value = high
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return True
    text = _STRING_FORMATS.get(str(schema.get("format")), "example")
    length = schema.get("minLength")
    if isinstance(length, int) and len(text) < length:
        text = text + "x" * (length - len(text))
    return text


def _type(schema: dict) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    return "array" if "items" in schema else "string"


def _merge_all_of(doc: dict, parts: list) -> dict:
    merged: dict = {"type": "object", "properties": {}, "required": []}
    for part in parts:
        part = _deref(doc, part)
        if isinstance(part, dict):
            if _type(part) != "object" or "example" in part:
                return part
            merged["properties"].update(part.get("properties") or {})
            merged["required"] += list(part.get("required") or [])
    return merged


def _deref(doc: dict, node: Any, depth: int = 0) -> Any:
    """Follow a local `$ref` chain (`#/components/schemas/X`); {} when it leads nowhere."""
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if not ref.startswith("#/") or depth > _MAX_DEPTH:
            return {}
        node = doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part) if isinstance(node, dict) else None
        depth += 1
    return node


# -- text ----------------------------------------------------------------------------

def _base_path(doc: dict, doc_path: str) -> str:
    """The path every operation path is under: 3.x `servers[0].url` (its path only: the
    app is the server), or 2.0 `basePath`."""
    if doc.get("swagger") == "2.0":
        base = doc.get("basePath") or ""
    else:
        servers = doc.get("servers") or [{}]
        server = servers[0] if isinstance(servers[0], dict) else {}
        url = str(server.get("url") or "")
        for name, var in (server.get("variables") or {}).items():
            if isinstance(var, dict):
                url = url.replace("{" + str(name) + "}", str(var.get("default", "")))
        base = urlsplit(urljoin(doc_path, url)).path if url else ""
    base = str(base).rstrip("/")
    return base if not base or base.startswith("/") else "/" + base


def _text(value: Any, separator: str = ",") -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return separator.join(_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else str(value)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
