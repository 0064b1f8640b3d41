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
import sys
import urllib.request
from pathlib import Path

base, root, wasm_file, candidates, out = sys.argv[1:6]
candidates = int(candidates)
policy_dir = Path(__file__).resolve().parent.parent / "policies" / "telco-retention"


def call(path, key, body):
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


bundle = json.loads((policy_dir / "bundle.json").read_text())
catalog = []
for i in range(candidates):
    action = dict(bundle["catalog"][i % len(bundle["catalog"])])
    action["id"] = f"{action['id']}-{i}"
    catalog.append(action)
fallback = [a["id"] for a in catalog if a["id"].startswith("generic-welcome")][:1]

keys = call("/v1/tenants", root, {"id": "load"})["keys"]
wasm = base64.b64encode(Path(wasm_file).read_bytes()).decode()
uploads = {
    "retention-wasm": {"engine": "wasm", "wasm": wasm},
    "retention-rhai": {"engine": "rhai", "source": (policy_dir / "policy.rhai").read_text()},
}
attributes = {"tenure_months": 40, "complaints_90d": 2, "device_age_months": 30}
attributes.update({f"segment_{i:02}": f"value-{i:04}-abcdef" for i in range(30)})
for point, code in uploads.items():
    upload = {**code, "catalog": catalog, "fallback": fallback, "activate": True}
    call(f"/v1/policies/{point}/versions", keys["editor"], upload)
    Path(out, f"upload-{point}.json").write_text(json.dumps(upload))
    body = {"point": point, "customer_id": "CUSTOMER", "stage": "at-risk", "channel": "call-center",
            "attributes": attributes, "context": {"reason": "price"}, "limit": 3}
    Path(out, f"{point}.json").write_text(json.dumps(body))
Path(out, "keys.json").write_text(json.dumps(keys))
print(keys["decide"])
