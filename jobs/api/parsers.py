import json

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, minus two ways a body could still reach a 500.

    Deeply nested arrays exhaust the recursion limit inside ``json``, and an
    unpaired surrogate (``"\\ud800"``) parses fine but cannot be encoded into
    the database.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
        except UnicodeEncodeError:
            raise ParseError("JSON parse error - the document contains unpaired surrogate "
                             "escapes (invalid Unicode).") from None
        return data
