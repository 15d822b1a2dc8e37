#!/usr/bin/env python3
"""Runs protoc-c on one .proto of this directory, for its messages and enums only.

The services are dispatched by method path in src/rpc, so their protobuf-c stubs are not needed,
and they cannot be compiled anyway: NodeService has a method named Register, which protoc-c turns
into a struct member called `register`, a C keyword. Every .proto is copied to a scratch directory
with its `service` blocks removed, and protoc-c runs there.

usage: protoc_c_messages.py PROTOC_C PROTO_ROOT OUT_DIR REL_PATH
"""
import os
import re
import subprocess
import sys
import tempfile

SERVICE = re.compile(r"^service\s+\w+\s*\{.*?^\}\s*$", re.S | re.M)
IMPORT = re.compile(r'^import\s+"([^"]+)";\s*$', re.M)
DEFINED = re.compile(r"^(?:message|enum)\s+(\w+)", re.M)


def drop_unused_imports(text, root):
    """Without its services a file may no longer use an import; protoc would warn about it."""

    def keep(m):
        with open(os.path.join(root, m.group(1))) as f:
            names = DEFINED.findall(f.read())
        body = IMPORT.sub("", text)
        return m.group(0) if any(re.search(r"\b%s\b" % n, body) for n in names) else ""

    return IMPORT.sub(keep, text)


def main():
    protoc_c, root, out_dir, rel = sys.argv[1:5]
    with tempfile.TemporaryDirectory() as tmp:
        for dirpath, _, files in os.walk(root):
            for name in files:
                if not name.endswith(".proto"):
                    continue
                src = os.path.join(dirpath, name)
                dst = os.path.join(tmp, os.path.relpath(src, root))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                with open(src) as f:
                    text = drop_unused_imports(SERVICE.sub("", f.read()), root)
                with open(dst, "w") as f:
                    f.write(text)
        return subprocess.call([protoc_c, "--proto_path=" + tmp, "--c_out=" + out_dir, rel])


if __name__ == "__main__":
    sys.exit(main())
