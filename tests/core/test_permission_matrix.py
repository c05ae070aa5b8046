"""Who may do what, over every URL of the URLconf.

The test walks every pattern that django.urls.get_resolver() knows, fills its path parameters
with real rows made here (the rows of one source, "own-app"; another source, "other-app", has
its own), and asks each of eight principals: anonymous, the own source's publishable key (from an
origin it allows), the other source's secret key, the own source's secret key, a logged-in user
with no role, a viewer, a curator and an admin. Each answer is checked against MATRIX: a principal
the table allows must not be refused (401, 403, 404 or a redirect to a login page); one it does
not allow must be. Writes are checked with the view's own methods, with an empty body, each in a
transaction that is rolled back, so no request changes what the next one sees.

Data leaks are checked as well: the own source's rows carry the word MARK (its model, its reply,
its comment, its recipe's name, its Langfuse score); a principal outside a rule's `sees` must
never find MARK in an answer, and one inside it finds it where the rule says `shows`.

A URL without an entry in MATRIX fails the test, and so does a view method the table does not
name: the matrix stays complete as the project grows."""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from apps.curation import services as curation_services
from apps.curation.roles import ensure_roles
from apps.datasets.models import Recipe
from apps.datasets.services import dataset_version_create
from apps.datasets.services.build import dataset_version_build
from apps.feedback.services.ingest import feedback_ingest
from apps.feedback.services.normalize import feedback_events_normalize
from apps.judges.models import GateRun, Judge
from apps.peers.models import LangfuseScore
from apps.quality.services import quality_events_judge
from apps.registry.models import Alias, BaseModel, Checkpoint
from apps.serving import services as serving_services
from apps.sources.services import source_create
from apps.training.models import TrainingRun

pytestmark = pytest.mark.django_db

MARK = "zq7mark"  # in every own-source row that a stranger must not see
ORIGIN = "https://chat.example.org"

ANON, PK, OTHER, OWN = "anonymous", "publishable", "other_secret", "own_secret"
NOROLE, VIEWER, CURATOR, ADMIN = "no_role", "viewer", "curator", "admin"
PRINCIPALS = (ANON, PK, OTHER, OWN, NOROLE, VIEWER, CURATOR, ADMIN)

EVERYONE = frozenset(PRINCIPALS)
NOBODY: frozenset[str] = frozenset()
STAFF = frozenset({VIEWER, CURATOR, ADMIN})
CURATORS = frozenset({CURATOR, ADMIN})
ADMINS = frozenset({ADMIN})
SECRET_KEYS = frozenset({OTHER, OWN})
ALL_KEYS = frozenset({PK, OTHER, OWN})
OWN_DATA = STAFF | {OWN}  # who may see the own source's rows


@dataclass(frozen=True)
class Rule:
    """ALLOW may call it; SEES may find the own source's data in the answer (default: ALLOW);
    SHOWS: everyone in SEES does find it (the rows are in the answer, not only allowed)."""

    allow: frozenset[str]
    sees: frozenset[str] | None = None
    shows: bool = False
    query: str = ""
    redirect_answers: bool = False  # its answer is a redirect to the login page (log out)

    def may_see(self, principal: str) -> bool:
        return principal in (self.allow if self.sees is None else self.sees)


def r(allow: frozenset[str], **kw: Any) -> Rule:
    return Rule(frozenset(allow), **kw)


