"""Helpers shared by the set-up scripts (load_setup.py, tenants_setup.py)."""
import json
import urllib.request
from pathlib import Path

POLICY_DIR = Path(__file__).resolve().parent.parent / "policies" / "telco-retention"


def call(base, path, key, body):
    """POSTs `body` as JSON to `base + path` with bearer `key`; returns the JSON answer."""
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def telco_catalog(n):
    """The reference telco catalog repeated to `n` actions, ids suffixed -0, -1, …"""
    bundle = json.loads((POLICY_DIR / "bundle.json").read_text())
    catalog = []
    for i in range(n):
        action = dict(bundle["catalog"][i % len(bundle["catalog"])])
        action["id"] = f"{action['id']}-{i}"
        catalog.append(action)
    return catalog
