"""Validates API answers against CAMARA's own OpenAPI file (tests/it/api.rs runs it).

    camara_schema.py OPENAPI_YAML < cases.jsonl

Each input line is {"ref": REF, "body": JSON} where REF names a schema in the file
(`#/components/schemas/VerifyResponseBody`) or a response (`#/components/responses/Generic401`,
validated against its application/json schema). Prints one line per case; exits 1 when any
body does not validate.
"""

import json
import sys

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

BASE = "urn:camara"


def schema_for(ref):
    if ref.startswith("#/components/responses/"):
        # The response's JSON schema, by JSON pointer ('/' in the media type is '~1').
        return {"$ref": f"{BASE}{ref}/content/application~1json/schema"}
    return {"$ref": f"{BASE}{ref}"}


def main(path):
    with open(path) as f:
        document = yaml.safe_load(f)
    registry = Registry().with_resource(
        BASE, Resource(contents=document, specification=DRAFT202012)
    )
    failed = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        case = json.loads(line)
        validator = Draft202012Validator(schema_for(case["ref"]), registry=registry)
        errors = sorted(validator.iter_errors(case["body"]), key=lambda e: list(e.path))
        if errors:
            failed += 1
            print(f"INVALID {case['ref']}: {json.dumps(case['body'])}: {errors[0].message}")
        else:
            print(f"ok {case['ref']}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(sys.argv[1])
