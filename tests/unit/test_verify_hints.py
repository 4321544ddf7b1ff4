"""The minified container's "file not found" errors in each runtime's own words (copied
from real runs: bash 5.2, dash, perl 5.36, python 3.11, node 18, OpenJDK 17, ruby 3.1):
each is a failing log line, and each leads to the image path it means."""

import io
import zipfile

import pytest

from minifier.image.imagefs import DEFAULT_CAPTURE, scan
from minifier.output.hints import find_loader_errors, include_hints
from tests.unit.fixtures import make_tar, member

PERL_INC = ("/etc/perl /usr/local/lib/x86_64-linux-gnu/perl/5.36.0 /usr/local/share/perl/5.36.0 "
            "/usr/lib/x86_64-linux-gnu/perl5/5.36 /usr/share/perl5 "
            "/usr/lib/x86_64-linux-gnu/perl-base /usr/lib/x86_64-linux-gnu/perl/5.36 "
            "/usr/share/perl/5.36 /usr/local/lib/site_perl")
LINES = {
    "bash": "/entrypoint.sh: line 5: gzip: command not found",
    "dash": "/entrypoint.sh: 6: ls: not found",
    "perl": "Can't locate JSON/PP.pm in @INC (you may need to install the JSON::PP module) "
            f"(@INC contains: {PERL_INC}) at /usr/local/bin/report line 3.",
    "python": "ModuleNotFoundError: No module named 'yaml'",
    "python-name": "ImportError: cannot import name 'etree' from 'lxml' "
                   "(/usr/lib/python3/dist-packages/lxml/__init__.py)",
    "node": "Error: Cannot find module 'express'",
    "java": 'Exception in thread "main" java.lang.NoClassDefFoundError: com/example/Greeter',
    "java-cause": "Caused by: java.lang.ClassNotFoundException: com.example.Greeter",
    "java-jar": "Error: Could not find or load main class org.util.Strings",
    "ruby": "<internal:/usr/lib/ruby/3.1.0/rubygems/core_ext/kernel_require.rb>:85:in "
            "`require': cannot load such file -- json/ext (LoadError)",
}
PY = "/usr/lib/python3/dist-packages"
HINTS = {
    "bash": ["/usr/bin/gzip"],
    "dash": ["/usr/bin/ls"],
    "perl": ["/usr/share/perl5/JSON/PP.pm"],
    "python": [f"{PY}/yaml"],
    "python-name": [f"{PY}/lxml/etree.cpython-311-x86_64-linux-gnu.so"],
    "node": ["/usr/src/app/node_modules/express"],
    "java": ["/opt/app/classes/com/example/Greeter.class"],
    "java-cause": ["/opt/app/classes/com/example/Greeter.class"],
    "java-jar": ["/opt/app/lib/util.jar"],
    "ruby": ["/usr/lib/ruby/3.1.0/json/ext.rb"],
}


