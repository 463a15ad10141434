"""The sandbox as a supplier and a pharmacy meet it outside the program (issue 17, items 4 and 6).

* `csos-desk verify FILE --trust roots.pem` finds the sandbox's CRLs on its own: they are published over plain http,
  like every CA's distribution point, so no TLS root for the sandbox is needed (and no `--crl`).
* `csos-desk sandbox` started twice keeps its ports (portal, CRLs, SNTP), and its banner reaches a pipe at once.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import requests
from cryptography import x509

from app.models.values import PackageUnit
from app.services.signing.cms import sign_content
from app.services.signing.x12 import OrderLine850
from tests.integration.conftest import PHARMACY
from tests.integration.test_sandbox_portal import SIGNED_REQUEST, signed_request
from tests.integration.test_verifier import make_order, x12
from tests.signers import KeySigner

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ["--catalog", str(ROOT / "resources/catalog/product.txt"),
           "--packages", str(ROOT / "resources/catalog/package.txt")]


def _cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSOS_")}
    env.update(CSOS_DATA_DIR=str(data_dir), CSOS_PROFILE="training")
    done = subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)
    assert "Traceback" not in done.stderr
    return done


def _signed_order(sandbox_client, tmp_path: Path) -> tuple[Path, object]:
    enrolled = sandbox_client.enroll(PHARMACY, full_name="Vera Verify")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    lines = (OrderLine850(1, 2, "00406055201", "Oxycodone Hydrochloride 5 mg", 100, PackageUnit.EACH),
             OrderLine850(2, 1, "00009005501", "Xanax 0.5 mg", 100, PackageUnit.EACH))  # both in the sample catalog
    data = sign_content(x12(make_order(now, lines=lines), now), signer=KeySigner(enrolled.key), certificate_der=enrolled.der,
                        intermediates_der=enrolled.intermediates_der, signing_time=now)
    path = tmp_path / "order.csos"
    path.write_bytes(data)
    return path, enrolled


def test_verify_in_training_fetches_the_sandbox_crls_without_crl_option(sandbox, sandbox_client, tmp_path):
    order, enrolled = _signed_order(sandbox_client, tmp_path)
    point = enrolled.certificate.extensions.get_extension_for_class(
        x509.CRLDistributionPoints).value[0].full_name[0].value
    assert point.startswith("http://") and point == sandbox.crl_urls["sub"]
    done = _cli("verify", str(order), "--trust", str(sandbox.trust_bundle), *CATALOG, "--json",
                data_dir=tmp_path / "data")
    verdict = json.loads(done.stdout)
    assert "revocation_unknown" not in [r["code"] for r in verdict["reasons"]], verdict["reasons"]
    assert verdict["accepted"] is True and done.returncode == 0, verdict["reasons"]

    # And a revocation is seen the same way: the sandbox publishes the new CRL at once, fetched over http.
    revoked = sandbox_client.post("/revocations", data=signed_request(enrolled, {
        "type": "revocation_request", "certificate_serial": enrolled.serial, "reason": "key_compromise"}),
        headers=SIGNED_REQUEST)
    assert revoked.status_code == 200, revoked.text
    done = _cli("verify", str(order), "--trust", str(sandbox.trust_bundle), *CATALOG, "--json",
                data_dir=tmp_path / "data")
    assert done.returncode == 1 and "certificate_revoked" in [r["code"] for r in json.loads(done.stdout)["reasons"]]


def _start(directory: Path, data_dir: Path) -> tuple[subprocess.Popen, dict[str, int], list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSOS_")}
    env.update(CSOS_DATA_DIR=str(data_dir))
    env.pop("PYTHONUNBUFFERED", None)  # stdout to a pipe is block-buffered: only flush=True shows the banner
    process = subprocess.Popen([sys.executable, "-m", "app", "sandbox", "--dir", str(directory)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: list[str] = []
    buffer = b""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not any("folder:" in line for line in lines):
        ready, _, _ = select.select([process.stdout], [], [], 1)
        if not ready:
            if process.poll() is not None:
                break
            continue
        chunk = os.read(process.stdout.fileno(), 65536)
        if not chunk:
            break
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        lines += [line.decode() for line in complete]
    if not any("folder:" in line for line in lines):
        process.kill()
        _, err = process.communicate(timeout=30)
        raise AssertionError(f"no banner on the pipe while the sandbox runs: {lines!r} {err.decode()[-2000:]}")
    text = "\n".join(lines)
    ports = {"portal": int(re.search(r"portal / CA:\s+https://127\.0\.0\.1:(\d+)/", text).group(1)),
             "crl": int(re.search(r"CRLs \(http\):\s+http://127\.0\.0\.1:(\d+)/crl/root\.crl", text).group(1)),
             "sntp": int(re.search(r"SNTP \(clock\):\s+127\.0\.0\.1:(\d+)", text).group(1))}
    return process, ports, lines


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


def test_standalone_sandbox_keeps_its_ports_and_its_banner_reaches_a_pipe(tmp_path):
    directory, data_dir = tmp_path / "sandbox", tmp_path / "data"
    first, ports, _ = _start(directory, data_dir)
    try:
        crl = requests.get(f"http://127.0.0.1:{ports['crl']}/crl/sub.crl", timeout=30)
        assert crl.status_code == 200 and crl.headers["Content-Type"] == "application/pkix-crl"
    finally:
        _stop(first)
    saved = json.loads((directory / "sandbox.json").read_text("utf-8"))
    assert (saved["port"], saved["crl_port"], saved["sntp_port"]) == (ports["portal"], ports["crl"], ports["sntp"])
    second, again, _ = _start(directory, data_dir)
    try:
        assert again == ports
        status = _cli("sandbox", "--dir", str(directory), "status", data_dir=data_dir).stdout
        assert f"http://127.0.0.1:{ports['crl']}/crl/root.crl" in status and f"127.0.0.1:{ports['sntp']}" in status
        assert requests.get(f"http://127.0.0.1:{again['crl']}/crl/root.crl", timeout=30).status_code == 200
    finally:
        _stop(second)
