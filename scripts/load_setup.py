"""Sets up a Moment server for scripts/load.sh, noisy.sh and soak.sh.

Creates a tenant, uploads the reference telco retention policy as WASM
(`retention-wasm`) and as Rhai (`retention-rhai`) over its catalog repeated
to N candidates with suffixed ids, and writes into OUT_DIR one decide body
per point (`POINT.json`), each upload body (`upload-POINT.json`) and the
tenant's keys (`keys.json`). Prints the decide key.

usage: load_setup.py BASE_URL ROOT_TOKEN WASM_FILE CANDIDATES OUT_DIR
"""
import base64
import json
import os
import sys
from pathlib import Path

from moment_setup import POLICY_DIR, call, telco_catalog

base, root, wasm_file, candidates, out = sys.argv[1:6]
catalog = telco_catalog(int(candidates))
fallback = [a["id"] for a in catalog if a["id"].startswith("generic-welcome")][:1]

keys = call(base, "/v1/tenants", root, {"id": "load"})["keys"]
wasm = base64.b64encode(Path(wasm_file).read_bytes()).decode()
uploads = {
    "retention-wasm": {"engine": "wasm", "wasm": wasm},
    "retention-rhai": {"engine": "rhai", "source": (POLICY_DIR / "policy.rhai").read_text()},
}
attributes = {"tenure_months": 40, "complaints_90d": 2, "device_age_months": 30}
attributes.update({f"segment_{i:02}": f"value-{i:04}-abcdef" for i in range(30)})
for point, code in uploads.items():
    upload = {**code, "catalog": catalog, "fallback": fallback, "activate": True}
    call(base, f"/v1/policies/{point}/versions", keys["editor"], upload)
    Path(out, f"upload-{point}.json").write_text(json.dumps(upload))
    body = {"point": point, "customer_id": "CUSTOMER", "stage": "at-risk", "channel": "call-center",
            "attributes": attributes, "context": {"reason": "price"}, "limit": 3}
    if os.environ.get("IMPRESSIONS") == "1":
        body["record_impressions"] = True
    Path(out, f"{point}.json").write_text(json.dumps(body))
Path(out, "keys.json").write_text(json.dumps(keys))
print(keys["decide"])