# pattern (as the resolver spells it) → {method: Rule}. Path parameters are filled by name
# (World.params); {"name": …} in a pattern that needs another value is in PARAM_OVERRIDES.
MATRIX: dict[str, dict[str, Rule]] = {
    # --- the site -----------------------------------------------------------------------------
    "": {"GET": r(EVERYONE, sees=STAFF, shows=True)},  # a landing page without data for others
    "healthz": {"GET": r(EVERYONE)},
    "readyz": {"GET": r(EVERYONE)},
    "metrics": {"GET": r(STAFF)},  # and a scraper's bearer token (tests/core/test_ops.py)
    "api/schema/": {"GET": r(EVERYONE)},
    "api/docs/": {"GET": r(EVERYONE)},
    "demo/widget": {"GET": r(EVERYONE)},
    "accounts/login/": {"GET": r(EVERYONE), "POST": r(EVERYONE), "PUT": r(EVERYONE)},
    "accounts/logout/": {"POST": r(EVERYONE, redirect_answers=True)},
    # --- ingest and the event log -------------------------------------------------------------
    "api/v1/feedback": {
        "GET": r(SECRET_KEYS | STAFF, sees=OWN_DATA, shows=True),
        "POST": r(ALL_KEYS),
    },
    "api/v1/feedback/<int:event_id>": {"GET": r(OWN_DATA, shows=True)},
    # --- curation -----------------------------------------------------------------------------
    "api/v1/events/<int:event_id>/decisions": {"GET": r(STAFF), "POST": r(CURATORS)},
    "api/v1/decisions/bulk": {"POST": r(CURATORS)},
    "api/v1/decisions/<int:decision_id>/undo": {"POST": r(CURATORS)},
    "api/v1/decisions/batches/<uuid:batch>/undo": {"POST": r(CURATORS)},
    "api/v1/inbox/count": {"GET": r(STAFF)},
    "inbox/": {"GET": r(STAFF, shows=True)},
    "events/<int:event_id>/": {"GET": r(STAFF, shows=True)},
    "dashboard/": {"GET": r(STAFF)},
    "status/": {"GET": r(STAFF)},
    # --- datasets -----------------------------------------------------------------------------
    "api/v1/recipes": {
        "GET": r(SECRET_KEYS | STAFF, sees=OWN_DATA, shows=True),
        "POST": r(CURATORS),
    },
    "api/v1/recipes/<int:recipe_id>": {
        "GET": r(OWN_DATA, shows=True),
        "PATCH": r(CURATORS),
        "DELETE": r(ADMINS),
    },
    "api/v1/recipes/<int:recipe_id>/build": {"POST": r(CURATORS)},
    "api/v1/eval-sets": {"GET": r(STAFF), "POST": r(CURATORS)},
    "api/v1/dataset-versions": {"GET": r(SECRET_KEYS | STAFF, sees=OWN_DATA, shows=True)},
    "api/v1/dataset-versions/<int:version_id>": {"GET": r(OWN_DATA, shows=True)},
    "api/v1/dataset-versions/<int:version_id>/files/<str:name>": {"GET": r(OWN_DATA, shows=True)},
    "api/v1/dataset-versions/<int:version_id>/compare": {
        "GET": r(OWN_DATA, query="with={version_id}")
    },
    "datasets/": {"GET": r(STAFF, shows=True)},
    "datasets/recipes/new": {"POST": r(CURATORS)},
    "datasets/recipes/<int:recipe_id>/": {"GET": r(STAFF, shows=True)},
    "datasets/recipes/<int:recipe_id>/build": {"POST": r(CURATORS)},
    "datasets/eval-sets/new": {"POST": r(CURATORS)},
    "datasets/versions/<int:version_id>/": {"GET": r(STAFF, shows=True)},
    "datasets/versions/<int:version_id>/progress": {"GET": r(STAFF)},
    "datasets/versions/<int:version_id>/compare": {"GET": r(STAFF, query="with={version_id}")},
    # --- registry and training ----------------------------------------------------------------
    "api/v1/base-models": {"GET": r(SECRET_KEYS | STAFF)},
    "api/v1/base-models/<str:ref>/serve": {"POST": r(ADMINS)},
    "api/v1/checkpoints": {"GET": r(SECRET_KEYS | STAFF, sees=OWN_DATA, shows=True)},
    "api/v1/checkpoints/<str:ref>": {"GET": r(SECRET_KEYS | STAFF, sees=OWN_DATA, shows=True)},
    "api/v1/checkpoints/<str:ref>/publish": {"POST": r(ADMINS)},
    "api/v1/checkpoints/<str:ref>/retire": {"POST": r(ADMINS)},
    "api/v1/aliases": {"GET": r(SECRET_KEYS | STAFF)},
    "api/v1/aliases/<str:name>": {
        "GET": r(SECRET_KEYS | STAFF),
        "PUT": r(ADMINS),
        "POST": r(ADMINS),
    },
    "api/v1/aliases/<str:name>/rollback": {"POST": r(ADMINS)},
    "api/v1/serving/manifest": {"GET": r(SECRET_KEYS | STAFF)},
    "api/v1/training-runs": {
        "GET": r(SECRET_KEYS | STAFF, sees=OWN_DATA, shows=True),
        "POST": r(ADMINS),
    },
    "api/v1/training-runs/<int:run_id>": {"GET": r(OWN_DATA, shows=True)},
    "api/v1/training-runs/<int:run_id>/cancel": {"POST": r(ADMINS)},
    "training/": {"GET": r(STAFF, shows=True), "POST": r(ADMINS)},
    "training/<int:run_id>/": {"GET": r(STAFF, shows=True)},
    "training/<int:run_id>/live": {"GET": r(STAFF)},
    "training/<int:run_id>/cancel": {"POST": r(ADMINS)},
    "checkpoints/": {"GET": r(STAFF)},
    "checkpoints/aliases/<slug:name>/rollback": {"POST": r(ADMINS)},
    "checkpoints/base/<str:ref>/serve": {"POST": r(ADMINS)},
    "checkpoints/<str:ref>/": {"GET": r(STAFF, shows=True)},
    "checkpoints/<str:ref>/publish": {"POST": r(ADMINS)},
    "checkpoints/<str:ref>/retire": {"POST": r(ADMINS)},
    "checkpoints/<str:ref>/alias": {"POST": r(ADMINS)},
    # --- evaluation and serving -------------------------------------------------------------
    "api/v1/leaderboard": {"GET": r(SECRET_KEYS | STAFF, sees=OWN_DATA, shows=True)},
    "api/v1/thumbs": {"GET": r(SECRET_KEYS | STAFF, sees=OWN_DATA, shows=True)},
    "leaderboard/": {"GET": r(STAFF, shows=True)},
    "api/v1/experiments": {"GET": r(SECRET_KEYS | STAFF), "POST": r(ADMINS)},
    "api/v1/experiments/<str:ref>": {
        "GET": r(SECRET_KEYS | STAFF),
        "PATCH": r(ADMINS),
        "DELETE": r(ADMINS),
    },
    "api/v1/experiments/<str:ref>/start": {"POST": r(ADMINS)},
    "api/v1/experiments/<str:ref>/stop": {"POST": r(ADMINS)},
    "api/v1/experiments/<str:ref>/promote": {"POST": r(ADMINS)},
    "api/v1/experiments/<str:ref>/rollback": {"POST": r(ADMINS)},
    "api/v1/experiments/<str:ref>/results": {"GET": r(STAFF)},
    "api/v1/experiments/<str:ref>/assign": {"GET": r(ALL_KEYS | STAFF)},
    "experiments/": {"GET": r(STAFF)},
    "experiments/new": {"GET": r(ADMINS), "POST": r(ADMINS)},
    "experiments/<str:ref>/": {"GET": r(STAFF)},
    "experiments/<str:ref>/<slug:action>": {"POST": r(ADMINS)},
    # --- judges and the offline gate ---------------------------------------------------------
    "api/v1/judges": {"GET": r(SECRET_KEYS | STAFF), "POST": r(ADMINS)},
    "api/v1/judges/<str:ref>": {"GET": r(SECRET_KEYS | STAFF)},
    "api/v1/judges/<str:ref>/audits": {"GET": r(STAFF), "POST": r(ADMINS)},
    "api/v1/gates": {"GET": r(SECRET_KEYS | STAFF, sees=OWN_DATA, shows=True), "POST": r(ADMINS)},
    "api/v1/gates/<int:pk>": {"GET": r(OWN_DATA, shows=True)},
    "judges/": {"GET": r(STAFF)},
    "judges/gates/new": {"GET": r(STAFF), "POST": r(ADMINS)},
    "judges/gates/<int:pk>/": {"GET": r(STAFF, shows=True)},
    "judges/<str:ref>/": {"GET": r(STAFF)},
    "judges/<str:ref>/audit": {"POST": r(ADMINS)},
    "v1/chat/completions": {"POST": r(SECRET_KEYS)},
    "v1/models": {"GET": r(SECRET_KEYS)},
    # --- the Langfuse-compatible API (Basic auth: the source's pk as user, sk as password) ---
    "api/public/scores": {
        "GET": r({OWN, OTHER}, sees={OWN}, shows=True),
        "POST": r({OWN, OTHER}),
    },
    "api/public/scores/<str:score_id>": {
        "GET": r({OWN}, shows=True),
        "DELETE": r({OWN}),
    },
    "api/public/ingestion": {"POST": r({OWN, OTHER})},
    "api/public/projects": {"GET": r({OWN, OTHER})},
    "api/public/health": {"GET": r(EVERYONE)},
    "api/public/otel/v1/traces": {"POST": r({OWN, OTHER})},
}

