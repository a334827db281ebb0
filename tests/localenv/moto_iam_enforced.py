"""moto server enforcing IAM, for the enforced-IAM suite
(tests/suites/iam_enforced.rs), with the one call AWS makes without
credentials served as AWS serves it.

    moto_iam_enforced.py --service-account-key sa.pub -- -H 127.0.0.1 -p PORT

Run with the local environment's venv (its moto) and
INITIAL_NO_AUTH_ACTION_COUNT set: moto lets that many calls through
unauthenticated, then authenticates every call by its signature and
authorises its action against the caller's policies.

`sts:AssumeRoleWithWebIdentity` is unsigned on AWS: the web identity token
is the credential (IRSA: the SDK reads a projected ServiceAccount token and
calls STS without keys). moto 5 fails such a call with a 500 once it
enforces (it reads the Authorization header every call must have) and, when
signed, never looks at the token or the role's trust. Here an unsigned
AssumeRoleWithWebIdentity is checked the way STS checks it instead:

- the token is a JWT signed by the cluster's service-account key
  (`--service-account-key`, the PEM public key the kube-apiserver verifies
  its tokens with) and not expired;
- its issuer (`iss` without `https://`) is an OIDC provider IAM holds, and
  its audience (`aud`) one of that provider's client ids;
- the role's trust policy has an Allow statement for
  sts:AssumeRoleWithWebIdentity whose `Federated` principal is that
  provider and whose every condition holds: StringEquals or StringLike on
  `<issuer>:sub` and `<issuer>:aud`; any other operator or key fails closed.

A call that fails any check is answered AccessDenied; signed calls are left
to moto, with one repair: moto checks the signature of a form-encoded
request (the query protocols: IAM, STS, SNS) over its parameters encoded
again, which turns a `%20` into a `+`, so any parameter with a space (a
policy document as the SDK serialises it, an SNS message) fails with
SignatureDoesNotMatch. The signature is checked over the body as it was
sent instead; the body is kept by moto's recorder, which the suite turns on
(MOTO_ENABLE_RECORDING).

moto also authorises every operation as the action of its own name, while
AWS authorises some as others (the service authorization reference):
DynamoDB's TransactWriteItems as each item's PutItem, UpdateItem,
DeleteItem or ConditionCheckItem and TransactGetItems as GetItem; SNS's
PublishBatch as Publish; SQS's batch operations as their single
counterparts. Those are checked here as AWS checks them
([`AUTHORISED_AS`]).

And moto answers a refused call in a shape no SDK reads (an `Errors`
wrapper around the query protocols' `Error`, XML for the JSON protocols),
so a client saw "unhandled error" where AWS says AccessDenied; refusals are
answered in each protocol's own shape here (`AccessDeniedException` and
the like in JSON, `ErrorResponse/Error` in XML), so the operator's and the
api-worker's handling of a denial is what AWS would produce.

Everything after `--` goes to moto's own server.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import json
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.exceptions import AccessDeniedError, JsonRESTError, _RESTError
from moto.iam.models import iam_backends

ACTION = "sts:AssumeRoleWithWebIdentity"

#: Operations AWS authorises as other actions (of the same service).
AUTHORISED_AS = {
    "PublishBatch": ["Publish"],
    "SendMessageBatch": ["SendMessage"],
    "DeleteMessageBatch": ["DeleteMessage"],
    "ChangeMessageVisibilityBatch": ["ChangeMessageVisibility"],
    "TransactGetItems": ["GetItem"],
}

#: TransactWriteItems: the action of each kind of item.
TRANSACT_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def authorised_as(operation: str, body: bytes) -> list[str] | None:
    """The actions AWS authorises `operation` as, when not its own."""
    if operation == "TransactWriteItems":
        items = json.loads(body or b"{}").get("TransactItems", [])
        return sorted({TRANSACT_ITEM_ACTIONS[kind] for item in items for kind in item})
    return AUTHORISED_AS.get(operation)


def b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class Denied(Exception):
    pass


def verified_claims(token: str, key) -> dict:
    """The claims of `token`, once its signature and expiry are checked."""
    try:
        header_b64, payload_b64, signature_b64 = token.split(".")
        header = json.loads(b64url(header_b64))
        claims = json.loads(b64url(payload_b64))
        signature = b64url(signature_b64)
    except ValueError as error:
        raise Denied(f"the web identity token is not a JWT: {error}") from error
    signed = f"{header_b64}.{payload_b64}".encode()
    algorithm = header.get("alg")
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm == "RS256":
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm == "ES256":
            half = len(signature) // 2
            der = encode_dss_signature(
                int.from_bytes(signature[:half], "big"),
                int.from_bytes(signature[half:], "big"),
            )
            key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
        else:
            raise Denied(f"the token's algorithm {algorithm!r} does not fit the key")
    except Denied:
        raise
    except Exception as error:  # cryptography's InvalidSignature, a bad length
        raise Denied("the web identity token's signature is not valid") from error
    if claims.get("exp", 0) <= time.time():
        raise Denied("the web identity token has expired")
    return claims


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def trust_allows(document: str, provider_arn: str, issuer: str, claims: dict) -> bool:
    """Whether the trust policy lets this token's subject assume the role."""
    trust = json.loads(document)
    values = {f"{issuer}:sub": [claims.get("sub", "")], f"{issuer}:aud": as_list(claims.get("aud", []))}
    for statement in as_list(trust.get("Statement", [])):
        if statement.get("Effect") != "Allow":
            continue
        if ACTION not in as_list(statement.get("Action", [])):
            continue
        if provider_arn not in as_list((statement.get("Principal") or {}).get("Federated", [])):
            continue
        holds = True
        for operator, entries in (statement.get("Condition") or {}).items():
            for key, expected in entries.items():
                actual = values.get(key)
                if operator not in ("StringEquals", "StringLike") or actual is None:
                    holds = False
                    continue
                match = (
                    (lambda a, e: a == e)
                    if operator == "StringEquals"
                    else (lambda a, e: fnmatch.fnmatchcase(a, e))
                )
                if not any(match(a, e) for a in actual for e in as_list(expected)):
                    holds = False
        if holds:
            return True
    return False


