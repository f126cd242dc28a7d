"""Writes tests/fixtures/chat/py_json_cases.json: JSON values and how Python's
json.dumps(value, ensure_ascii=False) writes them, the form DeepSeek's encoding_dsv32.py puts into
prompts and tool-call arguments. Standard library only: python3 tests/golden/chat/make_py_json_cases.py
"""
import json
import pathlib

INPUTS = [
    '{"b": 1, "a": [1, 2.5, {"c": null}], "d": true, "e": false}',
    '{"name": "get_weather", "description": "天气 🌤️ \\"quoted\\" back\\\\slash", "parameters": {}}',
    '"line\\nbreak\\ttab\\r\\b\\f\\u0001\\u001f\\u007f del"',
    '"\\u2028 separators \\u2029 and é"',
    '[1.0, 0.1, 1e-05, 0.0001, 1e16, 1e15, 123456789.125, 1e300, -0.0, 2.5e-300, 3.141592653589793, '
    '1.5e-7, 12345678901234567890.0, 0.000123, 1e22, 5e-324, 1.7976931348623157e308, -42.5, 100.0]',
    '[0, -1, 9007199254740993, 18446744073709551615, -9223372036854775808]',
    '[[], {}, "", [[]], {"": ""}]',
    '{"nested": {"deeper": {"list": ["x", 1, 2.0, false]}}}',
]

here = pathlib.Path(__file__).resolve()
out = here.parents[2] / "fixtures" / "chat" / "py_json_cases.json"
cases = [{"input": text, "python": json.dumps(json.loads(text), ensure_ascii=False)} for text in INPUTS]
out.write_text(json.dumps(cases, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
print(f"wrote {len(cases)} cases to {out}")