# Django's admin site: every page is for staff accounts (is_staff), which none of the eight
# principals is (the admin role is a group, not a Django staff flag): each is sent to the
# admin's login. Its login and logout pages answer everyone.
ADMIN_SITE_OPEN = {
    "admin/login/": {"GET": r(EVERYONE)},
    "admin/logout/": {"POST": r(EVERYONE, redirect_answers=True)},
}

PARAM_OVERRIDES: dict[str, dict[str, str]] = {
    "api/v1/dataset-versions/<int:version_id>/files/<str:name>": {"name": "train.jsonl"},
    "api/v1/aliases/<str:name>": {"name": "production"},
    "api/v1/aliases/<str:name>/rollback": {"name": "production"},
    "checkpoints/aliases/<slug:name>/rollback": {"name": "production"},
    "experiments/<str:ref>/<slug:action>": {"ref": "ab", "action": "start"},
    "api/v1/experiments/<str:ref>": {"ref": "ab"},
    "api/v1/base-models/<str:ref>/serve": {"ref": "tiny"},
    "checkpoints/base/<str:ref>/serve": {"ref": "tiny"},
}
EXPERIMENT_PATTERNS = re.compile(r"experiments/<str:ref>")
JUDGE_PATTERNS = re.compile(r"judges/<str:ref>")


