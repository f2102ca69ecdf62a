"""The documentation: the site builds with warnings as errors, and every code block of
README.md and docs/ is checked.

Every ``python`` block compiles, and its imports of the app resolve through its public
import paths only (other installed libraries' imports and dotted strings resolve too).
Every ``manage.py <command>`` of a shell block exists, and the options given to the
app's commands are options their parser accepts. Blocks marked with an HTML comment on
the line before the fence also run (the markers are described in docs/contributing.md):

    <!-- test: run -->        executed in a database test with the simulated Cronofy
    <!-- test: settings -->   executed as a fragment of settings.py, then checked
    <!-- test: urls -->       executed as a urls.py, then reversed
    <!-- test: demo -->       a bash block run against ``manage.py demo``
    <!-- test: in FILE -->    a test that FILE holds verbatim (and so runs)

``id=NAME`` in a marker adds the check ``CHECKS[NAME]`` after the block ran.
"""

from __future__ import annotations

import ast
import copy
import gc
import os
import re
import shlex
import shutil
import subprocess
import sys
import types
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.core import mail
from django.core.checks import run_checks
from django.core.management import find_commands, get_commands, load_command_class
from django.core.management.base import CommandError
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string

from django_cronofy_conferencing.conf import DEFAULTS, app_settings
from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.sync import sync_account
from django_cronofy_conferencing.testing import SimulatedCronofy, simulated_cronofy
from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
DOC_FILES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
README_MAX_LINES = 400

PACKAGE = "django_cronofy_conferencing"
#: The import paths the documentation may use (DESIGN.md: they stay whatever moves).
PUBLIC_MODULES = frozenset(
    f"{PACKAGE}.{name}"
    for name in (
        "models",
        "signals",
        "exceptions",
        "sync",
        "choices",
        "forms",
        "linking",
        "testing",
        "urls",
        "api.urls",
        "api.fields",
        "tasks",
        "conf",
    )
)
#: The app's commands whose options the shell blocks' command lines must pass.
APP_COMMANDS = (
    "cronofy_sync",
    "cronofy_link",
    "cronofy_rotate_keys",
    "cronofy_channels",
    "cronofy_simulator",
)
MARKERS = ("run", "settings", "urls", "demo", "in")
SHELL_LANGS = ("bash", "sh", "shell", "console")


# -- reading the blocks -------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A fenced code block of a Markdown file, with its ``<!-- test: ... -->`` marker."""

    path: Path
    line: int  # the opening fence's line, 1-based
    lang: str
    code: str
    marker: str = ""  # one of MARKERS, or "" (compiled and import-checked only)
    argument: str = ""  # what follows the marker's kind (the file of "in")
    check: str = ""  # the id=NAME of the marker

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    def at(self, code_line: int) -> str:
        """``file:line`` of the block's ``code_line`` (1-based)."""
        return f"{self.path.relative_to(ROOT)}:{self.line + code_line}"


_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
_COMMENT = re.compile(r"^\s*<!--.*-->\s*$")
_MARKER = re.compile(r"^\s*<!--\s*test:\s*(?P<body>.*?)\s*-->\s*$")


def _dedent(line: str, indent: str) -> str:
    return line[len(indent) :] if line.startswith(indent) else line.lstrip()


def read_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        closing = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = i + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        code = "\n".join(_dedent(line, indent) for line in lines[i + 1 : end]) + "\n"
        markers = []
        above = i - 1
        while above >= 0 and _COMMENT.match(lines[above]):
            found = _MARKER.match(lines[above])
            if found:
                markers.append(found["body"])
            above -= 1
        assert len(markers) <= 1, f"{path.relative_to(ROOT)}:{i + 1}: more than one marker"
        kind, argument, check = "", "", ""
        if markers:
            words = markers[0].split()
            kind = words[0] if words else "?"
            rest = []
            for word in words[1:]:
                if word.startswith("id="):
                    check = word[3:]
                else:
                    rest.append(word)
            argument = " ".join(rest)
        blocks.append(Block(path, i + 1, opening["lang"], code, kind, argument, check))
        i = end + 1
    return blocks


