"""The one table of google.rpc codes: number, HTTP status, and what each means on call.

Every message that reports an outcome reads its words from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class _Info:
    number: int
    http_status: int
    meaning: str
    next_step: str


class RpcCode(Enum):
    OK = _Info(0, 200, "The request succeeded.", "Nothing to do.")
    CANCELLED = _Info(
        1,
        499,
        "The operation was cancelled.",
        "Nothing more to do. Re-run the work later if it is still needed.",
    )
    UNKNOWN = _Info(
        2,
        500,
        "Google reported an unknown error.",
        "Try again in a minute; if it persists, check the service's status page.",
    )
    INVALID_ARGUMENT = _Info(
        3,
        400,
        "Google rejected the request as malformed.",
        "Check the operation name; if it is right, report this to the bot's maintainers.",
    )
    DEADLINE_EXCEEDED = _Info(
        4,
        504,
        "The request timed out before Google finished it.",
        "Check the operation's state with `/cancel-op status` before trying again.",
    )
    NOT_FOUND = _Info(
        5,
        404,
        "Google has no operation by that name: wrong project, location or ID, or it was "
        "already cleaned up.",
        "Check the name against the alert or the console.",
    )
    ALREADY_EXISTS = _Info(
        6, 409, "The resource already exists.", "Check the operation's state before retrying."
    )
    PERMISSION_DENIED = _Info(
        7,
        403,
        "The bot's Google credentials may not do this on that project.",
        "Ask the platform team to grant the bot's service account the IAM permission on the "
        "project, or cancel from the console.",
    )
    RESOURCE_EXHAUSTED = _Info(
        8,
        429,
        "Google's quota or rate limit for this API is used up.",
        "Wait a minute and try again; if it keeps happening, ask for more quota.",
    )
    FAILED_PRECONDITION = _Info(
        9,
        400,
        "The operation cannot be cancelled in its current state (it may be finishing or not "
        "cancellable).",
        "Check its state with `/cancel-op status`; if it is still running, stop the work it "
        "drives another way.",
    )
    ABORTED = _Info(
        10,
        409,
        "Google aborted the request because of a concurrent change.",
        "Try again in a few seconds.",
    )
    OUT_OF_RANGE = _Info(
        11, 400, "A value in the request was out of range.", "Report this to the maintainers."
    )
    UNIMPLEMENTED = _Info(
        12,
        501,
        "This service does not support cancelling its operations. Nothing was changed.",
        "The operation keeps running: stop the work it drives another way, or let it finish.",
    )
    INTERNAL = _Info(
        13,
        500,
        "Google had an internal error.",
        "Try again in a minute; if it persists, check the service's status page.",
    )
    UNAVAILABLE = _Info(
        14,
        503,
        "The Operations API could not be reached or is overloaded.",
        "Try again in a minute; if it persists, check the service's status page.",
    )
    DATA_LOSS = _Info(
        15, 500, "Google reported unrecoverable data loss.", "Escalate to the service's owners."
    )
    UNAUTHENTICATED = _Info(
        16,
        401,
        "The bot's Google credentials are missing, expired or invalid.",
        "Ask the platform team to check the bot's credentials (GOOGLE_AUTH and ADC).",
    )

    @property
    def number(self) -> int:
        return self.value.number

    @property
    def meaning(self) -> str:
        return self.value.meaning

    @property
    def next_step(self) -> str:
        return self.value.next_step

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
