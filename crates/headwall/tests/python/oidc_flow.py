"""The whole CAMARA Number Verification flow driven by Authlib, an OAuth/OIDC client library
we did not write (tests/it/api.rs runs it).

    oidc_flow.py keygen DIR
        writes DIR/client.jwk (the app backend's private P-256 key) and DIR/client.jwks.json
        (its public JWK Set, for [[api.client]].jwks_file)
    oidc_flow.py flow ISSUER CA_FILE KEY_FILE DEVICE_IP NUMBER
        discovery; the device (from DEVICE_IP) opens the authorization URL Authlib builds (PKCE
        S256) and gets a redirect; the backend exchanges the code with a private_key_jwt
        assertion (ES256) and asks /verify about NUMBER. Prints one JSON object with what each
        step saw.
"""

import json
import sys
import time

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey

CLIENT_ID = "shop-app"
REDIRECT_URI = "https://shop.test/cb"
SCOPE = "openid dpv:FraudPreventionAndDetection number-verification:verify"


class FromAddress(requests.adapters.HTTPAdapter):
    """Connections from one source address: the device on the mobile network."""

    def __init__(self, source, **kwargs):
        self.source = source
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        return super().init_poolmanager(*args, **kwargs)


def keygen(folder):
    key = ECKey.generate_key("P-256", parameters={"kid": "shop-es256"})
    with open(f"{folder}/client.jwk", "w") as f:
        json.dump(key.as_dict(private=True), f)
    with open(f"{folder}/client.jwks.json", "w") as f:
        json.dump({"keys": [key.as_dict(private=False)]}, f)


def flow(issuer, ca_file, key_file, device_ip, number):
    seen = {}
    discovery = requests.get(f"{issuer}/.well-known/openid-configuration", verify=ca_file, timeout=10)
    config = discovery.json()
    seen["issuer"] = config["issuer"]
    with open(key_file) as f:
        key = ECKey.import_key(json.load(f))
    token_endpoint = config["token_endpoint"]
    # A short-lived assertion: the server refuses ones living past 300 s.
    auth = PrivateKeyJWT(token_endpoint, alg="ES256", claims={"exp": int(time.time()) + 120})
    backend = OAuth2Session(
        CLIENT_ID,
        key,
        token_endpoint_auth_method=auth,
        redirect_uri=REDIRECT_URI,
        scope=SCOPE,
        code_challenge_method="S256",
    )
    verifier = "v" * 20 + "-Authlib-PKCE-verifier-" + "x" * 20
    url, state = backend.create_authorization_url(
        config["authorization_endpoint"], code_verifier=verifier, nonce="n-authlib"
    )

    device = requests.Session()
    device.mount("https://", FromAddress(device_ip))
    redirect = device.get(url, verify=ca_file, allow_redirects=False, timeout=10)
    location = redirect.headers.get("Location", "")
    seen["authorize_status"] = redirect.status_code
    seen["redirected_to_registered_uri"] = location.startswith(REDIRECT_URI + "?")
    if "error=" in location:
        seen["authorize_error"] = location.split("error=")[1].split("&")[0]
        print(json.dumps(seen))
        return
    # Authlib's token and API calls take `verify` per request, not from the session.
    token = backend.fetch_token(
        token_endpoint,
        authorization_response=location,
        code_verifier=verifier,
        state=state,
        verify=ca_file,
    )
    seen["token_type"] = token.get("token_type")
    seen["has_id_token"] = "id_token" in token
    seen["has_refresh_token"] = "refresh_token" in token
    answer = backend.post(
        config["issuer"] + "/number-verification/v2/verify",
        json={"phoneNumber": number},
        headers={"x-correlator": "authlib-1"},
        timeout=10,
        verify=ca_file,
    )
    seen["verify_status"] = answer.status_code
    seen["verify"] = answer.json()
    seen["correlator"] = answer.headers.get("x-correlator")
    again = backend.post(
        config["issuer"] + "/number-verification/v2/verify",
        json={"phoneNumber": number},
        timeout=10,
        verify=ca_file,
    )
    seen["again_status"] = again.status_code
    print(json.dumps(seen))


if __name__ == "__main__":
    if sys.argv[1] == "keygen":
        keygen(sys.argv[2])
    else:
        flow(*sys.argv[2:7])