BLOCKS = [block for path in DOC_FILES for block in read_blocks(path)]
PYTHON = [block for block in BLOCKS if block.lang == "python"]
SHELL = [block for block in BLOCKS if block.lang in SHELL_LANGS]


def blocks(marker: str, lang: str | None = None) -> list[Any]:
    found = [b for b in BLOCKS if b.marker == marker and (lang is None or b.lang == lang)]
    return [pytest.param(b, id=b.where) for b in found]


def params(found: list[Block]) -> list[Any]:
    return [pytest.param(b, id=b.where) for b in found]


# -- the site ------------------------------------------------------------------------


def test_site_builds_with_warnings_as_errors(tmp_path):
    require_service(
        find_spec("mkdocs") is not None and find_spec("material") is not None,
        "mkdocs and mkdocs-material are not installed: pip install -e '.[docs]'",
    )
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for page in DOCS.rglob("*.md"):
        relative = page.relative_to(DOCS).with_suffix("")
        built = site / "index.html" if relative.name == "index" else site / relative / "index.html"
        assert built.is_file(), f"{page.relative_to(ROOT)} was not built"
    assert (site / "screenshot.png").is_file()


def _slug(heading: str) -> str:
    """Python-Markdown's toc slug (what mkdocs makes an anchor of), for a plain heading."""
    text = re.sub(r"[`*_]{1,2}(?=\S)|(?<=\S)[`*_]{1,2}", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
    return {_slug(m[1]) for m in re.finditer(r"^#{1,6}\s+(.*?)\s*#*\s*$", text, re.M)}


def test_readme_is_the_front_page():
    readme = (ROOT / "README.md").read_text()
    lines = readme.count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move content into docs/"
    assert "](docs/screenshot.png)" in readme
    # .ci/run reads the test command from the block after this line.
    assert re.search(
        r"^<!-- ci: test command \(\.ci/run runs the block below verbatim; keep this line\) -->\n"
        r"```bash\n[^`]+\n```$",
        readme,
        re.M,
    )
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#([^)\s]+))?\)", readme)
    assert links, "the README links into the documentation"
    for target, anchor in links:
        assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"
        if anchor:
            assert anchor in _anchors(ROOT / target), f"README.md: no #{anchor} in {target}"


def test_every_marker_is_known():
    for block in BLOCKS:
        if not block.marker:
            continue
        assert block.marker in MARKERS, f"{block.where}: unknown marker {block.marker!r}"
        if block.marker in ("run", "settings", "urls", "in"):
            assert block.lang == "python", f"{block.where}: {block.marker} is for python blocks"
        if block.marker == "demo":
            assert block.lang == "bash", f"{block.where}: demo is for bash blocks"
        if block.check:
            assert block.check in CHECKS, f"{block.where}: no check named {block.check!r}"
    used = {block.check for block in BLOCKS if block.check}
    assert used == set(CHECKS), f"checks that no block names: {set(CHECKS) - used}"


def test_most_python_blocks_run():
    ran = [b for b in PYTHON if b.marker]
    assert len(ran) * 4 >= len(PYTHON) * 3, (
        f"only {len(ran)} of {len(PYTHON)} python blocks run: mark more "
        "(unmarked: " + ", ".join(b.where for b in PYTHON if not b.marker) + ")"
    )


# -- every python block: compiles, imports resolve ----------------------------------


def _resolve_module(name: str, where: str, problems: list[str]) -> types.ModuleType | None:
    top = name.split(".")[0]
    if top == PACKAGE and name != PACKAGE and name not in PUBLIC_MODULES:
        problems.append(f"{where}: {name} is not a public import path of the app")
        return None
    if top != PACKAGE and find_spec(top) is None:
        return None  # a library this environment does not have (or a placeholder)
    try:
        return import_module(name)
    except ImportError as exc:
        problems.append(f"{where}: import {name}: {exc}")
        return None


def _resolve_name(module: types.ModuleType, name: str, where: str, problems: list[str]):
    if hasattr(module, name):
        return
    submodule = f"{module.__name__}.{name}"
    if module.__name__ == PACKAGE and submodule not in PUBLIC_MODULES:
        problems.append(f"{where}: {submodule} is not a public import path of the app")
        return
    try:
        import_module(submodule)
    except ImportError:
        problems.append(f"{where}: {module.__name__} has no {name!r}")


_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


def _resolve_dotted(value: str, where: str, problems: list[str]) -> None:
    top = value.split(".")[0]
    if top != PACKAGE and (top == "example" or find_spec(top) is None):
        return
    if top == PACKAGE and not any(
        value == public or value.startswith(public + ".") for public in PUBLIC_MODULES
    ):
        problems.append(f"{where}: {value!r} is not under a public import path of the app")
        return
    try:
        import_module(value)
    except ImportError:
        try:
            import_string(value)
        except ImportError as exc:
            problems.append(f"{where}: {value!r} does not import: {exc}")


def import_problems(block: Block) -> list[str]:
    tree = ast.parse(block.code, block.where)
    problems: list[str] = []
    for node in ast.walk(tree):
        where = block.at(getattr(node, "lineno", 0))
        if isinstance(node, ast.Import):
            for alias in node.names:
                _resolve_module(alias.name, where, problems)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                problems.append(f"{where}: a relative import")
                continue
            module = _resolve_module(node.module or "", where, problems)
            if module is not None:
                for alias in node.names:
                    _resolve_name(module, alias.name, where, problems)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _DOTTED.match(node.value)
        ):
            _resolve_dotted(node.value, where, problems)
    return problems