def _jar(*names: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name in names:
            z.writestr(name, b"\xca\xfe\xba\xbe")
    return out.getvalue()


FILES = {
    "usr/bin/gzip": b"\x7fELF", "usr/bin/ls": b"\x7fELF", "usr/bin/dash": b"\x7fELF",
    "usr/share/perl5/JSON/PP.pm": b"package JSON::PP;",
    "usr/share/perl/5.36/strict.pm": b"package strict;",
    f"{PY[1:]}/yaml/__init__.py": b"", f"{PY[1:]}/yaml/composer.py": b"",
    f"{PY[1:]}/lxml/__init__.py": b"",
    f"{PY[1:]}/lxml/etree.cpython-311-x86_64-linux-gnu.so": b"\x7fELF",
    "usr/src/app/node_modules/express/package.json": b"{}",
    "usr/src/app/node_modules/express/index.js": b"",
    "usr/share/nodejs/depd/package.json": b"{}", "usr/share/nodejs/depd/index.js": b"",
    "usr/share/nodejs/iconv-lite/lib/index.js": b"",
    "usr/share/nodejs/iconv-lite/encodings/index.js": b"",
    "app/server.js": b"", "app/drivers/memory.js": b"", "app/drivers/file.js": b"",
    "opt/app/classes/com/example/Greeter.class": b"\xca\xfe\xba\xbe",
    "opt/app/classes/com/example/Main.class": b"\xca\xfe\xba\xbe",
    "opt/app/lib/util.jar": _jar("org/util/Strings.class"),
    "opt/app/lib/other.jar": _jar("org/other/Thing.class"),
    "usr/lib/ruby/3.1.0/json/ext.rb": b"", "usr/lib/ruby/3.1.0/json.rb": b"",
}
KEPT = {"/usr/bin/dash", f"{PY}/lxml/__init__.py", "/opt/app/classes/com/example/Main.class",
        "/usr/lib/ruby/3.1.0/json.rb"}


@pytest.fixture(scope="module")
def fs(tmp_path_factory):
    dirs = sorted({"/".join(p.split("/")[:i]) for p in FILES for i in range(1, p.count("/") + 1)})
    members = [member("bin", "symlink", link="usr/bin"), *(member(d, "dir") for d in dirs),
               *(member(p, data=data) for p, data in FILES.items())]
    tar = make_tar(tmp_path_factory.mktemp("img") / "i.tar", members)
    with open(tar, "rb") as f:
        # The jars' bytes readable, as the storage reader reads any file by path.
        return scan(f, capture=(*DEFAULT_CAPTURE, "*.jar"))


@pytest.mark.parametrize("runtime", sorted(LINES))
def test_each_runtimes_missing_file_error_fails_verification(runtime):
    line = LINES[runtime]
    assert find_loader_errors(f"started\n{line}\nstill serving") == [line]
    assert find_loader_errors(line, original_logs=line) == []  # the original said it too


@pytest.mark.parametrize("runtime", sorted(LINES))
def test_each_error_is_hinted_by_the_image_path_it_means(fs, runtime):
    assert include_hints([LINES[runtime]], fs, KEPT) == HINTS[runtime]


def test_kept_files_and_unknown_names_give_no_hint(fs):
    kept = KEPT | {"/usr/bin/gzip", f"{PY}/yaml/__init__.py"}
    lines = [LINES["bash"], LINES["python"], "sh: 1: nosuchtool: not found",
             "ModuleNotFoundError: No module named 'nosuchmodule'",
             "Can't locate Nope.pm in @INC (@INC contains: /usr/share/perl5) at x line 1."]
    assert include_hints(lines, fs, kept) == []


def test_node_modules_of_debian_s_global_directory_and_relative_ones(fs):
    """qa/express (Debian's nodejs): iconv-lite, in /usr/share/nodejs, loads its
    encodings lazily by a relative name; the app loads a driver named by an env var."""
    lines = ["Error: Cannot find module 'depd'",
             "Error: Cannot find module '../encodings'",
             "Require stack:",
             "- /usr/share/nodejs/iconv-lite/lib/index.js",
             "- /usr/share/nodejs/body-parser/lib/read.js",
             "Error: Cannot find module './drivers/file'",
             "Require stack:",
             "- /app/server.js",
             "Error: Cannot find module './nowhere'",  # no stack follows: nothing to hint
             ]
    ran = {"/usr/share/nodejs/iconv-lite/lib/index.js", "/app/server.js"}  # kept: they ran
    assert include_hints(lines, fs, KEPT | ran) == [
        "/usr/share/nodejs/depd", "/usr/share/nodejs/iconv-lite/encodings",
        "/app/drivers/file.js"]


def test_a_class_named_twice_is_hinted_once(fs):
    assert include_hints([LINES["java"], LINES["java-cause"]], fs, KEPT) == HINTS["java"]


def test_a_jar_that_cannot_be_read_gives_no_hint(tmp_path):
    """Through the export stream (no reading by path) a jar's contents are unknown: no
    guess is made."""
    tar = make_tar(tmp_path / "i.tar", [member("opt", "dir"), member("opt/util.jar",
                                                                   data=_jar("a/B.class"))])
    with open(tar, "rb") as f:
        fs = scan(f)
    assert include_hints(["Error: Could not find or load main class a.B"], fs, set()) == []
