"""Loads N tenants into a Moment server for scripts/tenants.sh.

Each tenant `t<i>` gets the reference telco policy (WASM) over the
100-action telco catalog as decision point `retention`, live. Every module is
the reference module plus a custom section naming its tenant, so no two
tenants share a compilation (the engine caches compilations by content
hash). Writes OUT_DIR/keys.txt, one decide key per line, and
OUT_DIR/body.json, the decide body.

usage: tenants_setup.py BASE_URL ROOT_TOKEN WASM_FILE N OUT_DIR
"""
import base64
import json
import sys
from pathlib import Path

from moment_setup import call, telco_catalog

base, root, wasm_file, n, out = sys.argv[1:6]
catalog = telco_catalog(100)
module = Path(wasm_file).read_bytes()


def custom_section(i):
    """A WASM custom section (id 0) named moment-tenant holding i."""
    name = b"moment-tenant"
    payload = bytes([len(name)]) + name + i.to_bytes(4, "little")
    return bytes([0, len(payload)]) + payload


decide_keys = []
for i in range(int(n)):
    keys = call(base, "/v1/tenants", root, {"id": f"t{i}"})["keys"]
    wasm = base64.b64encode(module + custom_section(i)).decode()
    call(base, "/v1/policies/retention/versions", keys["editor"],
         {"engine": "wasm", "wasm": wasm, "catalog": catalog, "fallback": [], "activate": True})
    decide_keys.append(keys["decide"])
Path(out, "keys.txt").write_text("\n".join(decide_keys) + "\n")
body = {"point": "retention", "customer_id": "CUSTOMER", "stage": "at-risk", "channel": "call-center",
        "attributes": {"tenure_months": 40, "complaints_90d": 2, "device_age_months": 30},
        "context": {"reason": "price"}, "limit": 3}
Path(out, "body.json").write_text(json.dumps(body))