@pytest.mark.parametrize("block", params(PYTHON))
def test_python_block_compiles_and_its_imports_resolve(block):
    compile(block.code, block.where, "exec")
    problems = import_problems(block)
    assert not problems, "\n".join(problems)


def test_the_import_check_catches_a_stale_import():
    stale = Block(
        ROOT / "README.md", 10, "python", "from django_cronofy_conferencing import oauth\n"
    )
    internal = Block(
        ROOT / "README.md", 20, "python", "from django_cronofy_conferencing.client import x\n"
    )
    missing = Block(
        ROOT / "README.md", 30, "python", "from django_cronofy_conferencing.sync import nope\n"
    )
    assert import_problems(stale) == [
        "README.md:11: django_cronofy_conferencing.oauth is not a public import path of the app"
    ]
    assert "not a public import path" in import_problems(internal)[0]
    assert import_problems(missing) == [
        "README.md:31: django_cronofy_conferencing.sync has no 'nope'"
    ]


# -- runnable python blocks ---------------------------------------------------------


@dataclass
class DocsContext:
    """What a ``<!-- test: run -->`` block finds defined, and what its check may use."""

    sim: SimulatedCronofy
    sim_account: Any
    user: Any
    account: LinkedAccount
    request: Any
    zoom_id: str
    go_to_id: str
    calendar_id: str
    fixtures: Callable[[str], Any]
    names: dict[str, Any] = field(default_factory=dict)

    def namespace(self) -> dict[str, Any]:
        return {
            "__name__": "docs_example",
            "sim": self.sim,
            "user": self.user,
            "account": self.account,
            "request": self.request,
        }


@pytest.fixture
def docs_context(db, django_user_model, rf, request):
    """alice, linked and synced: a connected Zoom, a disconnected GoTo, and a Google
    calendar profile whose calendar has integrated conferencing."""
    with simulated_cronofy() as sim:
        zoom = sim.profile("zoom", profile_name="alice@example.com")
        go_to = sim.profile("go_to", profile_name="alice@example.com", connected=False)
        work = sim.calendar("Work", primary=True, integrated=True)
        sim_account = sim.add_account(
            data_center=app_settings.DEFAULT_DATA_CENTER,
            email="alice@example.com",
            conferencing_profiles=[zoom, go_to],
            calendar_profiles=[
                sim.calendar_profile("google", profile_name="alice@example.com", calendars=[work])
            ],
        )
        user = django_user_model.objects.create_user("alice", "alice@example.com", "pw")
        account = LinkedAccount.objects.create(
            user=user,
            data_center=sim_account.data_center,
            sub=sim_account.sub,
            access_token=sim_account.access_token,
            refresh_token=sim_account.refresh_token,
            token_expires_at=timezone.now() + timedelta(hours=1),
        )
        sync_account(account)
        post = rf.post(
            "/book/",
            {
                "conferencing": f"{account.pk}:{zoom['profile_id']}",
                "calendar_id": work["calendar_id"],
            },
        )
        post.user = user
        yield DocsContext(
            sim=sim,
            sim_account=sim_account,
            user=user,
            account=account,
            request=post,
            zoom_id=zoom["profile_id"],
            go_to_id=go_to["profile_id"],
            calendar_id=work["calendar_id"],
            fixtures=request.getfixturevalue,
        )