def check_web_identity(response, key) -> None:
    """Raises AccessDenied unless the unsigned call may assume its role."""
    role_arn = response._get_param("RoleArn") or ""
    try:
        claims = verified_claims(response._get_param("WebIdentityToken") or "", key)
        issuer = str(claims.get("iss", "")).removeprefix("https://")
        account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
        backend = iam_backends[account][role_arn.split(":")[1]]
        provider_arn = f"arn:{role_arn.split(':')[1]}:iam::{account}:oidc-provider/{issuer}"
        try:
            provider = backend.get_open_id_connect_provider(provider_arn)
        except Exception as error:
            raise Denied(f"no OIDC provider {provider_arn}") from error
        if not set(as_list(claims.get("aud", []))) & set(provider.client_id_list):
            raise Denied("the token's audience is none of the provider's client ids")
        try:
            role = backend.get_role_by_arn(role_arn)
        except Exception as error:
            raise Denied(f"no role {role_arn}") from error
        if not trust_allows(role.assume_role_policy_document, provider_arn, issuer, claims):
            raise Denied(f"the trust policy of {role_arn} does not allow {claims.get('sub')!r}")
    except Denied as denied:
        print(f"moto_iam_enforced: AssumeRoleWithWebIdentity denied: {denied}", flush=True)
        raise AccessDeniedError(user_arn=f"web identity for {role_arn}", action=ACTION) from denied
    except (KeyError, IndexError, ValueError) as error:
        print(f"moto_iam_enforced: AssumeRoleWithWebIdentity denied: {error!r}", flush=True)
        raise AccessDeniedError(user_arn=f"web identity for {role_arn}", action=ACTION) from error


#: The JSON protocols' names of moto's authentication errors.
JSON_ERRORS = {
    "AccessDenied": "AccessDeniedException",
    "InvalidClientTokenId": "UnrecognizedClientException",
    "SignatureDoesNotMatch": "InvalidSignatureException",
}


def reshaped(response, error: _RESTError) -> _RESTError:
    """`error` in the shape of the request's protocol, as AWS answers it;
    one line in the log says so (the suite counts them)."""
    print(f"moto_iam_enforced: refused: {error.error_type}: {error.message}", flush=True)
    if response.headers.get("X-Amz-Target"):
        json_error = JsonRESTError(JSON_ERRORS.get(error.error_type, error.error_type), error.message)
        json_error.code = 400
        return json_error
    from xml.sax.saxutils import escape

    error.description = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse><Error><Type>Sender</Type>'
        f"<Code>{escape(error.error_type)}</Code><Message>{escape(error.message)}</Message>"
        "</Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
    )
    return error


def install(key) -> None:
    original = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def authenticate(self, iam_request_cls, resource="*"):
        enforcing = ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT
        if (
            enforcing
            and "Authorization" not in self.headers
            and self._get_action() == "AssumeRoleWithWebIdentity"
        ):
            try:
                check_web_identity(self, key)
            except _RESTError as error:
                raise reshaped(self, error) from error
            return
        if enforcing and not self.raw_body:
            # The recorder put the body back as a BytesIO before the form
            # was parsed from it.
            stream = self.normalized_request.environ.get("wsgi.input")
            if hasattr(stream, "getvalue"):
                self.raw_body = stream.getvalue()
        actions = authorised_as(self._get_action(), self.raw_body) if enforcing else None
        try:
            if not actions:
                original(self, iam_request_cls, resource)
                return
            for action in actions:
                self._get_action = lambda action=action: action
                try:
                    original(self, iam_request_cls, resource)
                finally:
                    del self._get_action
        except _RESTError as error:
            raise reshaped(self, error) from error

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service-account-key", required=True)
    parser.add_argument("moto", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    with open(args.service_account_key, "rb") as file:
        key = serialization.load_pem_public_key(file.read())
    install(key)
    from moto.server import main as moto_main

    moto_args = args.moto[1:] if args.moto[:1] == ["--"] else args.moto
    return moto_main(moto_args) or 0


if __name__ == "__main__":
    sys.exit(main())
