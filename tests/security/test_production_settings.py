"""Production settings: ``manage.py check --deploy`` is clean with a production environment, the
development secret key is refused outside debug mode, HTTPS is enforced by default there, and
secrets come from the environment only."""

import ast
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SETTINGS = REPO / "procurement_system" / "settings.py"


def production_env(tmp_path, **extra: str) -> dict[str, str]:
    """The process environment without any DJANGO_ or WEBSOCKET_ variable of the caller's, plus
    a production configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WEBSOCKET_", "CI"))}
    env.update(
        DJANGO_SETTINGS_MODULE="procurement_system.settings",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="pickups.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def settings_in(env: dict[str, str], *names: str) -> dict:
    script = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n) for n in {list(names)!r}}}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


SECURE = (
    "DEBUG",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_PROXY_SSL_HEADER",
)


def test_check_deploy_is_clean_with_a_production_environment(tmp_path):
    done = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_production_defaults_are_https_only(tmp_path):
    values = settings_in(production_env(tmp_path), *SECURE)
    assert values == {
        "DEBUG": False,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_PROXY_SSL_HEADER": None,  # X-Forwarded-Proto is trusted only when told to
    }


def test_behind_a_tls_proxy_the_forwarded_scheme_is_trusted(tmp_path):
    env = production_env(tmp_path, DJANGO_BEHIND_TLS_PROXY="true")
    assert settings_in(env, "SECURE_PROXY_SSL_HEADER") == {
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"]
    }


def test_each_switch_can_be_turned_off(tmp_path):
    env = production_env(
        tmp_path,
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_SECURE_HSTS_SECONDS="0",
        DJANGO_SESSION_COOKIE_SECURE="false",
        DJANGO_CSRF_COOKIE_SECURE="false",
    )
    values = settings_in(env, *SECURE)
    off = set(SECURE) - {"SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD"}  # moot at 0
    assert not any(values[name] for name in off), values


def test_make_run_is_plain_http_debug(tmp_path):
    env = production_env(tmp_path, DJANGO_DEBUG=None, DJANGO_SECRET_KEY=None)
    values = settings_in(env, *SECURE, "SECRET_KEY")
    assert values.pop("SECRET_KEY").startswith("django-insecure-")
    assert values == dict.fromkeys(SECURE, False) | {
        "DEBUG": True,
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_PROXY_SSL_HEADER": None,
    }
    assert manage(env, "check").returncode == 0


@pytest.mark.parametrize(
    "key",
    [None, "django-insecure-development-key-only-for-make-run-never-in-production"],
)
def test_production_refuses_the_development_secret_key(tmp_path, key):
    env = production_env(tmp_path, DJANGO_SECRET_KEY=key)
    done = manage(env, "check", "--deploy")
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert "DJANGO_SECRET_KEY" in done.stderr


def test_check_deploy_fails_on_a_weak_key(tmp_path):
    done = manage(
        production_env(tmp_path, DJANGO_SECRET_KEY="too-short"),
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert done.returncode != 0
    assert "security.W009" in done.stderr


def test_https_is_enforced_but_health_checks_stay_on_http(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    redirected = client.get("/api/me/")
    assert redirected.status_code == 301
    assert redirected["Location"] == "https://testserver/api/me/"
    assert client.get("/health/").status_code == 200
    secure = client.get("/health/", secure=True)
    assert secure["Strict-Transport-Security"].startswith("max-age=31536000")


# --- secrets only from the environment -------------------------------------------------------

DEV_SECRET_KEY = "django-insecure-development-key-only-for-make-run-never-in-production"
DEV_BROKER = "amqp://guest:guest@127.0.0.1:5672//"


def env_reads() -> dict[str, object]:
    """Every variable the settings read from the environment, with its default."""
    found = {}
    for call in ast.walk(ast.parse(SETTINGS.read_text())):
        if not (
            isinstance(call, ast.Call) and call.args and isinstance(call.args[0], ast.Constant)
        ):
            continue
        name = getattr(call.func, "id", None)
        receiver = getattr(getattr(call.func, "value", None), "id", None)
        if name == "env" or receiver == "env":
            default = next((k.value for k in call.keywords if k.arg == "default"), None)
            try:
                value = ast.literal_eval(default) if default is not None else None
            except ValueError:
                value = ast.unparse(default)  # an expression: not DEBUG, ...
            found[call.args[0].value] = value
    return found


def test_secrets_and_credentials_are_read_from_the_environment():
    reads = env_reads()
    assert reads["DJANGO_SECRET_KEY"] == DEV_SECRET_KEY
    assert reads["CELERY_BROKER_URL"] == DEV_BROKER
    for variable in ("DATABASE_URL", "EMAIL_URL", "REDIS_URL", "CACHE_URL"):
        assert variable in reads
    # The defaults hold no credential but the development ones: the key, refused outside debug
    # mode (tested above), and RabbitMQ's guest, which RabbitMQ accepts from localhost only.
    for variable, default in reads.items():
        if isinstance(default, str) and "://" in default and default != DEV_BROKER:
            assert urlsplit(default).password is None, f"{variable} has a password by default"
    assert urlsplit(DEV_BROKER).hostname == "127.0.0.1"


def test_no_credential_literals_in_the_settings():
    text = SETTINGS.read_text()
    literals = [
        node.value
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    with_userinfo = [s for s in literals if re.search(r"://[^/@\s]+:[^/@\s]+@", s)]
    assert with_userinfo == [DEV_BROKER]
    # Words of secrets, outside the names of variables and modules and the sentences of messages.
    secretive = re.compile(r"(?i)insecure|secret|passw|pwd|token|api_?key|credential")
    looks_secret = [
        s
        for s in literals
        if secretive.search(s) and " " not in s and not re.fullmatch(r"[\w.]+", s)
    ]
    assert looks_secret == [DEV_SECRET_KEY, "django-insecure-"]
    assert DEV_SECRET_KEY.startswith("django-insecure-")
    assert not re.search(r"(?i)\b\w*(PASSWORD|SECRET|TOKEN)\w*\s*=\s*['\"]", text)


def test_flower_credentials_come_from_the_environment():
    procfile = (REPO / "Procfile").read_text()
    flower = next(line for line in procfile.splitlines() if line.startswith("flower:"))
    assert "--basic-auth=${FLOWER_BASIC_AUTH:-" in flower  # a development default for make run
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    command = " ".join(compose["services"]["flower"]["command"])
    assert "--basic-auth=${FLOWER_BASIC_AUTH:?" in command  # containers: required, no default