def _exec(block: Block, namespace: dict[str, Any]) -> None:
    exec(compile(block.code, block.where, "exec"), namespace)  # the docs' own code


@pytest.mark.parametrize("block", blocks("run"))
def test_run_block(block, docs_context):
    namespace = docs_context.namespace()
    try:
        _exec(block, namespace)
        if block.check:
            CHECKS[block.check](namespace, docs_context)
    finally:
        # Drop what the block defined (signal receivers are weak references: they go too).
        namespace.clear()
        gc.collect()


# -- settings blocks ------------------------------------------------------------------


class FakeEnviron(dict):
    """``os.environ`` for a settings fragment: every variable is set to a plausible value."""

    def __missing__(self, key: str) -> str:
        value = Fernet.generate_key().decode() if "KEY" in key else f"docs-{key.lower()}"
        self[key] = value
        return value

    def get(self, key, default=None):
        return self[key]


#: Settings a fragment may change that the app's checks read.
CHECKED_SETTINGS = ("CACHES", "TASKS", "REST_FRAMEWORK")


def settings_problems(block: Block, namespace: dict[str, Any], seed: dict[str, Any]) -> list:
    problems = []
    for app in namespace.get("INSTALLED_APPS", []):
        if find_spec(app.split(".")[0]) is None or find_spec(app) is None:
            problems.append(f"{block.where}: INSTALLED_APPS names {app!r}, which does not import")
    conf = namespace.get("CRONOFY_CONFERENCING")
    overrides: dict[str, Any] = {}
    if conf != seed["CRONOFY_CONFERENCING"]:
        assert isinstance(conf, dict), f"{block.where}: CRONOFY_CONFERENCING is not a dict"
        unknown = sorted(set(conf) - set(DEFAULTS))
        if unknown:
            problems.append(f"{block.where}: not settings of the app: {', '.join(unknown)}")
        # A fragment ("# ... your other keys ...") goes with the project's credentials.
        base = {key: seed["CRONOFY_CONFERENCING"][key] for key in ("CLIENT_ID", "CLIENT_SECRET")}
        overrides["CRONOFY_CONFERENCING"] = {**base, **conf}
    for name in CHECKED_SETTINGS:
        if name in namespace:
            overrides[name] = namespace[name]
    with override_settings(**overrides):
        for message in run_checks():
            if (message.id or "").startswith("cronofy_conferencing.") and message.is_serious():
                problems.append(f"{block.where}: {message.id}: {message.msg}")
    return problems


@pytest.mark.parametrize("block", blocks("settings"))
def test_settings_block(block, monkeypatch, request):
    seed = {
        "INSTALLED_APPS": list(django_settings.INSTALLED_APPS),
        "SECRET_KEY": django_settings.SECRET_KEY,
        "CRONOFY_CONFERENCING": copy.deepcopy(django_settings.CRONOFY_CONFERENCING),
    }
    namespace = {"__name__": "docs_settings", **copy.deepcopy(seed)}
    with monkeypatch.context() as patch:
        patch.setattr(os, "environ", FakeEnviron())
        _exec(block, namespace)
    problems = settings_problems(block, namespace, seed)
    assert not problems, "\n".join(problems)
    if block.check:
        CHECKS[block.check](namespace, request.getfixturevalue)


# -- urls blocks -----------------------------------------------------------------------