# --- the world: rows of two sources, users in each role ----------------------------------------


@dataclass
class World:
    params: dict[str, str]
    own_keys: tuple[str, str]  # (publishable, secret)
    other_keys: tuple[str, str]
    users: dict[str, Any] = field(default_factory=dict)


def _events(source: Any, prefix: str, mark: str) -> list[int]:
    items = [
        {
            "type": "rating",
            "id": f"{prefix}-1",
            "rater": f"{prefix}-rater",
            "model": f"{mark}-model",
            "messages": [{"role": "user", "content": f"{prefix}: what is two and two?"}],
            "response": f"{mark} reply: four.",
            "rating": 1,
            "comment": f"{mark} comment",
        },
        {
            "type": "preference",
            "id": f"{prefix}-2",
            "rater": f"{prefix}-rater-2",
            "messages": [{"role": "user", "content": f"{prefix}: say hello"}],
            "responses": [
                {"model": f"{mark}-a", "content": f"{mark} hello"},
                {"model": f"{mark}-b", "content": "hi"},
            ],
            "choice": 0,
        },
    ]
    ids = [result.id for result in feedback_ingest(source=source, items=items)]
    assert None not in ids
    feedback_events_normalize(event_ids=ids)
    quality_events_judge(event_ids=ids)
    return ids


def _version(source_name: str, recipe_name: str) -> Any:
    recipe = Recipe.objects.create(
        name=recipe_name, kind="sft", filters={"source": source_name}, test_fraction=0
    )
    version = dataset_version_create(recipe=recipe, user=None)
    return dataset_version_build(version_id=version.pk), recipe


