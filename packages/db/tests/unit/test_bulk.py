"""COPY text encoding of awkward values (the database round trip is in integration tests)."""

from interpedia_db.bulk import chunks, field, line


def test_fields() -> None:
    assert field(None) == "\\N"
    assert field(True) == "t"
    assert field(3) == "3" and field(0.1) == "0.1"
    assert field("a\tb\\c\nd") == "a\\tb\\\\c\\nd"
    assert field([]) == "{}"
    assert field([1.5, 2.0]) == "{1.5,2.0}"
    # array literal first ("\\" and '"' escaped), then COPY escaping (backslashes doubled)
    assert field(['a"b', "c\\d", "e,f", "\t"]) == '{"a\\\\"b","c\\\\\\\\d","e,f","\\t"}'
    assert field(["x\x01y", "z"]) == '{"x\x01y","z"}'


def test_lines_and_chunks() -> None:
    rows = [("m", 1, None, ["a"]), ("n", 2, 0.5, [])]
    assert line(rows[0]) == 'm\t1\t\\N\t{"a"}\n'
    assert b"".join(chunks(iter(rows), size=1)) == b'm\t1\t\\N\t{"a"}\nn\t2\t0.5\t{}\n'
