"""Stripe's error answers: status, `type`, `code`, `param`, `doc_url`, `request_log_url` and headers."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answer. `request_log_url` is filled in by the server, which knows the request id."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None, logged: bool = True) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = headers or {}
        self.logged = logged  # Stripe logs the request (and links the log) unless it could not tell the account

    def body(self, account: str | None = None, request_id: str | None = None, livemode: bool = False) -> dict:
        error: dict[str, Any] = {}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = "https://stripe.com/docs/error-codes/" + self.code.replace("_", "-")
        error["message"] = self.message
        if self.param:
            error["param"] = self.param
        if self.logged and account and request_id:
            mode = "" if livemode else "/test"
            error["request_log_url"] = f"https://dashboard.stripe.com/{account}{mode}/workbench/logs?object={request_id}"
        error["type"] = self.type
        return {"error": error}


def unknown_parameter(name: str) -> ApiError:
    return ApiError(400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name)


def missing_parameter(name: str) -> ApiError:
    return ApiError(400, f"Missing required param: {name}.", code="parameter_missing", param=name)


def invalid_integer(value: Any, param: str) -> ApiError:
    return ApiError(400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=param)


def invalid_boolean(value: Any, param: str) -> ApiError:
    # Stripe's wording; there is no dedicated code for booleans in the pinned version's list
    return ApiError(400, f"Invalid boolean: {value}", param=param)


def invalid_choice(value: Any, param: str, choices: tuple[str, ...]) -> ApiError:
    listed = ", ".join(choices[:-1]) + f", or {choices[-1]}" if len(choices) > 1 else choices[0]
    return ApiError(400, f"Invalid {param}: must be one of {listed}", param=param)


def invalid_array(param: str) -> ApiError:
    return ApiError(400, f"Invalid array: {param} must be an array", param=param)


def invalid_hash(param: str) -> ApiError:
    return ApiError(400, f"Invalid {param}: must be an integer or a hash", param=param)


def exclusive(*names: str) -> ApiError:
    return ApiError(400, f"You may only specify one of these parameters: {', '.join(names)}.",
                    code="parameters_exclusive", param=names[-1])


def resource_missing(object_name: str, object_id: str, param: str = "id", status: int = 404) -> ApiError:
    return ApiError(status, f"No such {object_name}: '{object_id}'", code="resource_missing", param=param)


def not_expandable(segment: str, param: str, hint: str = "") -> ApiError:
    return ApiError(400, f"This property cannot be expanded ({segment}).{hint}", param=param)


def unrecognized_url(method: str, path: str) -> ApiError:
    return ApiError(404, f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we "
                         "can help at https://support.stripe.com/.")


def rate_limited(reason: str) -> ApiError:
    return ApiError(429, "Request rate limit exceeded. Learn more about rate limits here "
                         "https://stripe.com/docs/rate-limits.", code="rate_limit",
                    headers={"Stripe-Rate-Limited-Reason": reason})


def lock_timeout() -> ApiError:
    # Stripe's wording; the SDKs retry it because the API says so in Stripe-Should-Retry.
    return ApiError(429, "This object cannot be accessed right now because another API request or Stripe process is "
                         "currently accessing it. If you see this error intermittently, retry the request. If you see "
                         "this error frequently and are making multiple concurrent requests to a single object, make "
                         "your requests serially or at a lower rate.", code="lock_timeout",
                    headers={"Stripe-Should-Retry": "true"})


def server_error() -> ApiError:
    return ApiError(500, "An unknown error occurred", type="api_error", headers={"Stripe-Should-Retry": "true"})


def account_invalid(masked_key: str, account: str) -> ApiError:
    # Stripe's answer to a platform key reading an account it is not connected to (never was, or
    # deauthorized): 403, which stripe-python raises as PermissionError.
    return ApiError(403, f"The provided key '{masked_key}' does not have access to account '{account}' (or that "
                         "account does not exist). Application access may have been revoked.", code="account_invalid")


def not_the_controller(account: str) -> ApiError:
    # Stripe returns an account's external accounts only to a platform that controls it
    # (`controller.is_controller`), and keeps persons from platforms of Standard accounts once onboarded.
    # Stripe does not document the answer to asking anyway; a 403 like its other refusals is assumed.
    return ApiError(403, f"The platform does not control account '{account}': its external accounts and persons "
                         "are only available to the account itself.")


def not_a_platform() -> ApiError:
    # What an account that is not a Connect platform gets when it asks for another account.
    return ApiError(403, "Only Stripe Connect platforms can work with other accounts. If you specified a client_id "
                         "parameter, make sure it's correct. If you need to setup a Stripe Connect platform, you can "
                         "do so at https://dashboard.stripe.com/account/applications/settings.")
