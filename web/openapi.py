"""The API's OpenAPI 3.1 description, with the op catalogue filled in from the same declarations."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from imgjobs.catalog import CATALOG
from imgjobs.jobs import MEDIA_TYPES
from imgjobs.presets import PRESETS
from web.api import MAX_PAGE

bp = Blueprint("openapi", __name__)

JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
#: A share link's expiry; its signature is the `shareLink` security scheme (web/share.py).
EXPIRES = {"name": "expires", "in": "query", "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
           "description": "Share links only: when the link stops working, in unix seconds."}
SHARE_LINK = {
    "type": "apiKey",
    "in": "query",
    "name": "signature",
    "description": "A share link (`links.share` of a finished job): the result URL with `expires` and this "
    "HMAC-SHA256 signature of path and expiry. It needs no key; a changed or expired link gets 403.",
}
BEARER = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key from the server's API_KEYS_FILE, as `Authorization: Bearer <key>`. Only when the "
    "server has keys; without them the API is open (and then listens on loopback only).",
}
STATUSES = ["queued", "started", "finished", "failed", "canceled"]


def _ref(name: str) -> dict[str, str]:
    """Point at a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """Describe a JSON response."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    """Describe error responses, all in the one error shape."""
    return {str(status): _json(_ref("Error"), "An error; see error.code and error.message.") for status in statuses}


def _step_schema() -> dict[str, Any]:
    """One job step: an op name from the catalogue and its parameters."""
    kinds = {"int": "integer", "float": "number", "bool": "boolean", "choice": "string", "color": "string"}
    variants = []
    for op in CATALOG.values():
        properties: dict[str, Any] = {"op": {"const": op.name}}
        for param in op.params:
            kind = kinds[param.kind] if param.required else [kinds[param.kind], "null"]  # null: the default
            schema: dict[str, Any] = {"type": kind, "description": param.description}
            schema.update({k: v for k, v in (("minimum", param.minimum), ("maximum", param.maximum)) if v is not None})
            if param.choices:
                schema["enum"] = [*param.choices, *([] if param.required else [None])]
            properties[param.name] = schema
        required = ["op", *(p.name for p in op.params if p.required)]
        variants.append(
            {
                "title": op.name,
                "description": op.description,
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            }
        )
    return {"oneOf": variants}


def document() -> dict[str, Any]:
    """Return the OpenAPI document."""
    job_responses = {"200": _json(_ref("Job"), "The job."), **_errors(400, 401, 404, 503)}
    return {
        "openapi": "3.1.0",
        "info": {"title": "imgjobs", "version": "1", "description": "Image-processing jobs: upload, queue, result."},
        "paths": {
            "/api/v1/jobs": {
                "post": {
                    "summary": "Upload an image with a list of steps; the job is queued. ?wait=N answers once it ends.",
                    "parameters": [
                        {"name": "wait", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 30}},
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": _ref("NewJob"),
                                "encoding": {"ops": {"contentType": "application/json"}},
                            }
                        },
                    },
                    "responses": {
                        "201": _json(_ref("Job"), "Ended within ?wait=N seconds (finished, failed or canceled)."),
                        "202": _json(_ref("Job"), "Queued."), **_errors(400, 401, 413, 415, 422, 429, 503, 507)
                    },
                },
                "get": {
                    "summary": "Recent jobs, newest first.",
                    "parameters": [
                        {
                            "name": "page",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                        },
                        {
                            "name": "per_page",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                        },
                    ],
                    "responses": {"200": _json(_ref("JobList"), "One page of jobs."), **_errors(400, 401, 503)},
                },
            },
            "/api/v1/jobs/{job_id}": {
                "get": {
                    "summary": "A job's status, progress and result; ?wait=N long-polls until it ends.",
                    "parameters": [
                        JOB_ID,
                        {"name": "wait", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 30}},
                    ],
                    "responses": job_responses,
                },
                "delete": {
                    "summary": "Cancel a queued job, stop a running one, delete an ended one.",
                    "parameters": [JOB_ID],
                    "responses": {**job_responses, "204": {"description": "The ended job and its files are deleted."}},
                },
            },
            "/api/v1/jobs/{job_id}/result": {
                "get": {
                    "summary": "The result image of a finished job; with a share link's expires and signature, no key.",
                    "parameters": [JOB_ID, EXPIRES],
                    "security": [{"apiKey": []}, {"shareLink": []}],
                    "responses": {
                        "200": {
                            "description": "The image.",
                            "content": {
                                t: {"schema": {"type": "string", "format": "binary"}} for t in MEDIA_TYPES.values()
                            },
                        },
                        **_errors(401, 403, 404, 409, 503),
                    },
                },
            },
            "/api/v1/ops": {
                "get": {
                    "summary": "The op catalogue.",
                    "responses": {"200": _json({"type": "object"}, "Ops and parameters."), **_errors(401)},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "The process is up.",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, "Up.")},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Redis answers and the data directory is writable.",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, "Ready."), **_errors(503)},
                }
            },
        },
        "security": [{"apiKey": []}],
        "components": {"schemas": _schemas(), "securitySchemes": {"apiKey": BEARER, "shareLink": SHARE_LINK}},
    }


def _schemas() -> dict[str, Any]:
    """The component schemas."""
    timestamp = {"type": ["string", "null"], "format": "date-time"}
    return {
        "Step": _step_schema(),
        "NewJob": {
            "type": "object",
            "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary", "description": "The image."},
                "ops": {
                    "type": "array",
                    "items": _ref("Step"),
                    "maxItems": 20,
                    "description": "The steps, as a JSON list; empty or missing means re-encode only.",
                },
                "preset": {"type": "string", "enum": list(PRESETS), "description": "Named steps, instead of ops."},
                "format": {"type": "string", "enum": list(MEDIA_TYPES)},
                "quality": {"type": "integer", "minimum": 1, "maximum": 100},
            },
        },
        "Job": {
            "type": "object",
            "required": ["id", "status", "progress", "ops", "links"],
            "properties": {
                "id": {"type": "string"},
                "status": {"type": "string", "enum": STATUSES},
                "progress": {"type": "number", "minimum": 0, "maximum": 1},
                "ops": {"type": "array", "items": _ref("Step")},
                "format": {"type": ["string", "null"]},
                "input": {"type": "object"},
                "created_at": timestamp,
                "started_at": timestamp,
                "ended_at": timestamp,
                "result": {
                    "type": ["object", "null"],
                    "properties": {
                        "width": {"type": "integer"},
                        "height": {"type": "integer"},
                        "format": {"type": "string"},
                        "media_type": {"type": "string"},
                        "bytes": {"type": "integer"},
                        "analysis": {"type": "array"},
                    },
                },
                "error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
                "links": {
                    "type": "object",
                    "properties": {
                        "self": {"type": "string"},
                        "result": {"type": "string"},
                        "share": {
                            "type": "string",
                            "description": "When the server has keys and the job is finished: the result as a "
                            "signed link that works without a key until it expires (SHARE_TTL).",
                        },
                    },
                },
            },
        },
        "JobList": {
            "type": "object",
            "required": ["jobs", "page", "per_page", "total", "links"],
            "properties": {
                "jobs": {"type": "array", "items": _ref("Job")},
                "page": {"type": "integer"},
                "per_page": {"type": "integer"},
                "total": {"type": "integer"},
                "links": {"type": "object"},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["status", "code", "message"],
                    "properties": {
                        "status": {"type": "integer"},
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                    },
                }
            },
        },
    }


@bp.get("/api/v1/openapi.json")
def openapi() -> dict[str, Any]:
    """Serve the OpenAPI document."""
    return document()