@pytest.mark.parametrize("block", blocks("urls"))
def test_urls_block(block, settings):
    name = "docs_urls_" + re.sub(r"\W", "_", block.where)
    module = types.ModuleType(name)
    _exec(block, module.__dict__)
    sys.modules[name] = module
    try:
        settings.ROOT_URLCONF = name
        namespaces = {getattr(p, "namespace", None) for p in module.urlpatterns}
        assert namespaces & {"cronofy_conferencing", "cronofy_conferencing_api"}, block.where
        if "cronofy_conferencing" in namespaces:
            for url_name in ("profiles", "connect", "callback", "notifications"):
                assert reverse(f"cronofy_conferencing:{url_name}")
        if "cronofy_conferencing_api" in namespaces:
            assert reverse("cronofy_conferencing_api:account-list")
            assert reverse("cronofy_conferencing_api:conferencing-profile-list")
    finally:
        del sys.modules[name]


# -- blocks run by another test --------------------------------------------------------


@pytest.mark.parametrize("block", blocks("in"))
def test_block_is_the_code_of_its_test(block):
    test_file = ROOT / block.argument
    assert test_file.is_file(), f"{block.where}: no {block.argument}"
    assert block.code.rstrip() in test_file.read_text(), (
        f"{block.where}: {block.argument} does not hold this code verbatim"
    )


# -- shell blocks ----------------------------------------------------------------------


def known_commands() -> set[str]:
    commands = set(get_commands())
    commands.update(find_commands(str(ROOT / "example_project" / "demo_site" / "management")))
    return commands


def manage_py_calls(block: Block) -> list[tuple[str, str, list[str]]]:
    """``(where, command, args)`` of every ``manage.py`` command line of a shell block."""
    calls = []
    text = block.code.replace("\\\n", " ")
    for number, line in enumerate(text.splitlines(), start=1):
        line = re.sub(r"^\$\s+", "", line)  # a console prompt
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>()")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError:
            continue
        for index, token in enumerate(tokens[:-1]):
            if token.endswith("manage.py"):
                args = []
                for arg in tokens[index + 2 :]:
                    if set(arg) <= set(";&|<>()"):
                        break
                    args.append(arg)
                calls.append((block.at(number), tokens[index + 1], args))
    return calls


@pytest.mark.parametrize("block", params(SHELL))
def test_shell_block_names_real_commands_and_options(block):
    known = known_commands()
    problems = []
    for where, command, args in manage_py_calls(block):
        if command not in known:
            problems.append(f"{where}: manage.py {command}: no such command")
            continue
        if command in APP_COMMANDS:
            parser = load_command_class(PACKAGE, command).create_parser("manage.py", command)
            try:
                parser.parse_args(args)
            except (CommandError, SystemExit) as exc:
                problems.append(f"{where}: manage.py {command} {shlex.join(args)}: {exc}")
    assert not problems, "\n".join(problems)


def test_the_shell_check_catches_an_unknown_option():
    block = Block(
        ROOT / "README.md",
        1,
        "bash",
        "python manage.py cronofy_sync --all \\\n    --fleet-http aiohttp  # gone\n"
        "X=1 python manage.py cronofy_sync --dry-run | tee out\n",
    )
    calls = manage_py_calls(block)
    assert calls == [
        ("README.md:2", "cronofy_sync", ["--all", "--fleet-http", "aiohttp"]),
        ("README.md:3", "cronofy_sync", ["--dry-run"]),
    ]
    with pytest.raises(AssertionError, match="unrecognized arguments: --fleet-http"):
        test_shell_block_names_real_commands_and_options(block)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from tests.example_project.demo_server import start_demo

    server = start_demo(tmp_path_factory.mktemp("docs-demo"))
    yield server
    server.stop()


