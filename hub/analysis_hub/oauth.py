"""Company single sign-on: OpenID Connect (or GitHub) through OAuthenticator.

Contract:
- `discover_oidc_endpoints(settings)` (network I/O, at start) fills the
  authorize, token and userinfo URLs the settings leave unset from the
  issuer's `/.well-known/openid-configuration`. It raises `SettingsError`
  naming `auth.oidc.issuer` when the document can't be read or lacks them.
- `OIDCAuthenticator` and `GitHubAuthenticator` are OAuthenticator's, with
  two changes that the hub's promises need:
  - a login the settings don't allow is refused with a 403 page that says
    which groups may log in and whom to ask;
  - when the provider no longer accepts a user (account disabled or
    deleted, refresh refused), the user's tokens for their servers are
    revoked too, so access ends within the refresh interval even in a
    server tab that never visits the hub. JupyterHub itself only forces a
    new login on the hub's own pages.
- `github_team_groups(auth_state)` maps GitHub teams to hub groups `org:team`.
"""

from __future__ import annotations

import requests
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.github import GitHubOAuthenticator
from tornado import web

from .settings import Settings, SettingsError

DISCOVERY_PATH = "/.well-known/openid-configuration"
_DISCOVERED = {
    "authorize_url": "authorization_endpoint",
    "token_url": "token_endpoint",
    "userinfo_url": "userinfo_endpoint",
}


def discover_oidc_endpoints(settings: Settings, timeout: float = 10) -> Settings:
    oidc = settings.auth.oidc
    if settings.auth.type != "oidc" or all(getattr(oidc, key) for key in _DISCOVERED):
        return settings
    url = oidc.issuer.rstrip("/") + DISCOVERY_PATH
    try:
        response = requests.get(url, timeout=timeout)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as e:
        raise SettingsError(
            "auth.oidc",
            [
                f"auth.oidc.issuer: cannot read {url} ({e}); check the issuer URL or set"
                " auth.oidc.authorize_url, token_url and userinfo_url"
            ],
        ) from None
    found = {key: getattr(oidc, key) or document.get(field) for key, field in _DISCOVERED.items()}
    missing = [_DISCOVERED[key] for key, value in found.items() if not value]
    if missing:
        raise SettingsError(
            "auth.oidc", [f"auth.oidc.issuer: {url} has no {', '.join(missing)}; set them in auth.oidc"]
        )
    auth = settings.auth.model_copy(update={"oidc": oidc.model_copy(update=found)})
    return settings.model_copy(update={"auth": auth})


def github_team_groups(auth_state: dict) -> list[str]:
    return [f"{team['organization']['login']}:{team['slug']}" for team in auth_state.get("teams") or []]


class _CompanyLogin:
    """What both company logins add to their OAuthenticator (see the module docstring)."""

    async def check_allowed(self, username, auth_model):
        if await super().check_allowed(username, auth_model):
            return True
        allowed = ", ".join(sorted(self.allowed_groups)) or "none"
        raise web.HTTPError(
            403,
            f"{username} may not use this hub: it is open to members of the groups {allowed}."
            " Ask your team's admin to add you to one of them at the company's identity provider.",
        )

    async def refresh_user(self, user, handler=None, **kwargs):
        refreshed = await super().refresh_user(user, handler, **kwargs)
        if refreshed is False:
            revoked = _revoke_server_access(user)
            self.log.warning(
                "%s is no longer accepted by the identity provider; revoked %d server access tokens",
                user.name,
                revoked,
            )
        return refreshed


def _revoke_server_access(user) -> int:
    """Delete the tokens the user's browser holds for their servers (OAuth clients of servers)."""
    tokens = [t for t in user.orm_user.api_tokens if (t.oauth_client_id or "").startswith("jupyterhub-user-")]
    for token in tokens:
        user.db.delete(token)
    user.db.commit()
    return len(tokens)


class OIDCAuthenticator(_CompanyLogin, GenericOAuthenticator):
    pass


class GitHubAuthenticator(_CompanyLogin, GitHubOAuthenticator):
    pass