@pytest.fixture
def world(settings: Any, tmp_path: Path) -> World:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.DATA_DIR = tmp_path / "data"
    settings.DATA_DIR.mkdir()
    settings.SINKHOLE_DEMO_PAGES = True
    ensure_roles()
    own, own_secret, own_pk = source_create(name="own-app", allowed_origins=[ORIGIN])
    other, other_secret, other_pk = source_create(name="other-app")
    own_events = _events(own, "own", MARK)
    _events(other, "other", "theirs")
    own_version, own_recipe = _version("own-app", f"{MARK}-recipe")
    _version("other-app", "their-recipe")
    assert own_version.status == "succeeded", own_version.error

    users = {}
    for role in (NOROLE, VIEWER, CURATOR, ADMIN):
        user = get_user_model().objects.create_user(f"u-{role}", password="pw-matrix-1234")
        if role != NOROLE:
            user.groups.add(Group.objects.get(name=role))
        users[role] = user
    decision = curation_services.decision_accept(event_id=own_events[0], user=users[CURATOR])
    batch = curation_services.decision_tag(
        event_id=own_events[1],
        user=users[CURATOR],
        tag="matrix",
        batch=__import__("uuid").uuid4(),
    ).batch

    base_model = BaseModel.objects.create(name="tiny", model_id="tiny/base")
    base = Checkpoint.objects.create(
        name="base-tiny", kind="base", base_model=base_model, status="published"
    )
    run = TrainingRun.objects.create(
        dataset_version=own_version,
        base_model=base_model,
        method="sft",
        spec={},
        status="succeeded",
    )
    Checkpoint.objects.create(
        name="tiny-lora",
        kind="adapter",
        base_model=base_model,
        status="published",
        run=run,
        dataset_version=own_version,
    )
    Alias.objects.create(name="production", checkpoint=base)
    serving_services.experiment_create(
        name="ab",
        arms=[
            serving_services.ArmSpec(checkpoint="base-tiny"),
            serving_services.ArmSpec(checkpoint="tiny-lora"),
        ],
    )
    judge = Judge.objects.create(name="length-rule", kind="rule", config={})
    gate = GateRun.objects.create(
        candidate=Checkpoint.objects.get(name="tiny-lora"),
        against=base,
        against_alias="production",
        judge=judge,
        dataset_version=own_version,
        status="passed",
        results={"worst_losses": [{"prompt": f"{MARK} prompt of the own source"}]},
    )
    LangfuseScore.objects.create(
        source=own,
        score_id=f"{MARK}-score",
        name="helpful",
        data_type="NUMERIC",
        value=1.0,
        comment=f"{MARK} score",
    )
    return World(
        params={
            "event_id": str(own_events[0]),
            "decision_id": str(decision.pk),
            "batch": str(batch),
            "recipe_id": str(own_recipe.pk),
            "version_id": str(own_version.pk),
            "run_id": str(run.pk),
            "ref": "tiny-lora",
            "name": "production",
            "score_id": f"{MARK}-score",
            "pk": str(gate.pk),
            "action": "start",
            "object_id": "1",
            "content_type_id": "1",
            "id": "1",
            "app_label": "auth",
            "url": "anything/",
        },
        own_keys=(own_pk.raw, own_secret.raw),
        other_keys=(other_pk.raw, other_secret.raw),
        users=users,
    )


# --- walking the URLconf ----------------------------------------------------------------------


@dataclass
class Route:
    pattern: str
    view: Any

    def methods(self) -> set[str] | None:
        """The HTTP methods a class-based view implements; None for a function view."""
        cls = getattr(self.view, "view_class", None) or getattr(self.view, "cls", None)
        if cls is None:
            return None
        return {
            m.upper()
            for m in cls.http_method_names
            if m not in ("options", "head") and hasattr(cls, m)
        }


def routes(resolver: URLResolver | None = None, prefix: str = "") -> Iterator[Route]:
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from routes(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield Route(prefix + str(entry.pattern), entry.callback)


def fill(pattern: str, params: dict[str, str]) -> str:
    values = {**params, **PARAM_OVERRIDES.get(pattern, {})}
    if EXPERIMENT_PATTERNS.search(pattern) and "ref" not in PARAM_OVERRIDES.get(pattern, {}):
        values["ref"] = "ab"
    if JUDGE_PATTERNS.search(pattern):
        values["ref"] = "length-rule"
    if pattern.startswith("admin/^") or "(?P<" in pattern:  # the admin's regex patterns
        path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: values[m.group(1)], pattern)
        path = path.replace("^", "").replace("$", "").replace(".*", "")
    else:
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], pattern)
    return "/" + path


def rules_for(route: Route) -> dict[str, Rule] | None:
    if route.pattern in MATRIX:
        return MATRIX[route.pattern]
    if route.pattern in ADMIN_SITE_OPEN:
        return ADMIN_SITE_OPEN[route.pattern]
    if route.pattern.startswith("admin/"):
        return {"GET": r(NOBODY)}
    return None


