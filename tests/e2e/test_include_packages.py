"""--include-packages, end to end, on the Flask sample: each package the app loaded a
file from is kept whole (Werkzeug's debugger assets, which this app never loads, too),
the rest of the image is not, and the image still verifies."""

from __future__ import annotations

import json

import pytest

from .conftest import SANDBOX
from .helpers import minify

pytestmark = pytest.mark.e2e

TAG = "minify-test/python-packages.min:e2e"
DIST = "/usr/lib/python3/dist-packages"


@pytest.fixture(scope="module")
def built(client, tmp_path_factory):
    report_file = tmp_path_factory.mktemp("packages") / "report.json"
    run = minify("build", SANDBOX["python"], "--tag", TAG, "--include-packages",
                 "--no-http-probe-crawl", "--report-file", str(report_file))
    yield run, json.loads(report_file.read_text()) if report_file.exists() else {}
    client.images.remove(TAG, force=True)


def test_each_loaded_package_is_kept_whole(built):
    run, report = built
    assert run.code == 0, run.stderr
    assert report["verify"]["status"] == "passed"
    kept = {k["path"]: k["reasons"] for k in report["kept"]}
    assert kept[f"{DIST}/werkzeug/debug/shared/console.png"] == ["package"]
    assert "accessed" in kept[f"{DIST}/flask/app.py"]
    packages = {p.split("/")[5] for p, reasons in kept.items()
                if reasons == ["package"] and p.startswith(DIST + "/")}
    assert {"flask", "werkzeug", "jinja2"} <= packages
    # The standard library is no package of a distribution: only what was loaded.
    assert "/usr/lib/python3.11/turtle.py" not in kept
