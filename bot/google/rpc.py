"""The one table of google.rpc codes: number, HTTP status, and what each means on call in
each place it is shown (the cancel's answer, a final state, a failed lookup, a refused token).

Every message that reports an outcome reads its words from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Place(Enum):
    """Where a code is shown: the same code calls for a different next step in each."""

    CANCEL_ANSWER = "cancel_answer"  # Google's answer to the cancel request
    FINAL_STATE = "final_state"  # the error an operation ended with: it is over
    LOOKUP = "lookup"  # a read that failed: the confirmation's GET, status, list, a watch
    # the IAM Credentials API gave no token for the service account a binding names: nothing
    # was sent to the Operations API
    TOKEN = "token"


@dataclass(frozen=True)
class _Words:
    """One text for each place a code is shown."""

    cancel_answer: str
    final_state: str
    lookup: str
    token: str = ""  # "": the words every code without its own use at Place.TOKEN

    def at(self, place: Place) -> str:
        if place is Place.CANCEL_ANSWER:
            return self.cancel_answer
        if place is Place.TOKEN:
            return self.token
        return self.final_state if place is Place.FINAL_STATE else self.lookup


def _everywhere(text: str) -> _Words:
    return _Words(text, text, text, text)


@dataclass(frozen=True)
class _Info:
    number: int
    http_status: int
    meaning: _Words
    next_step: _Words


# What a final state leaves behind is the same question whatever stopped it.
_LEFT_BEHIND = (
    "The operation is over and will not resume: check in the Cloud console what it left "
    "half done, then re-run the work if it is still needed."
)
_ASK_AGAIN = "Ask me again in a minute; if it persists, check Google Cloud's status page."
_CHECK_THEN_CANCEL = (
    "Check its state with `/cancel-op status`; if it is still running, cancel it again {when}."
)
_FIX_INPUT = "The operation is over: fix the request that started it before running the work again."
_TO_MAINTAINERS = "Check the operation name; if it is right, report this to the bot's maintainers."
# At Place.TOKEN: {account} is the service account; calls made as one name it ({identity},
# {grantee}) where a code is about permissions.
_TOKEN_MEANING = "Google's IAM Credentials API gave the bot no token to act as {account}."
_TOKEN_NEXT = (
    "Ask me again in a minute; if it persists, ask the platform team to check that {account} "
    "exists and is enabled, and that the IAM Credentials API is enabled."
)
_TOKEN_CREATOR = (
    "Ask the platform team to grant the bot's own identity roles/iam.serviceAccountTokenCreator "
    "on {account}, or cancel from the console."
)


class RpcCode(Enum):
    OK = _Info(0, 200, _everywhere("The request succeeded."), _everywhere("Nothing to do."))
    CANCELLED = _Info(
        1,
        499,
        _Words(
            "The cancel request itself was cancelled before Google answered it.",
            "The operation was cancelled.",
            "The lookup was cancelled before Google answered it.",
        ),
        _Words(
            _CHECK_THEN_CANCEL.format(when="now"),
            "Nothing more to do. Re-run the work later if it is still needed.",
            _ASK_AGAIN,
        ),
    )
    UNKNOWN = _Info(
        2,
        500,
        _Words(
            "Google reported an unknown error.",
            "The operation failed with an error Google did not classify.",
            "Google reported an unknown error.",
        ),
        _Words(_CHECK_THEN_CANCEL.format(when="in a minute"), _LEFT_BEHIND, _ASK_AGAIN),
    )
    INVALID_ARGUMENT = _Info(
        3,
        400,
        _Words(
            "Google rejected the request as malformed.",
            "The operation failed: Google found a value in its request invalid.",
            "Google rejected the request as malformed.",
        ),
        _Words(_TO_MAINTAINERS, _FIX_INPUT, _TO_MAINTAINERS),
    )
    DEADLINE_EXCEEDED = _Info(
        4,
        504,
        _Words(
            "The request timed out before Google finished it.",
            "The operation ran out of time before it finished its work.",
            "The lookup timed out before Google answered it.",
        ),
        _Words(
            "The cancel may or may not have reached Google: check the operation's state with "
            "`/cancel-op status` before cancelling again.",
            _LEFT_BEHIND,
            "Ask me again in a minute; if Google stays slow, look at the operation in the Cloud "
            "console.",
        ),
    )
    NOT_FOUND = _Info(
        5,
        404,
        _Words(
            "Google has no operation by that name: wrong project, location or ID, or it was "
            "already cleaned up.",
            "The operation failed: something it works on was not found.",
            "Google has no operation by that name: wrong project, location or ID, or it was "
            "already cleaned up.",
            "Google has no service account {account}.",
        ),
        _Words(
            "Check the name against the alert or the console; if it was cleaned up, there is "
            "nothing left to cancel.",
            "The operation is over: check that what it works on still exists before running "
            "the work again.",
            "Check the name against the alert or the console.",
            "Ask the platform team to fix the allowlist's `impersonate` for this binding, or "
            "to create that service account.",
        ),
    )
    ALREADY_EXISTS = _Info(
        6,
        409,
        _Words(
            "Google says the resource already exists.",
            "The operation failed: what it was to create already exists.",
            "Google says the resource already exists.",
        ),
        _Words(
            "Check the operation's state with `/cancel-op status` before cancelling again.",
            "The operation is over: check whether the existing resource is the one you wanted "
            "before running the work again.",
            _TO_MAINTAINERS,
        ),
    )
    PERMISSION_DENIED = _Info(
        7,
        403,
        _Words(
            "{identity} may not do this on that project.",
            "The operation failed: it lacked a permission on something it works on.",
            "{identity} may not do this on that project.",
            "The bot may not act as {account}.",
        ),
        _Words(
            "Ask the platform team to grant {grantee} the IAM permission to "
            "cancel operations on the project, or cancel from the console.",
            "The operation is over: check the IAM permissions of the identity it runs as "
            "before running the work again.",
            "Ask the platform team to grant {grantee} the IAM permission to "
            "read operations on the project, or look in the Cloud console.",
            _TOKEN_CREATOR,
        ),
    )
    RESOURCE_EXHAUSTED = _Info(
        8,
        429,
        _Words(
            "Google's quota or rate limit for this API is used up.",
            "The operation failed: a quota or resource limit ran out.",
            "Google's quota or rate limit for this API is used up.",
        ),
        _Words(
            "Wait a minute and cancel again; if it keeps happening, ask for more quota.",
            "The operation is over: free up or raise the quota before running the work again.",
            "Wait a minute and ask me again; if it keeps happening, ask for more quota.",
        ),
    )
    FAILED_PRECONDITION = _Info(
        9,
        400,
        _Words(
            "The operation cannot be cancelled in its current state (it may be finishing or "
            "not cancellable).",
            "The operation failed: the system was not in the state it needed.",
            "Google refused the lookup in the operation's current state.",
        ),
        _Words(
            "Check its state with `/cancel-op status`; if it is still running, stop the work it "
            "drives another way.",
            "The operation is over: check what it needed, and what it left half done, before "
            "running the work again.",
            "Ask me again in a minute; if it persists, look at the operation in the Cloud console.",
        ),
    )
    ABORTED = _Info(
        10,
        409,
        _Words(
            "Google aborted the request because of a concurrent change.",
            "The operation was aborted by a conflicting change.",
            "Google aborted the lookup because of a concurrent change.",
        ),
        _Words(
            _CHECK_THEN_CANCEL.format(when="in a few seconds"),
            _LEFT_BEHIND,
            "Ask me again in a few seconds.",
        ),
    )
    OUT_OF_RANGE = _Info(
        11,
        400,
        _Words(
            "A value in the request was out of range.",
            "The operation failed: a value it used was out of range.",
            "A value in the request was out of range.",
        ),
        _Words(_TO_MAINTAINERS, _FIX_INPUT, _TO_MAINTAINERS),
    )
    UNIMPLEMENTED = _Info(
        12,
        501,
        _Words(
            "This service does not support cancelling its operations. Nothing was changed.",
            "The operation failed: something it needed is not supported by the service.",
            "The Operations API does not support this request for that service.",
        ),
        _Words(
            "The operation keeps running: stop the work it drives another way, or let it finish.",
            "The operation is over: check its settings against what the service supports "
            "before running the work again.",
            "Look at the operation in the Cloud console instead.",
        ),
    )
    INTERNAL = _Info(
        13,
        500,
        _Words(
            "Google had an internal error.",
            "The operation failed with an internal error at Google.",
            "Google had an internal error.",
        ),
        _Words(
            _CHECK_THEN_CANCEL.format(when="in a minute")
            + " If it persists, check Google Cloud's status page.",
            _LEFT_BEHIND,
            _ASK_AGAIN,
        ),
    )
    UNAVAILABLE = _Info(
        14,
        503,
        _Words(
            "The Operations API could not be reached or is overloaded.",
            "The operation failed: a service it needed was unavailable.",
            "The Operations API could not be reached or is overloaded.",
        ),
        _Words(
            "The cancel may not have reached Google: cancel again in a minute; if it "
            "persists, check Google Cloud's status page.",
            _LEFT_BEHIND,
            _ASK_AGAIN,
        ),
    )
    DATA_LOSS = _Info(
        15,
        500,
        _Words(
            "Google reported unrecoverable data loss.",
            "The operation failed with unrecoverable data loss.",
            "Google reported unrecoverable data loss.",
        ),
        _Words(
            "Escalate to the service's owners.",
            "Escalate to the service's owners, and check what data the operation touched "
            "before running anything again.",
            "Escalate to the service's owners.",
        ),
    )
    UNAUTHENTICATED = _Info(
        16,
        401,
        _Words(
            "The bot's Google credentials are missing, expired or invalid.",
            "The operation failed: the credentials it runs with were refused.",
            "The bot's Google credentials are missing, expired or invalid.",
            "The bot's own Google credentials were refused, so it cannot act as {account}.",
        ),
        _Words(
            "Ask the platform team to check the bot's credentials (GOOGLE_AUTH and ADC).",
            "The operation is over: check the credentials it runs with before running the "
            "work again.",
            "Ask the platform team to check the bot's credentials (GOOGLE_AUTH and ADC).",
        ),
    )

    @property
    def number(self) -> int:
        return self.value.number

    def meaning_at(self, place: Place, account: str = "") -> str:
        """What this code means for the engineer where it is shown; `account`: the service
        account the bot acted as (or asked a token for), "" for its own credentials."""
        return _filled(self.value.meaning.at(place) or _TOKEN_MEANING, account)

    def next_step_at(self, place: Place, account: str = "") -> str:
        """What to do next: a final state is over, so its step is about what it left."""
        return _filled(self.value.next_step.at(place) or _TOKEN_NEXT, account)

    @property
    def http_status(self) -> int:
        return self.value.http_status

    @classmethod
    def from_error_code(cls, number: object) -> RpcCode:
        """The code of an Operation's `error.code`; anything but a known non-zero int is UNKNOWN.

        JSON `true` arrives as a Python bool, which isinstance() counts as the int 1
        (CANCELLED), so bools are refused by name.
        """
        if isinstance(number, bool) or not isinstance(number, int) or number == 0:
            return cls.UNKNOWN
        for code in cls:
            if code.number == number:
                return code
        return cls.UNKNOWN

    @classmethod
    def from_error_answer(cls, status: object, http_status: int) -> RpcCode:
        """The code of a non-2xx answer: its `status` name if that agrees with the HTTP class.

        Several codes share an HTTP status, so the name picks among them; but a name from
        another class (`"OK"` on a 500, a server error on a 400) loses to the HTTP status.
        """
        if isinstance(status, str) and status in cls.__members__:
            named = cls[status]
            if named is not cls.OK and named.http_status // 100 == http_status // 100:
                return named
        return cls.from_http_status(http_status)

    @classmethod
    def from_http_status(cls, http_status: int) -> RpcCode:
        """The code an HTTP status stands for when nothing more precise was said."""
        return _BY_HTTP_STATUS.get(http_status, cls.UNKNOWN)


# google-api-core's reading of bare HTTP statuses; a 502 comes from a proxy that could not
# reach Google. Statuses shared by several codes name the one whose advice fits all.
_BY_HTTP_STATUS = {
    **{code.http_status: code for code in reversed(RpcCode) if code is not RpcCode.OK},
    409: RpcCode.ABORTED,
    500: RpcCode.INTERNAL,
    502: RpcCode.UNAVAILABLE,
}


def _filled(text: str, account: str) -> str:
    """Words that name who acted: the service account the bot acted as, or its own identity."""
    if not account:
        return text.format(
            identity="The bot's Google credentials",
            grantee="the bot's service account",
            account="the service account",
        )
    named = f"`{account}`"
    return text.format(
        identity=f"The service account {named}, which the bot acts as here,",
        grantee=named,
        account=named,
    )
