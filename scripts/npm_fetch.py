#!/usr/bin/env python3
"""Fetches one file out of a package on the npm registry, checked against its sha512.

    npm_fetch.py NAME VERSION SHA512_BASE64 PATH_IN_TARBALL DEST

No npm needed: the registry serves each version as a tarball whose `integrity` (sha512,
base64) is published; a tarball that does not match is refused and nothing is written.
"""
import base64
import hashlib
import io
import os
import sys
import tarfile
import urllib.request


def main() -> int:
    name, version, sha512, member, dest = sys.argv[1:6]
    url = f"https://registry.npmjs.org/{name}/-/{name}-{version}.tgz"
    print(f"fetching {url}", file=sys.stderr)
    with urllib.request.urlopen(url, timeout=120) as r:
        data = r.read()
    got = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if got != sha512:
        print(f"{name} {version}: sha512 {got} is not the expected {sha512}", file=sys.stderr)
        return 1
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as t:
        body = t.extractfile(member).read()
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = dest + ".part"
    with open(tmp, "wb") as f:
        f.write(body)
    os.replace(tmp, dest)
    print(f"{name} {version}: {dest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
