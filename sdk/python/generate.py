"""Generates the Python SDK from Weir's OpenAPI document with openapi-python-client.

Usage: python sdk/python/generate.py [openapi/openapi.json] [OUTPUT_DIR]

The package `weir_client` is written to OUTPUT_DIR (default: sdk/python/generated). Any generator
warning fails the run: a warning means part of the API would be missing from the SDK.

openapi-python-client sends JSON, form, multipart and `application/octet-stream` bodies only, so
the two other forms of produce (`text/plain` and the `application/x-ndjson` stream) are left out
of the copy it reads; from Python, produce a raw record as bytes (`File`) instead.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
UNSENDABLE = ("text/plain", "application/x-ndjson")


def without_unsendable_bodies(spec: dict) -> dict:
    """The document without the request body types the generator cannot send."""
    for item in spec["paths"].values():
        for op in item.values():
            content = op.get("requestBody", {}).get("content", {}) if isinstance(op, dict) else {}
            for media_type in UNSENDABLE:
                if media_type in content and len(content) > 1:
                    del content[media_type]
    return spec


def main() -> None:
    source = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else HERE.parent.parent / "openapi" / "openapi.json")
    output = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else HERE / "generated")
    spec = without_unsendable_bodies(json.loads(source.read_text()))
    # The generator formats its output with ruff, installed beside it.
    env = dict(os.environ, PATH=os.pathsep.join([str(pathlib.Path(sys.executable).parent), os.environ.get("PATH", "")]))
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "openapi.json"
        path.write_text(json.dumps(spec))
        subprocess.run(
            [
                sys.executable, "-m", "openapi_python_client", "generate",
                "--path", str(path), "--config", str(HERE / "config.yaml"),
                "--meta", "none", "--output-path", str(output), "--overwrite", "--fail-on-warning",
            ],
            check=True,
            env=env,
        )


if __name__ == "__main__":
    main()
