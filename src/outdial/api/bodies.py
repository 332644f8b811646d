"""JSON request bodies decoded by the value rules (outdial.validation), not by json.loads.

json.loads raises RecursionError on deep nesting and ValueError on numbers of more than 4,300
digits, which the framework reports as a bare "error parsing the body", and it takes NaN. Routes
of this class decode their body with decode_json instead and answer a refusal with 400
INVALID_JSON_BODY saying why. Text that is not JSON at all is left to the framework's own
json_invalid error. The import route reads its body as a stream and does not use this class.
"""

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from outdial.errors import InvalidArgument
from outdial.validation import Refused, decode_json


class _RulesRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = decode_json(await self.body())
        return self._json


def _is_json(request: Request) -> bool:
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class JsonRulesRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_with_rules(request: Request) -> Response:
            request = _RulesRequest(request.scope, request.receive)
            if _is_json(request) and await request.body():
                # Decoded here, outside the framework's body parsing, which would turn any
                # error into a generic one; the decoded body is kept for the framework.
                try:
                    await request.json()
                except Refused as refused:
                    raise InvalidArgument("body", str(refused), "INVALID_JSON_BODY") from None
                except ValueError:
                    pass  # not JSON: the framework says so as for any route
            return await handle(request)

        return handle_with_rules
