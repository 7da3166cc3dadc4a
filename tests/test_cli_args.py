"""The CLI's argument types and parser (``costmodel.cli.args``): numbers read exactly from their
text, every range from ``costmodel.checks``, argparse errors raised instead of printed."""

from __future__ import annotations

import argparse

import pytest

from costmodel.cli import args


@pytest.mark.parametrize(("text", "value"), [
    ("4096", 4096), ("1e3", 1000), ("2.0", 2), (" 7 ", 7), ("1_000", 1000),
    (str(2**53), 2**53),
])
def test_count_reads_integers_exactly(text, value):
    got = args.count(text)
    assert got == value and type(got) is int


@pytest.mark.parametrize("text", [
    "9007199254740993.0",          # 2**53 + 1: a float would round it down to 2**53
    "9007199254740993", "1e16", "0", "-5", "2.5", "nan", "inf", "true", "", "0x10",
    "9" * 101,                     # longer than any number
])
def test_count_refuses(text):
    with pytest.raises(argparse.ArgumentTypeError):
        args.count(text)


def test_messages_give_the_range():
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be an integer in \[1, 1024\], "
                                                         "got 1025"):
        args.gamma("1025")
    with pytest.raises(argparse.ArgumentTypeError, match=r"in \[0.125, 8\]"):
        args.element_bytes("16")
    with pytest.raises(argparse.ArgumentTypeError, match=r"in \(0, 1\]"):
        args.fraction("0")
    with pytest.raises(argparse.ArgumentTypeError, match=r"\[0, 1\)"):
        args.alpha("1")


@pytest.mark.parametrize(("parse", "text", "value"), [
    (args.element_bytes, "0.5", 0.5), (args.element_bytes, "2", 2),
    (args.fraction, "0.9", 0.9), (args.fraction, "1", 1), (args.alpha, "0", 0),
    (args.cost_ratio, "0", 0), (args.overhead_seconds, "0", 0),
    (args.reserved_gib, "4", 4), (args.memory_gib, "80", 80),
    (args.memory_bytes, str(2**60), 2**60), (args.dim, str(2**31 - 1), 2**31 - 1),
])
def test_values_in_range(parse, text, value):
    assert parse(text) == value


def test_integral_values_print_as_integers():
    # "2" bytes per weight prints as 2 in notes, not 2.0
    assert type(args.element_bytes("2")) is int and type(args.element_bytes("0.5")) is float


def test_parser_raises_instead_of_exiting():
    p = args.Parser(prog="costmodel x")
    p.add_argument("--n", type=args.count, required=True)
    with pytest.raises(args.UsageError, match="^x: argument --n: must be a positive integer"):
        p.parse_args(["--n", "0"])
    with pytest.raises(args.UsageError, match="required"):
        p.parse_args([])


def test_lists_and_rows_are_bounded():
    with pytest.raises(ValueError, match="at most 1,000 values"):
        args.check_values("gamma", [1] * 1001)
    args.check_rows(10_000, "sweep")
    with pytest.raises(ValueError, match="10,001 rows"):
        args.check_rows(10_001, "sweep")
