# Owner(s): ["module: cuda"]

import math

from hypothesis import given, strategies as st

from torch.testing._internal.common_utils import (
    instantiate_parametrized_tests,
    parametrize,
    run_tests,
    TestCase,
)
from torch.utils._memory_size import format_memory_size, parse_memory_size


GiB = 1 << 30


class TestParseMemorySize(TestCase):
    @parametrize(
        "text, expected",
        [
            ("0", 0),
            ("123", 123),
            ("123B", 123),
            ("4GiB", 4 * GiB),
            ("4 GiB", 4 * GiB),
            ("4gib", 4 * GiB),
            ("4 GB", 4 * 10**9),
            ("512MB", 512 * 10**6),
            ("512 MiB", 512 << 20),
            ("1.5G", int(1.5 * GiB)),
            ("1.5 GiB", int(1.5 * GiB)),
            ("2K", 2048),
            ("2kb", 2000),
            ("1T", 1 << 40),
            ("  8 g ", 8 * GiB),
            ("2e9", 2 * 10**9),
            (".5GiB", GiB // 2),
            ("1PiB", 1 << 50),
        ],
        name_fn=lambda text, expected: text.strip().replace(" ", "_").replace(".", "p") or "blank",
    )
    def test_strings(self, text, expected):
        self.assertEqual(parse_memory_size(text), expected)

    def test_int_bytes(self):
        self.assertEqual(parse_memory_size(0), 0)
        self.assertEqual(parse_memory_size(123456789012345), 123456789012345)

    def test_fraction_of_total(self):
        self.assertEqual(parse_memory_size(0.25, total=80 * GiB), 20 * GiB)
        self.assertEqual(parse_memory_size(1.0, total=1000), 1000)

    def test_fraction_needs_total(self):
        with self.assertRaisesRegex(ValueError, "fraction of total memory, but the total is not known"):
            parse_memory_size(0.5)

    @parametrize("bad", [True, False, None, [1], b"4GB", 4j], name_fn=lambda b: type(b).__name__ + str(b))
    def test_type_errors(self, bad):
        with self.assertRaises(TypeError) as cm:
            parse_memory_size(bad)
        self.assertIn(f"got {bad!r} of type {type(bad).__name__}", str(cm.exception))

    @parametrize(
        "bad",
        [-1, -0.5, 0.0, 1.5, 2.0, float("nan"), float("inf"), "", "GB", "-4GB", "4 XB", "4GBs", "four GB", "4 G B", "1e999GB"],
        name_fn=lambda b: repr(b).replace("'", "").replace(" ", "_").replace(".", "p").replace("-", "neg") or "blank",
    )
    def test_value_errors(self, bad):
        with self.assertRaises(ValueError) as cm:
            parse_memory_size(bad, total=GiB, name="required")
        self.assertIn("required", str(cm.exception))
        self.assertIn(repr(bad) if not isinstance(bad, float) or math.isfinite(bad) else "", str(cm.exception))

    def test_unknown_unit_message(self):
        with self.assertRaises(ValueError) as cm:
            parse_memory_size("4 XB", name="required")
        self.assertExpectedInline(
            str(cm.exception),
            """required: unknown unit 'XB' in '4 XB'; expected one of B, KB, MB, GB, TB, PB (powers of 1000), KiB, MiB, GiB, TiB, PiB or K, M, G, T, P (powers of 1024)""",  # noqa: B950
        )

    @given(st.integers(min_value=0, max_value=1 << 60))
    def test_int_roundtrip(self, n):
        self.assertEqual(parse_memory_size(n), n)
        self.assertEqual(parse_memory_size(str(n)), n)
        self.assertEqual(parse_memory_size(f"{n} B"), n)

    UNITS = {
        "KiB": 1 << 10,
        "MiB": 1 << 20,
        "GiB": 1 << 30,
        "K": 1 << 10,
        "M": 1 << 20,
        "G": 1 << 30,
        "kB": 1000,
        "MB": 10**6,
        "GB": 10**9,
    }

    @given(st.integers(min_value=0, max_value=1 << 20), st.sampled_from(sorted(UNITS)))
    def test_integral_with_unit_is_exact(self, n, unit):
        self.assertEqual(parse_memory_size(f"{n}{unit}"), n * self.UNITS[unit])
        self.assertEqual(parse_memory_size(f"{n} {unit.lower()}"), n * self.UNITS[unit])

    @given(st.floats(min_value=1e-9, max_value=1.0), st.integers(min_value=1, max_value=1 << 44))
    def test_fraction_within_total(self, fraction, total):
        size = parse_memory_size(fraction, total=total)
        self.assertGreaterEqual(size, 0)
        self.assertLessEqual(size, total)

    @given(st.text(max_size=12))
    def test_arbitrary_text_is_parsed_or_rejected_with_value_error(self, text):
        try:
            size = parse_memory_size(text)
        except ValueError as e:
            self.assertIn(repr(text), str(e))
        else:
            self.assertIsInstance(size, int)
            self.assertGreaterEqual(size, 0)


class TestFormatMemorySize(TestCase):
    def test_units(self):
        self.assertEqual(format_memory_size(0), "0 B")
        self.assertEqual(format_memory_size(1023), "1023 B")
        self.assertEqual(format_memory_size(1024), "1.00 KiB")
        self.assertEqual(format_memory_size(1536 << 20), "1.50 GiB")
        self.assertEqual(format_memory_size(80 * GiB), "80.00 GiB")
        self.assertEqual(format_memory_size(3 << 50), "3.00 PiB")

    @given(st.integers(min_value=0, max_value=1 << 55))
    def test_roundtrip_within_rounding(self, n):
        text = format_memory_size(n)
        back = parse_memory_size(text.replace(" ", ""))
        self.assertLessEqual(abs(back - n), max(n * 0.005, 1))


instantiate_parametrized_tests(TestParseMemorySize)

if __name__ == "__main__":
    run_tests()
