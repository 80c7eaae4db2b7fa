"""A stand-in for Hugging Face's OpenID provider, for "Sign in with Hugging Face" on a Space.

A Space whose README says ``hf_oauth: true`` gets ``OAUTH_CLIENT_ID``, ``OAUTH_CLIENT_SECRET``,
``OAUTH_SCOPES`` and ``OPENID_PROVIDER_URL``; Gradio's login routes then send the visitor to
the provider and take back a code, which they trade for a token and a signed ID token naming
the visitor. This serves that protocol on loopback for one user, ``ada``: discovery, authorize
(straight back with a code), token (with an HS256 ID token, its key in the JWKS) and userinfo.
Everything it uses comes with gradio[oauth] (authlib's joserfc), so it runs in a bare Space venv.
"""

from __future__ import annotations

import base64
import secrets
import time
import urllib.parse
from dataclasses import dataclass, field

from joserfc import jwt
from joserfc.jwk import OctKey
from kimi_server import serve_in_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID, USER = "kimi-chat-client", "ada"


@dataclass
class OidcServer:
    """The provider's state: the codes it handed out, each with the nonce it must sign."""

    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    codes: dict[str, str] = field(default_factory=dict)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def space_env(self) -> dict[str, str]:
        """What Spaces sets for an app with ``hf_oauth: true``."""
        return {
            "OAUTH_CLIENT_ID": CLIENT_ID,
            "OAUTH_CLIENT_SECRET": self.secret,
            "OAUTH_SCOPES": "openid profile",
            "OPENID_PROVIDER_URL": self.url,
        }

    async def _discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.url,
                "authorization_endpoint": self.url + "/oauth/authorize",
                "token_endpoint": self.url + "/oauth/token",
                "userinfo_endpoint": self.url + "/oauth/userinfo",
                "jwks_uri": self.url + "/oauth/jwks",
                "id_token_signing_alg_values_supported": ["HS256"],
            }
        )

    async def _authorize(self, request: Request) -> Response:
        """The visitor agrees at once: back to the app's callback with a code and the state."""
        params = request.query_params
        code = secrets.token_urlsafe(16)
        self.codes[code] = params.get("nonce", "")
        query = urllib.parse.urlencode({"code": code, "state": params["state"]})
        return RedirectResponse(f"{params['redirect_uri']}&{query}", status_code=302)

    async def _token(self, request: Request) -> Response:
        form = await request.form()
        nonce = self.codes.pop(str(form.get("code")), None)
        if nonce is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": "user-ada",
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 3600,
            "nonce": nonce,
            "name": "Ada",
            "preferred_username": USER,
            "profile": f"https://huggingface.co/{USER}",
            "picture": "",
        }
        id_token = jwt.encode({"alg": "HS256", "kid": "k1"}, claims, self._key())
        return JSONResponse(
            {"access_token": "hf_oauth_local", "token_type": "Bearer", "expires_in": 3600, "id_token": id_token}
        )

    async def _jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self._key().as_dict(private=True) | {"kid": "k1", "alg": "HS256"}]})

    async def _userinfo(self, request: Request) -> Response:
        return JSONResponse({"sub": "user-ada", "preferred_username": USER, "name": "Ada"})

    def _key(self) -> OctKey:
        raw = base64.urlsafe_b64encode(self.secret.encode()).rstrip(b"=").decode()
        return OctKey.import_key({"kty": "oct", "k": raw})

    def start(self) -> OidcServer:
        routes = [
            Route("/.well-known/openid-configuration", self._discovery),
            Route("/oauth/authorize", self._authorize),
            Route("/oauth/token", self._token, methods=["POST"]),
            Route("/oauth/jwks", self._jwks),
            Route("/oauth/userinfo", self._userinfo),
        ]
        self._server, self.port = serve_in_thread(Starlette(routes=routes))
        return self

    def stop(self) -> None:
        self._server.should_exit = True
