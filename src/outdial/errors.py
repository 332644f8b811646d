"""Domain errors: a stable status and reason code plus a sentence for people; no HTTP here.

    OutdialError
    ├── InvalidArgument      bad input, naming the field          (INVALID_ARGUMENT)
    ├── Unauthenticated      no credential or a bad one           (UNAUTHENTICATED)
    ├── PermissionDenied     authenticated, but not allowed       (PERMISSION_DENIED)
    ├── NotFound             missing, or another tenant's         (NOT_FOUND)
    ├── AlreadyExists        a unique thing already there         (ALREADY_EXISTS)
    ├── FailedPrecondition   the resource's state forbids it      (FAILED_PRECONDITION)
    ├── ResourceExhausted    a limit of the caller's is reached   (RESOURCE_EXHAUSTED)
    └── Unavailable          busy now, retry shortly              (UNAVAILABLE)
"""


class OutdialError(Exception):
    status = "INTERNAL"
    default_reason = "INTERNAL"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason


class InvalidArgument(OutdialError):
    status = "INVALID_ARGUMENT"
    default_reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, problem: str, reason: str | None = None) -> None:
        super().__init__(f"{field}: {problem}" if field else problem, reason)
        self.field = field
        self.problem = problem


class Unauthenticated(OutdialError):
    status = "UNAUTHENTICATED"
    default_reason = "INVALID_CREDENTIALS"


class PermissionDenied(OutdialError):
    status = "PERMISSION_DENIED"
    default_reason = "PERMISSION_DENIED"


class NotFound(OutdialError):
    status = "NOT_FOUND"
    default_reason = "NOT_FOUND"


class AlreadyExists(OutdialError):
    status = "ALREADY_EXISTS"
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(OutdialError):
    status = "FAILED_PRECONDITION"
    default_reason = "FAILED_PRECONDITION"


class ResourceExhausted(OutdialError):
    status = "RESOURCE_EXHAUSTED"
    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(OutdialError):
    status = "UNAVAILABLE"
    default_reason = "SERVICE_UNAVAILABLE"