# --- asking ----------------------------------------------------------------------------------


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def clients(world: World) -> dict[str, tuple[Client, dict[str, str], dict[str, str]]]:
    """principal → (client, headers for Bearer APIs, headers for the Langfuse API)."""
    own_pk, own_sk = world.own_keys
    other_pk, other_sk = world.other_keys
    out: dict[str, tuple[Client, dict[str, str], dict[str, str]]] = {
        ANON: (Client(), {}, {}),
        PK: (
            Client(),
            {"HTTP_AUTHORIZATION": f"Bearer {own_pk}", "HTTP_ORIGIN": ORIGIN},
            {"HTTP_AUTHORIZATION": _basic(own_pk, "")},
        ),
        OTHER: (
            Client(),
            {"HTTP_AUTHORIZATION": f"Bearer {other_sk}"},
            {"HTTP_AUTHORIZATION": _basic(other_pk, other_sk)},
        ),
        OWN: (
            Client(),
            {"HTTP_AUTHORIZATION": f"Bearer {own_sk}"},
            {"HTTP_AUTHORIZATION": _basic(own_pk, own_sk)},
        ),
    }
    for role, user in world.users.items():
        client = Client()
        client.force_login(user)
        out[role] = (client, {}, {})
    return out


def refused(response: Any, rule: Rule) -> bool:
    if response.status_code in (401, 403, 404):
        return True
    if rule.redirect_answers:
        return False
    location = response.get("Location", "") if response.status_code in (301, 302) else ""
    return "/login/" in location


def body_of(response: Any) -> str:
    if getattr(response, "streaming", False):
        content = b"".join(response.streaming_content)
    else:
        content = response.content
    return content.decode("utf-8", "replace")


def ask(world: World, asker: tuple[Client, dict, dict], route: Route, method: str, rule: Rule):
    logged_in, bearer, basic = asker
    client = Client()  # a copy: a request that logs out must not log the next one out
    client.cookies = copy.deepcopy(logged_in.cookies)
    headers = basic if route.pattern.startswith("api/public/") else bearer
    path = fill(route.pattern, world.params)
    query = rule.query.format(**world.params)
    cache.clear()  # rate limits count per minute; the matrix is not a flood
    with transaction.atomic():
        if method == "GET":
            response = client.get(path + ("?" + query if query else ""), **headers)
        else:
            response = client.generic(method, path, b"", content_type="application/json", **headers)
        body = body_of(response)
        transaction.set_rollback(True)
    return response, body


# --- the test ---------------------------------------------------------------------------------


def test_every_url_answers_each_principal_as_the_matrix_says(world: World) -> None:
    askers = clients(world)
    missing, wrong, leaks, methods = [], [], [], []
    seen_patterns = set()
    for route in routes():
        seen_patterns.add(route.pattern)
        rules = rules_for(route)
        if rules is None:
            missing.append(route.pattern)
            continue
        implemented = route.methods()
        if implemented is not None and not route.pattern.startswith("admin/"):
            if set(rules) != implemented:
                methods.append(
                    f"{route.pattern}: view has {sorted(implemented)}, table {sorted(rules)}"
                )
        for method, rule in rules.items():
            for principal in PRINCIPALS:
                response, body = ask(world, askers[principal], route, method, rule)
                allowed = principal in rule.allow
                if allowed == refused(response, rule):
                    wrong.append(
                        f"{method} {route.pattern} as {principal}: {response.status_code} "
                        f"({'refused' if allowed else 'let in'}) {body[:120]!r}"
                    )
                if MARK in body and not rule.may_see(principal):
                    leaks.append(
                        f"{method} {route.pattern} as {principal}: shows the own source's data"
                    )
                if rule.shows and allowed and rule.may_see(principal) and MARK not in body:
                    leaks.append(
                        f"{method} {route.pattern} as {principal}: own data missing (test setup?)"
                    )
    stale = sorted(set(MATRIX) - seen_patterns)
    assert not missing, f"URLs without an entry in MATRIX (add who may use them): {missing}"
    assert not methods, f"MATRIX names other methods than the views have: {methods}"
    assert not stale, f"MATRIX names URLs that no longer exist: {stale}"
    assert not wrong, "\n".join(wrong)
    assert not leaks, "\n".join(leaks)


def test_the_matrix_notices_a_url_it_does_not_know(settings: Any) -> None:
    """A URL added without an entry fails the matrix test (the table stays complete)."""
    route = Route("api/v1/some-new-thing", view=lambda request: None)
    assert rules_for(route) is None
