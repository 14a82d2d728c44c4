"""Interoperation of cvmforge's statements and DSSE envelopes with the reference Python libraries.

Usage: publish-interop.py WORKDIR CVMFORGE   (WORKDIR holds key.key, key.pub, provenance.intoto.json,
launch.intoto.json, provenance.dsse.json, launch.dsse.json made by cvmforge). Prints one line per check and
`N passed, N failed`; exits 1 on any failure or when nothing ran.
"""
import base64, json, os, subprocess, sys

from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, SSlibKey

work, cvmforge = sys.argv[1], sys.argv[2]
passed = failed = 0


def check(label, fn):
    global passed, failed
    try:
        detail = fn()
        passed += 1
        print(f"publish-interop: ok:   {label}{': ' + detail if detail else ''}")
    except Exception as e:  # a failed check, reported and counted
        failed += 1
        print(f"publish-interop: FAIL: {label}: {type(e).__name__}: {e}")


def path(name):
    return os.path.join(work, name)


public = SSlibKey.from_crypto(load_pem_public_key(open(path("key.pub"), "rb").read()))


def sslib_verifies(name):
    def run():
        env = Envelope.from_dict(json.load(open(path(name))))
        keys = env.verify([public], 1)
        assert public.keyid in keys, keys
        return f"key id {public.keyid}"
    return run


def statement_validates(name, predicate=None):
    def run():
        text = open(path(name)).read()
        pb = json_format.Parse(text, statement_pb2.Statement())
        Statement.copy_from_pb(pb).validate()
        if predicate is not None:
            json_format.ParseDict(json.loads(text)["predicate"], predicate())
        return json.loads(text)["predicateType"]
    return run


def tampered_is_refused():
    env = json.load(open(path("launch.dsse.json")))
    payload = json.loads(base64.b64decode(env["payload"]))
    payload["predicate"]["snp"] = []
    env["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    try:
        Envelope.from_dict(env).verify([public], 1)
    except Exception as e:
        return f"securesystemslib refuses it too ({type(e).__name__})"
    raise AssertionError("securesystemslib accepted a tampered envelope")


def ours_accepts_theirs():
    signer = CryptoSigner(load_pem_private_key(open(path("key.key"), "rb").read(), None))
    statement = open(path("launch.intoto.json"), "rb").read()
    env = Envelope(payload=statement, payload_type="application/vnd.in-toto+json", signatures={})
    env.sign(signer)
    theirs = path("sslib.dsse.json")
    with open(theirs, "w") as f:
        json.dump(env.to_dict(), f)
    out = subprocess.run([cvmforge, "--json", "verify-statement", theirs, "--key", path("key.pub")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads(statement), "the verified statement differs"
    return "cvmforge verify-statement accepts an envelope securesystemslib signed"


check("securesystemslib verifies cvmforge's provenance envelope", sslib_verifies("provenance.dsse.json"))
check("securesystemslib verifies cvmforge's launch envelope", sslib_verifies("launch.dsse.json"))
check("securesystemslib refuses cvmforge's envelope once its payload changed", tampered_is_refused)
check("in-toto-attestation validates the provenance statement and its SLSA v1 predicate",
      statement_validates("provenance.intoto.json", provenance_pb2.Provenance))
check("in-toto-attestation validates the launch statement", statement_validates("launch.intoto.json"))
check("cvmforge accepts securesystemslib's envelope", ours_accepts_theirs)


def schema_holds():
    import jsonschema

    schema = json.load(open(os.path.join(os.path.dirname(__file__), "..", "docs", "launch-predicate.schema.json")))
    predicate = json.load(open(path("launch.intoto.json")))["predicate"]
    jsonschema.validate(predicate, schema)
    return f"{len(predicate['snp'])} SNP and {len(predicate['tdx'])} TDX shapes"


check("the launch predicate validates against docs/launch-predicate.schema.json (jsonschema)", schema_holds)
print(f"publish-interop: {passed} passed, {failed} failed")
sys.exit(0 if failed == 0 and passed > 0 else 1)