@pytest.mark.parametrize("block", blocks("demo", "bash"))
def test_demo_block(block, request):
    require_service(shutil.which("curl") is not None, "curl is not installed")
    demo = request.getfixturevalue("demo")
    code = re.sub(r"^SITE=.*$", f"SITE={shlex.quote(demo.url)}", block.code, flags=re.M)
    code = re.sub(r"^PASSWORD=.*$", f"PASSWORD={shlex.quote(demo.password)}", code, flags=re.M)
    assert demo.url in code and demo.password in code, f"{block.where}: set SITE= and PASSWORD="
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{block.where}:\n{result.stdout}\n{result.stderr}"
    # The demo account's disconnected GoTo, its accounts, a sync's counts, an authorization URL.
    assert '"provider_name":"go_to"' in result.stdout, result.stdout
    assert '"profile_connected":false' in result.stdout, result.stdout
    assert '"unchanged":' in result.stdout, result.stdout
    assert '"url":"http' in result.stdout, result.stdout


# -- checks named by id=... ------------------------------------------------------------


def check_relink_mail(namespace: dict[str, Any], context: DocsContext) -> None:
    """The receiver mails the user when a profile disconnects, with its relink URL."""
    sim, sub = context.sim, context.sim_account.sub
    sim.set_connected(sub, context.zoom_id, False)
    mail.outbox.clear()
    with context.fixtures("django_capture_on_commit_callbacks")(execute=True):
        sync_account(context.account)
    assert len(mail.outbox) == 1
    zoom = context.account.conferencing_profiles.get(profile_id=context.zoom_id)
    assert mail.outbox[0].to == ["alice@example.com"]
    assert zoom.profile_relink_url in mail.outbox[0].body


def check_choices(namespace: dict[str, Any], context: DocsContext) -> None:
    values = [choice.value for choice in namespace["choices"].available]
    assert values == [context.zoom_id, "integrated", "default"]
    assert [p.profile_id for p in namespace["choices"].unavailable] == [context.go_to_id]
    assert namespace["event"]["conferencing"] == {"profile_id": context.zoom_id}


def check_booking_form(namespace: dict[str, Any], context: DocsContext) -> None:
    assert namespace["event"]["conferencing"] == {"profile_id": context.zoom_id}
    # GoTo is disconnected: refused, with the link that fixes it.
    form = namespace["BookingForm"](
        {"conferencing": f"{context.account.pk}:{context.go_to_id}"}, user=context.user
    )
    assert not form.is_valid()
    assert form.fields["conferencing"].unavailable_error.relink_url.startswith("https://")


def check_booking_serializer(namespace: dict[str, Any], context: DocsContext) -> None:
    assert namespace["conferencing"] == {"profile_id": context.zoom_id}
    serializer = namespace["BookingSerializer"](
        data={"calendar_id": context.calendar_id, "conferencing": f"{context.account.pk}:x"},
        context={"request": context.request},
    )
    assert not serializer.is_valid()


def check_unlink_on_user_delete(namespace: dict[str, Any], context: DocsContext) -> None:
    """Deleting the user revokes the grant at Cronofy and deletes the account."""
    revokes = context.sim.count("revoke")
    context.user.delete()
    assert context.sim.count("revoke") == revokes + 1
    assert not LinkedAccount.objects.filter(pk=context.account.pk).exists()


def check_derived_key(namespace: dict[str, Any], fixtures: Callable[[str], Any]) -> None:
    """A token stored while ENCRYPTION_KEYS was unset reads back with DERIVED_KEY listed."""
    fixtures("db")
    conf = django_settings.CRONOFY_CONFERENCING
    with override_settings(CRONOFY_CONFERENCING={**conf, "ENCRYPTION_KEYS": None}):
        account = LinkedAccount.objects.create(data_center="us", sub="acc_docs", access_token="t")
    new_key = Fernet.generate_key().decode()
    keys = [new_key, namespace["DERIVED_KEY"]]
    with override_settings(CRONOFY_CONFERENCING={**conf, "ENCRYPTION_KEYS": keys}):
        assert LinkedAccount.objects.get(pk=account.pk).access_token == "t"


CHECKS: dict[str, Callable[..., None]] = {
    "relink-mail": check_relink_mail,
    "choices": check_choices,
    "booking-form": check_booking_form,
    "booking-serializer": check_booking_serializer,
    "unlink-on-user-delete": check_unlink_on_user_delete,
    "derived-key": check_derived_key,
}
