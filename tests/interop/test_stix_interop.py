"""Interoperability with the OASIS Python tools: stix2-validator and stix2.

Run by scripts/test with PHALANX_BIN pointing at the built binary.
"""

import json
import os
import pathlib
import subprocess

import stix2
from stix2validator import ValidationOptions, validate_file

PHALANX = os.environ["PHALANX_BIN"]
ROOT = pathlib.Path(__file__).resolve().parents[2]
ICS = ROOT.parent / "shared" / "data" / "stix" / "ics-attack.json"


def phalanx(data, *args, check=True):
    return subprocess.run(
        [PHALANX, "--data", str(data), *args],
        check=check,
        capture_output=True,
        text=True,
    )


def test_oasis_validator_accepts_the_ics_export(tmp_path):
    data = tmp_path / "data"
    phalanx(data, "collection", "create", "ics")
    phalanx(data, "import", "--collection", "ics", str(ICS))
    out = tmp_path / "export.json"
    phalanx(data, "export", "--collection", "ics", "-o", str(out))

    results = validate_file(str(out), ValidationOptions(version="2.1"))
    errors = [e for r in results.object_results for e in r.errors]
    assert results.is_valid, errors[:10]

    exported = json.loads(out.read_text())
    original = json.loads(ICS.read_text())
    assert len(exported["objects"]) == len(original["objects"]) == 1826
    # The stix2 library parses every exported object, custom content included.
    for obj in exported["objects"]:
        parsed = stix2.parse(obj, allow_custom=True)
        assert parsed["id"] == obj["id"]


def test_objects_made_by_the_stix2_library_round_trip(tmp_path):
    identity = stix2.Identity(name="CERT-EX", identity_class="organization")
    indicator = stix2.Indicator(
        name="C2",
        pattern="[ipv4-addr:value = '198.51.100.7']",
        pattern_type="stix",
        created_by_ref=identity.id,
        object_marking_refs=[stix2.TLP_GREEN],
        custom_properties={"x_phalanx_note": "kept"},
    )
    malware = stix2.Malware(name="Dropper", is_family=False)
    rel = stix2.Relationship(indicator, "indicates", malware)
    addr = stix2.IPv4Address(value="198.51.100.7")
    bundle = stix2.Bundle(identity, indicator, malware, rel, addr, allow_custom=True)
    src = tmp_path / "bundle.json"
    src.write_text(bundle.serialize(pretty=True))

    data = tmp_path / "data"
    phalanx(data, "collection", "create", "c")
    res = phalanx(data, "--json", "import", "--collection", "c", str(src))
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert lines[-1]["summary"]["outcomes"] == {"accepted": 5}
    # phalanx recomputes SCO ids (UUIDv5 over RFC 8785 JSON) and warns on a mismatch:
    # no warning means it computes the same id as the stix2 library.
    addr_record = next(r for r in lines if r.get("id") == addr.id)
    assert "warnings" not in addr_record, addr_record

    res = phalanx(data, "export", "--collection", "c", "--format", "jsonl")
    back = {o["id"]: o for o in map(json.loads, res.stdout.splitlines())}
    assert back[indicator.id]["x_phalanx_note"] == "kept"
    for original in (identity, indicator, malware, rel, addr):
        assert back[original.id] == json.loads(original.serialize())


def test_validator_and_phalanx_agree_on_an_invalid_object(tmp_path):
    bad = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "created": "2026-01-01T00:00:00.000Z",
        "modified": "2025-01-01T00:00:00.000Z",
        "pattern": "[url:value = 'http://x.example/']",
        "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z",
    }
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(bad))
    assert not validate_file(str(f), ValidationOptions(version="2.1")).is_valid
    res = phalanx(tmp_path / "d", "validate", str(f), check=False)
    assert res.returncode == 1
    assert "$.modified" in res.stderr
