"""quota_service's public operation (the free-usage snapshot), for the OpenAPI document
(`python -m runner openapi`)."""

from __future__ import annotations

from quota_service.schemas import BucketUsageSchema, FreeUsageSchema
from shared.openapi import DATE_TIME, ServiceDoc, errors, ok

DOC = ServiceDoc(
    tags=["usage"],
    outputs={"BucketUsage": BucketUsageSchema, "FreeUsage": FreeUsageSchema},
    field_docs={
        (FreeUsageSchema, "day"): {"type": "string", "format": "date"},
        (FreeUsageSchema, "resetsAt"): DATE_TIME,
        (FreeUsageSchema, "showKeyReminder"): {
            "type": "boolean",
            "description": "True once the user made 5 or more free requests today.",
        },
    },
    paths={
        "/api/usage/free": {
            "get": {
                "tags": ["usage"],
                "operationId": "getFreeUsage",
                "summary": "Today's KeyLM Free usage: user, global and token buckets",
                "responses": {"200": ok("The snapshot.", "FreeUsage"), **errors(401)},
            }
        },
    },
)
