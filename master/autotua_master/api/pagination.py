"""``?limit=&offset=`` paging that says what is wrong with a bad value instead of ignoring it."""

from __future__ import annotations

from rest_framework import pagination
from rest_framework.exceptions import ValidationError

MAX_LIMIT = 1000
#: past any table we will hold, and inside every database's integer range
MAX_OFFSET = 2**31 - 1


class Pagination(pagination.LimitOffsetPagination):
    max_limit = MAX_LIMIT

    @staticmethod
    def _number(request, name: str, default: int, low: int, high: int) -> int:
        given = request.query_params.getlist(name)
        if not given:
            return default
        if len(given) > 1:
            raise ValidationError({name: "given more than once"})
        raw = given[0]
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 12) or not low <= int(raw) <= high:
            raise ValidationError({name: f"{raw!r} is not a whole number from {low} to {high}"})
        return int(raw)

    def get_limit(self, request) -> int:
        return self._number(request, self.limit_query_param, self.default_limit, 1, self.max_limit)

    def get_offset(self, request) -> int:
        return self._number(request, self.offset_query_param, 0, 0, MAX_OFFSET)

    def get_schema_operation_parameters(self, view):
        params = super().get_schema_operation_parameters(view)
        bounds = {self.limit_query_param: (1, self.max_limit), self.offset_query_param: (0, MAX_OFFSET)}
        for p in params:
            low, high = bounds[p["name"]]
            p["schema"] = {**p["schema"], "minimum": low, "maximum": high}
        return params
