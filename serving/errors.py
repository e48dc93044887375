"""Errors as TF Serving reports them: a canonical status code, one message, HTTP mapping."""
from __future__ import annotations

import grpc

C = grpc.StatusCode

# model_servers/http_server.cc ToHTTPStatusCode.
HTTP_STATUS = {
    C.OK: 200, C.INVALID_ARGUMENT: 400, C.FAILED_PRECONDITION: 400, C.OUT_OF_RANGE: 400,
    C.NOT_FOUND: 404, C.ALREADY_EXISTS: 409, C.ABORTED: 409, C.RESOURCE_EXHAUSTED: 429,
    C.CANCELLED: 499, C.UNKNOWN: 500, C.INTERNAL: 500, C.DATA_LOSS: 500,
    C.UNIMPLEMENTED: 501, C.UNAVAILABLE: 503, C.DEADLINE_EXCEEDED: 504,
    C.PERMISSION_DENIED: 403, C.UNAUTHENTICATED: 401,
}
GRPC_MESSAGE_LIMIT = 1024  # model_servers/grpc_status_util.cc


class ServingError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    @property
    def grpc_message(self) -> str:
        m = self.message
        return m if len(m) <= GRPC_MESSAGE_LIMIT else m[:GRPC_MESSAGE_LIMIT] + "...TRUNCATED"

    @property
    def status_name(self) -> str:  # "INVALID_ARGUMENT", as in status protos and metrics
        return self.code.name


def invalid(message: str) -> ServingError:
    return ServingError(C.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(C.NOT_FOUND, message)


def precondition(message: str) -> ServingError:
    return ServingError(C.FAILED_PRECONDITION, message)
